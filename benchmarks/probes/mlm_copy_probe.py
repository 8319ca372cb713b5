r"""Copy probe of the small bytes MLM: can it reproduce its visible input?

Not a test. [P] §4.1's model at recipes.SMALL size (models.mlm) trained
with a bare loop (the project's optimiser, benchmarks/probes/optimiser.py:
AdamW without weight decay at a constant learning rate) on the identity
task: the input is the unmasked text and the loss is the cross-entropy of
every valid byte, so a model that routes each byte from its input slot to
its output query reaches 100% and one that predicts the same distribution
everywhere sits at the unigram (about 17% accuracy, 3.2 nats on this text). It separates the
plumbing (data, loss weights, optimiser: all trivial here) from the
optimisation of the architecture.

Shapes: B = 32 examples, T bytes (the first T of each cached example),
V = 262 byte ids.

Data: the first 2000 training batches cached by
benchmarks/probes/mlm_plateau.py (run it once; `--cache`), or with `--random=K` uniform random ids over K
symbols (no unigram shortcut: the trivial loss is ln K).

  .venv/bin/python benchmarks/probes/mlm_copy_probe.py --T=128 --steps=200
  .venv/bin/python benchmarks/probes/mlm_copy_probe.py --T=32 --steps=300 \
      --config=num_layers=1
  .venv/bin/python benchmarks/probes/mlm_copy_probe.py --T=32 --random=16

`--config k=v,...` overrides models.mlm_config kwargs (e.g.
input_position_encoding=fourier, input_position_init_scale=1.0);
`--embed_scale` multiplies the initial byte embedding (hk.Embed's
stddev 1.0). Prints the mean loss and accuracy of every `--every` steps
and, with `--grad_norms`, the gradient norm of every module at the first
and the last step.
"""
import argparse
import os
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=wrong-import-position
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.probes import optimiser
from perceiver.tasks.language import models
from perceiver.tasks.language import recipes


def _value(text):
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  a = p.add_argument
  a('--cache', default='/tmp/mlm_plateau/batches_T128_B32_p0.15_word.npz')
  a('--T', type=int, default=128)
  a('--steps', type=int, default=300)
  a('--lr', type=float, default=1e-3,
    help='constant; AdamW without weight decay (optimiser.config)')
  a('--config', default='', help='mlm_config overrides k=v,k=v')
  a('--embed_scale', type=float, default=1.0)
  a('--random', type=int, default=0)
  a('--every', type=int, default=50)
  a('--seed', type=int, default=0)
  a('--grad_norms', action='store_true')
  args = p.parse_args()

  n = max(args.steps, 2000)  # the random ids are drawn for 2000 batches
  with np.load(args.cache) as f:
    targets = f['train_targets'][:n, :, :args.T].astype(np.int32)
    valid = f['train_input_mask'][:n, :, :args.T].astype(np.int32)
  if args.random:
    targets = np.random.default_rng(0).integers(
        100, 100 + args.random, targets.shape).astype(np.int32)
    valid = np.ones_like(targets)
  overrides = dict(item.split('=') for item in args.config.split(',') if item)
  config = models.mlm_config(vocab_size=models.BYTES_VOCAB_SIZE, **{
      **recipes.SMALL, 'max_seq_len': args.T,
      **{k: _value(v) for k, v in overrides.items()}})
  mlm = models.mlm(config)
  model = hk.transform(lambda x, m: mlm(x, m, is_training=True))
  params = model.init(jax.random.PRNGKey(args.seed), targets[0], valid[0])
  params['embed']['embeddings'] *= args.embed_scale
  opt = optimiser.make(optimiser.config(
      name='adamw', lr=args.lr, steps=args.steps, cosine=False))
  opt_state = opt.init(params)

  def loss_fn(p, x, m):  # the input is the target: identity
    logits = model.apply(p, None, x, m)  # [B, T, V]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, x)
    w = m.astype(jnp.float32)
    acc = jnp.sum((logits.argmax(-1) == x) * w) / jnp.sum(w)
    return jnp.sum(nll * w) / jnp.sum(w), acc

  @jax.jit
  def step(p, s, x, m):
    (loss, acc), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x, m)
    updates, s = opt.update(g, s, p)
    norms = {k: optax.global_norm(v) for k, v in g.items()}
    return optax.apply_updates(p, updates), s, loss, acc, norms

  start, history = time.time(), []
  for i in range(1, args.steps + 1):
    params, opt_state, loss, acc, norms = step(params, opt_state,
                                               targets[i - 1], valid[i - 1])
    history.append((float(loss), float(acc)))  # blocks every step
    if i == 1 or i % args.every == 0:
      loss_i, acc_i = np.mean(history[-args.every:], axis=0)
      print(f'step {i}: copy loss {loss_i:.3f} acc {acc_i:.3f} '
            f'({time.time() - start:.0f} s)', flush=True)
      if args.grad_norms and i in (1, args.steps):
        for k in sorted(norms):
          print(f'  |grad| {float(norms[k]):.2e} {k}')


if __name__ == '__main__':
  main()
