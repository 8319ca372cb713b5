r"""Probes the unigram plateau of the small bytes MLM (benchmarks/LANGUAGE.md).

Not a test. Trains the CPU-sized MLM of benchmarks/language_repro.py
(recipes.SMALL) on the embedded KJV + Shakespeare batches of the MLM task,
with a bare optax loop (no checkpoints or eval, so a probe is quick), and
prints the spread of the initial logits across positions and across bytes,
then every `--every` steps, averaged over those steps:
  * masked acc / masked nll: accuracy and NLL on the masked bytes (the MLM
    task's metrics);
  * copy acc: accuracy on the unmasked bytes, which are in the input. With
    `--copy_weight=1` the loss covers them too, so this measures whether
    the model has learnt to route a byte from its input position to the
    same output position at all.

  .venv/bin/python benchmarks/mlm_plateau.py --steps=400 --copy_weight=1
  .venv/bin/python benchmarks/mlm_plateau.py --steps=800 --copy_weight=1 \
      --optimizer=adam --lr=1e-3 --fixed_batch    # memorise one batch
  .venv/bin/python benchmarks/mlm_plateau.py --model=num_latents=128,num_layers=1
"""
import argparse
import functools
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# pylint: disable=wrong-import-position
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from perceiver.tasks.language import models
from perceiver.tasks.language import recipes
from perceiver.tasks.language import data


def _overrides(text):
  """'num_latents=128,z_pos_enc_init_scale=1.0' -> kwargs of mlm_config."""
  out = {}
  for item in filter(None, text.split(',')):
    key, _, value = item.partition('=')
    out[key] = float(value) if '.' in value else int(value)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', default='/tmp/mlm_plateau',
                      help='holds the prepared TFDS corpus')
  parser.add_argument('--steps', type=int, default=400)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--lr', type=float, default=2e-3)
  parser.add_argument('--optimizer', choices=('lamb', 'adam'), default='lamb')
  parser.add_argument('--copy_weight', type=float, default=0.0,
                      help='loss weight of the unmasked bytes (0: MLM only)')
  parser.add_argument('--fixed_batch', action='store_true',
                      help='train on the first batch only')
  parser.add_argument('--model', default='',
                      help='mlm_config / PerceiverEncoder overrides of SMALL')
  parser.add_argument('--every', type=int, default=100)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()

  cfg = recipes.mlm('mlm_bytes', {'embedded': True, 'small': True})
  cfg.input.data_dir = os.path.join(args.workdir, 'tensorflow_datasets')
  cfg.input.docs_per_example = 1
  cfg.input.global_batch_size = args.batch
  batches = data.mlm_train_iterator(
      cfg.input, data_dir=cfg.input.data_dir, seed=args.seed, start_step=0,
      process_index=0, process_count=1)

  model = models.mlm_config(vocab_size=models.BYTES_VOCAB_SIZE,
                            **{**recipes.SMALL, **_overrides(args.model)})
  forward = hk.transform(functools.partial(models.mlm(model),
                                           is_training=True))
  batch = next(batches)
  params = forward.init(jax.random.PRNGKey(args.seed), batch['inputs'],
                        batch['input_mask'])
  logits = np.asarray(forward.apply(params, None, batch['inputs'],
                                    batch['input_mask']))  # [B, T, V]
  print(f'at init: logit std across positions {logits.std(1).mean():.2f}, '
        f'across bytes {logits.std(2).mean():.2f}', flush=True)
  warmup = max(args.steps // 10, 1)
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, args.lr, warmup, max(args.steps, warmup + 1))
  opt = (optax.lamb(schedule, weight_decay=0.01) if args.optimizer == 'lamb'
         else optax.adam(schedule))
  opt_state = opt.init(params)

  def loss_fn(p, b):
    logits = forward.apply(p, None, b['inputs'], b['input_mask'])
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits),
                               b['targets'][..., None], -1)[..., 0]
    correct = logits.argmax(-1) == b['targets']
    masked = b['loss_weights']
    unmasked = (1.0 - masked) * b['input_mask']
    weights = masked + args.copy_weight * unmasked
    mean = lambda x, w: jnp.sum(x * w) / jnp.maximum(jnp.sum(w), 1.0)
    return mean(nll, weights), jnp.stack(
        [mean(correct, masked), mean(nll, masked), mean(correct, unmasked)])

  @jax.jit
  def step(p, s, b):
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, b)
    updates, s = opt.update(grads, s, p)
    return optax.apply_updates(p, updates), s, metrics

  start, window = time.time(), []
  for i in range(1, args.steps + 1):
    if not args.fixed_batch:
      batch = next(batches)
    params, opt_state, metrics = step(params, opt_state, batch)
    window.append(np.asarray(metrics))  # blocks every step
    if i % args.every == 0:
      acc, nll, copy = np.mean(window, axis=0)
      window = []
      print(f'step {i}: masked acc {acc:.4f} | masked nll {nll:.3f} | '
            f'copy acc {copy:.4f} | {time.time() - start:.0f} s', flush=True)


if __name__ == '__main__':
  main()
