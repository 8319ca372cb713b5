r"""Why the small bytes MLM sits on the unigram plateau (repro/LANGUAGE.md).

Not a test. One run of a bare training loop (no checkpoints, so a probe
is quick; the project's optimiser, benchmarks/probes/optimiser.py) on the
CPU-sized MLM of benchmarks/repro/language_repro.py, or on a same-size
BERT-style byte Transformer, with the knobs of the ablations.

Shapes: B batch, T bytes per example, V = 262 byte vocabulary, E = 128
channels of the embedding and the decoder queries, N latents.

Data: the batches of the MLM task (KJV + Shakespeare, 1 document per
example, random T-byte crop, masking p = 0.15, loss on the masked bytes),
made once by `perceiver.tasks.language.data` (config.input) and cached in
`--workdir`, so that every arm trains on exactly the same examples in the
same order; batches are drawn with data seed 0 whatever `--seed` (the init
seed). `--masking=word` is the release's whole-word masking
(config.input.mask_unit='word'); `--masking=byte` masks every byte inside a
word independently (mask_unit='token': the same maskable bytes, so the same
unigram baseline). The held-out set is the validation split (121
books/plays) read 4 times with fixed masks (484 examples).

Models (`--arch`):
  perceiver  models.mlm (= builders.mlm, the released MLM design) at
             recipes.SMALL size (776k params): Embed + input positions ->
             N = 32 latents x 160 channels, 4 self-attention layers -> T
             learned queries of E channels -> logits tied to the embedding.
  bert       an encoder-only pre-LayerNorm Transformer of the same size
             (4 layers of E = 128, 4 heads, qk 64, MLP 4E; 777k params), the
             same embedding, learned input positions and tied logits, and a
             final LayerNorm: every byte keeps its own residual stream.

Knobs, each a config field of the library (release values are the
defaults): --input_pos {trainable, fourier} (config.model.
input_position_encoding), --input_pos_scale (input_position_init_scale,
0.02), --query_pos_scale (query_position_init_scale, 0.02), --latents
(num_latents), --cross_heads (cross_attend_heads), --layers, --seq_len
(max_seq_len and config.input.sequence_length), --masking
(config.input.mask_unit), --optimizer {lamb, adamw}, --lr, --warmup,
--weight_decay (config.optimizer.name and .weight_decay, config.schedule:
'warmup_cosine'), --embed_scale (embedding_init_scale: the token table's
init stddev, hk.Embed's 1.0 in the release; BERT's too). --copy_weight
puts the unmasked bytes in the loss too (a copy probe).

Prints the count baselines on the validation masks (the unigram: the
plateau; and a count model of a shallow context: (masked-run length, index
in it) for whole words, (left, right) neighbour bytes for single bytes),
then every --eval_every steps the train window's masked-byte accuracy and
NLL, the accuracy on unmasked bytes ("copy"), the validation masked-byte
accuracy and NLL, and the RMS of the embedding, input positions and
decoder queries. `--out FILE` appends the run as one JSON line (read by
benchmarks/probes/mlm_ablations.py).

  .venv/bin/python benchmarks/probes/mlm_plateau.py --steps=2000
  .venv/bin/python benchmarks/probes/mlm_plateau.py --steps=2000 --arch=bert
  .venv/bin/python benchmarks/probes/mlm_plateau.py --steps=2000 \
      --masking=byte \
      --input_pos=fourier
"""
import argparse
import functools
import json
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
from perceiver import builders
from perceiver import io_processors
from perceiver import perceiver
from perceiver import position_encoding
from perceiver.tasks.language import data
from perceiver.tasks.language import models
from perceiver.tasks.language import recipes

V = models.BYTES_VOCAB_SIZE
CONTEXT = {'word': 'given (run length, index in run)',
           'byte': 'given (left, right) bytes'}


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  a = p.add_argument
  a('--workdir', default='/tmp/mlm_plateau',
    help='holds the prepared TFDS corpus and the cached batches')
  a('--arch', choices=('perceiver', 'bert'), default='perceiver')
  a('--steps', type=int, default=2000)
  a('--batch', type=int, default=32)
  a('--seq_len', type=int, default=128)
  a('--latents', type=int, default=32)
  a('--layers', type=int, default=4)
  a('--cross_heads', type=int, default=0,
    help="encoder cross-attention heads (0: the self-attention's 4)")
  a('--input_pos', choices=('trainable', 'fourier'), default='trainable')
  a('--input_pos_scale', type=float, default=0.02)
  a('--query_pos_scale', type=float, default=0.02)
  a('--embed_scale', type=float, default=1.0,
    help='init stddev of the token embedding (= tied logits)')
  a('--masking', choices=('word', 'byte'), default='word')
  a('--mask_prob', type=float, default=0.15)
  a('--optimizer', choices=('lamb', 'adamw'), default='lamb')
  a('--lr', type=float, default=2e-3)
  a('--warmup', type=int, default=-1, help='-1: 10%% of --steps')
  a('--weight_decay', type=float, default=0.01)
  a('--copy_weight', type=float, default=0.0,
    help='loss weight of the unmasked bytes (0: MLM only)')
  a('--fixed_batch', action='store_true', help='train on the first batch only')
  a('--eval_every', type=int, default=250)
  a('--seed', type=int, default=0, help='init seed (the data is seed 0)')
  a('--name', default='', help='run name in --out')
  a('--out', default='', help='append the run as a JSON line to this file')
  return p


# ---------------------------------------------------------------------------
# Data: the MLM task's batches, cached.
# ---------------------------------------------------------------------------


def _input_config(args):
  cfg = recipes.mlm('mlm_bytes', {'embedded': True, 'small': True}).input
  cfg.data_dir = os.path.join(args.workdir, 'tensorflow_datasets')
  cfg.docs_per_example = 1
  cfg.global_batch_size = args.batch
  cfg.eval_batch_size = 64
  cfg.eval_epochs = 4
  cfg.sequence_length = args.seq_len
  cfg.mask_prob = args.mask_prob
  cfg.mask_unit = 'token' if args.masking == 'byte' else 'word'
  return cfg


def _stack(batches):
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def _compact(ex):
  """int16 ids and int8 masks (the cache of 4000 steps stays small)."""
  return {'inputs': ex['inputs'].astype(np.int16),
          'targets': ex['targets'].astype(np.int16),
          'input_mask': ex['input_mask'].astype(np.int8),
          'target_mask': ex['target_mask'].astype(np.int8)}


def cached_batches(args):
  """({feature: [S, B, T]} train, {feature: [n, T]} validation)."""
  os.makedirs(args.workdir, exist_ok=True)
  path = os.path.join(args.workdir, f'batches_T{args.seq_len}_B{args.batch}'
                      f'_p{args.mask_prob:g}_{args.masking}.npz')
  if os.path.exists(path):
    with np.load(path) as f:
      if f['train_inputs'].shape[0] < args.steps:
        os.remove(path)
  if not os.path.exists(path):
    cfg = _input_config(args)
    it = data.mlm_train_iterator(cfg, data_dir=cfg.data_dir, seed=0,
                                 start_step=0, process_index=0,
                                 process_count=1)
    train = _compact(_stack([next(it) for _ in range(max(args.steps,
                                                         4000))]))
    batches, _ = data.mlm_eval_iterator(cfg, 'validation',
                                        data_dir=cfg.data_dir,
                                        process_index=0, process_count=1)
    val = _stack(list(batches))
    real = val.pop('mask').reshape(-1) > 0
    val = _compact({k: v.reshape((-1,) + v.shape[2:])[real]
                    for k, v in val.items()})
    np.savez(path, **{f'train_{k}': v for k, v in train.items()},
             **{f'val_{k}': v for k, v in val.items()})
  with np.load(path) as f:
    train = {k[6:]: f[k][:args.steps] for k in f.files
             if k.startswith('train_')}
    val = {k[4:]: f[k] for k in f.files if k.startswith('val_')}
  return train, val


def _index_in_run(masked):
  """[n, T] bool -> 0-based index of each True within its run of Trues."""
  count = np.cumsum(masked, axis=1)
  reset = np.maximum.accumulate(np.where(masked, 0, count), axis=1)
  return np.where(masked, count - reset - 1, -1)


def _contexts(ex, masking):
  """Per masked byte: the context a count model conditions on, [K, 2]."""
  masked = ex['target_mask'] > 0
  if masking == 'word':  # (masked-run length (capped at 12), index in it)
    idx = _index_in_run(masked)
    length = idx + _index_in_run(masked[:, ::-1])[:, ::-1] + 1
    return np.stack([np.minimum(length, 12)[masked], idx[masked]], 1)
  inputs = ex['inputs'].astype(np.int64)  # byte: (left, right) input bytes
  left = np.pad(inputs, ((0, 0), (1, 0)))[:, :-1]
  right = np.pad(inputs, ((0, 0), (0, 1)))[:, 1:]
  return np.stack([left[masked], right[masked]], 1)


def count_baselines(train, val, masking, prior=10.0):
  """{name: (accuracy, NLL)} of count models on val's masked bytes.

  'unigram': the training set's masked-byte frequencies (the plateau).
  'context': frequencies given a shallow context (`_contexts`): for whole
  words, the length of the masked run and the byte's index in it; for
  single bytes, the two neighbouring input bytes. Smoothed towards the
  unigram with `prior` pseudo-counts.
  """
  flat = lambda d: {k: v.reshape(-1, v.shape[-1]) for k, v in d.items()}
  train, val = flat(train), flat(val)
  y_tr = train['targets'][train['target_mask'] > 0].astype(np.int64)
  y_va = val['targets'][val['target_mask'] > 0].astype(np.int64)
  uni = np.bincount(y_tr, minlength=V) + 0.5
  uni = uni / uni.sum()
  out = {'unigram': (float(np.mean(y_va == np.argmax(uni))),
                     float(-np.mean(np.log(uni[y_va]))))}
  c_tr, c_va = _contexts(train, masking), _contexts(val, masking)
  keys, k_tr = np.unique(c_tr, axis=0, return_inverse=True)
  counts = np.zeros((len(keys), V))
  np.add.at(counts, (k_tr.reshape(-1), y_tr), 1.0)
  lookup = {tuple(k): i for i, k in enumerate(keys)}
  rows = np.array([lookup.get(tuple(k), -1) for k in c_va])
  seen = np.where(rows[:, None] >= 0, counts[np.maximum(rows, 0)], 0.0)
  prob = (seen + prior * uni) / (seen.sum(1, keepdims=True) + prior)
  out['context'] = (float(np.mean(np.argmax(prob, 1) == y_va)),
                    float(-np.mean(np.log(prob[np.arange(len(y_va)), y_va]))))
  return out


# ---------------------------------------------------------------------------
# Models.
# ---------------------------------------------------------------------------


def perceiver_mlm(args):
  """models.mlm (builders.mlm, the release's MLM) at recipes.SMALL size
  with the ablation knobs, which are its config fields."""
  return models.mlm(models.mlm_config(vocab_size=V, **{
      **recipes.SMALL, 'max_seq_len': args.seq_len,
      'num_latents': args.latents, 'num_layers': args.layers,
      'input_position_encoding': args.input_pos,
      'input_position_init_scale': args.input_pos_scale,
      'query_position_init_scale': args.query_pos_scale,
      'embedding_init_scale': args.embed_scale,
      'cross_attend_heads': args.cross_heads or None}))


def bert_mlm(args):
  """A same-size encoder-only byte Transformer with tied logits."""

  def forward(inputs, input_mask, *, is_training):
    embedding_layer = builders.token_embedding(V, 128, args.embed_scale)
    x = embedding_layer(inputs) + position_encoding.TrainablePositionEncoding(
        index_dim=args.seq_len, num_channels=128,
        init_scale=args.input_pos_scale)(inputs.shape[0])
    mask = perceiver.make_cross_attention_mask(input_mask, input_mask)
    for _ in range(args.layers):
      x = perceiver.SelfAttention(
          widening_factor=4, num_heads=4, qk_channels=64, v_channels=128)(
              x, attention_mask=mask, is_training=is_training)
    x = perceiver.layer_norm(x)
    return io_processors.EmbeddingDecoder(
        embedding_matrix=embedding_layer.embeddings)(x)

  return forward


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------


def optimizer_config(args):
  """--optimizer, --lr, --warmup, --weight_decay as the project's fields:
  a linear warmup, then a cosine to 0 at --steps."""
  warmup = args.warmup if args.warmup >= 0 else args.steps // 10
  return optimiser.config(name=args.optimizer, lr=args.lr, steps=args.steps,
                          warmup=warmup,
                          weight_decay=args.weight_decay)


def optimizer(args):
  return optimiser.make(optimizer_config(args))


def _scales(params):
  """RMS of the embedding, the input positions and the decoder queries."""
  rms = lambda x: float(jnp.sqrt(jnp.mean(jnp.square(x))))
  out = {'embed_rms': rms(params['embed']['embeddings'])}
  for module, leaves in params.items():
    if module == 'trainable_position_encoding':
      out['input_pos_rms'] = rms(leaves['pos_embs'])
    elif module.endswith('basic_decoder/~/trainable_position_encoding'):
      out['query_rms'] = rms(leaves['pos_embs'])
  return out


def _load():
  return os.getloadavg()[0]


def run(args):
  """Trains one arm; returns the JSON-able record (and prints progress)."""
  train, val = cached_batches(args)
  baselines = count_baselines(train, val, args.masking)
  (uni_acc, uni_nll), (ctx_acc, ctx_nll) = (baselines['unigram'],
                                            baselines['context'])
  print(f'count baselines on validation: unigram masked acc {uni_acc:.4f} '
        f'nll {uni_nll:.3f}; {CONTEXT[args.masking]} masked acc '
        f'{ctx_acc:.4f} nll {ctx_nll:.3f}', flush=True)

  build = perceiver_mlm if args.arch == 'perceiver' else bert_mlm
  forward = hk.transform(functools.partial(build(args), is_training=True))
  first = {k: v[0].astype(np.int32) for k, v in train.items()}
  params = forward.init(jax.random.PRNGKey(args.seed), first['inputs'],
                        first['input_mask'])
  num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  logits = np.asarray(forward.apply(params, None, first['inputs'],
                                    first['input_mask']))  # [B, T, V]
  print(f'{args.arch}: {num_params:,} params; at init, logit std across '
        f'positions {logits.std(1).mean():.2f}, across bytes '
        f'{logits.std(2).mean():.2f}', flush=True)
  opt = optimizer(args)
  opt_state = opt.init(params)

  def metrics_fn(p, b):
    b = {k: v.astype(jnp.int32) for k, v in b.items()}
    logits = forward.apply(p, None, b['inputs'], b['input_mask'])
    nll = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                          b['targets'])
    correct = (logits.argmax(-1) == b['targets']).astype(jnp.float32)
    masked = b['target_mask'].astype(jnp.float32)
    unmasked = (1.0 - masked) * b['input_mask']
    weights = masked + args.copy_weight * unmasked
    total = lambda x, w: jnp.stack([jnp.sum(x * w), jnp.sum(w)])
    loss = jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    # Sums and counts: [masked correct, masked nll, unmasked correct].
    return loss, jnp.stack([total(correct, masked), total(nll, masked),
                            total(correct, unmasked)])

  @jax.jit
  def step(p, s, b):
    (_, sums), grads = jax.value_and_grad(metrics_fn, has_aux=True)(p, b)
    updates, s = opt.update(grads, s, p)
    return optax.apply_updates(p, updates), s, sums

  @jax.jit
  def eval_step(p, b):
    return metrics_fn(p, b)[1]

  def evaluate(p):
    n = val['inputs'].shape[0]
    sums = sum(np.asarray(eval_step(p, {k: v[i:i + 128] for k, v in
                                        val.items()}))
               for i in range(0, n, 128))
    return sums[0, 0] / sums[0, 1], sums[1, 0] / sums[1, 1]

  curve, window = [], []
  start = time.time()
  loads = [_load()]
  for i in range(1, args.steps + 1):
    b = first if args.fixed_batch else {k: v[i - 1] for k, v in train.items()}
    params, opt_state, sums = step(params, opt_state, b)
    window.append(sums)
    if i % 16 == 0 or i % args.eval_every == 0:
      window = [np.asarray(w) for w in window]  # blocks every 16 steps
    if i % args.eval_every == 0:
      w = np.sum(window, axis=0)
      window = []
      val_acc, val_nll = evaluate(params)
      scales = _scales(params)
      point = dict(step=i, **scales, train_acc=float(w[0, 0] / w[0, 1]),
                   train_nll=float(w[1, 0] / w[1, 1]),
                   copy_acc=float(w[2, 0] / max(w[2, 1], 1)),
                   val_acc=float(val_acc), val_nll=float(val_nll),
                   seconds=time.time() - start)
      loads.append(_load())
      curve.append(point)
      print(f'step {i}: train masked acc {point["train_acc"]:.4f} nll '
            f'{point["train_nll"]:.3f} | copy acc {point["copy_acc"]:.4f} | '
            f'val masked acc {val_acc:.4f} nll {val_nll:.3f} | '
            f'{point["seconds"]:.0f} s, load {loads[-1]:.1f} | rms ' +
            ' '.join(f'{k} {v:.3f}' for k, v in scales.items()), flush=True)
  seconds = time.time() - start
  record = dict(name=args.name, args=vars(args), num_params=num_params,
                unigram_acc=uni_acc, unigram_nll=uni_nll,
                context_acc=ctx_acc, context_nll=ctx_nll, curve=curve,
                seconds=seconds, steps_per_s=args.steps / seconds,
                mean_load=float(np.mean(loads)))
  print(f'{args.steps} steps in {seconds:.0f} s ({args.steps / seconds:.2f} '
        f'steps/s, mean load {record["mean_load"]:.1f} on '
        f'{os.cpu_count()} cores)', flush=True)
  if args.out:
    with open(args.out, 'a') as f:
      f.write(json.dumps(record) + '\n')
  return record


if __name__ == '__main__':
  run(parser().parse_args())
