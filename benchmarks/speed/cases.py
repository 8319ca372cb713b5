"""The training steps the path benchmarks compare (bench_paths, bench_accel).

Glossary of shapes: B per-device batch, H, W image, T text positions,
K classes, V vocabulary.

A case is one model's training step, built on either path:
  'exact'  the release-exact path: `hk.layer_stack` off, dense attention, no
           remat, the release's kernels, float32
           (`perceiver.train.config_lib.release_exact`);
  'fast'   the path the experiments train on: scanned layers, the fast
           kernels (perceiver.kernels), and chunked attention and remat
           where bench_paths measured that they pay.

Image and language cases are the experiments themselves: the recipe's
config (perceiver/tasks/<name>/recipes.py), the task's model and loss
(`make_model`, `loss_and_metrics`) and the recipe's optimiser
(`perceiver.train.optim`), so the benchmark measures what a user trains.
Optical flow and video autoencoding are built from their release specs
(perceiver/release_specs) through perceiver/builders.py, with a stand-in
loss (the mean square of every output: the loss is a negligible part of the
step) and LAMB. Only the switches of `FAST` differ between the paths.

Adding a task: write `def my_case(path, batch, *, tiny=False) -> Case` (a
recipe's config through `_from_config`, or a spec through `_from_spec`) and
add it to CASES; bench_paths and bench_accel pick it up by name. Scripts
that need another batch or loss build a case of any config with
`from_config` (bench_peer does).
"""
import dataclasses
import os
import sys
from typing import Any, Callable, Mapping, Optional, Sequence

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from perceiver import builders
from perceiver import mixed_precision
from perceiver import release_specs
from perceiver.train import config_lib
from perceiver.train import optim
# pylint: enable=g-import-not-at-top,wrong-import-position

PATHS = ('exact', 'fast')
GiB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Case:
  """One model's training step on one path.

  Attributes:
    model: forward(batch, *, is_training) -> outputs, transformed with state.
    shapes: the per-device batch as {name: jax.ShapeDtypeStruct}.
    int_ranges: {name: n} integer entries are drawn from [0, n) (2 if absent).
    loss: (outputs, batch) -> scalar loss.
    tx: the optimiser.
    compute_dtype: 'float32' or 'bfloat16' (perceiver.mixed_precision).
    fast_kernels: trace inside perceiver.kernels.fast_kernels().
    switches: the fast-path switches in use (for the printout).
  """
  model: hk.TransformedWithState
  shapes: Mapping[str, jax.ShapeDtypeStruct]
  int_ranges: Mapping[str, int]
  loss: Callable[[Any, Mapping[str, jax.Array]], jax.Array]
  tx: optax.GradientTransformation
  compute_dtype: str = 'float32'
  fast_kernels: bool = False
  switches: str = ''

  def precision(self):
    """The trace-time scopes of the path (as trainer.precision_scope)."""
    return mixed_precision.trace_scope(self.compute_dtype, self.fast_kernels)


# ---------------------------------------------------------------------------
# The train step, abstract state and lowering (nothing full-size allocated).
# ---------------------------------------------------------------------------


def init_fn(case: Case):
  """rng -> (params, state, opt_state)."""
  def init(rng):
    example = {k: jnp.zeros(s.shape, s.dtype) for k, s in case.shapes.items()}
    with case.precision():
      params, state = case.model.init(rng, example, is_training=True)
    return params, state, case.tx.init(params)
  return init


def train_step(case: Case):
  """(params, state, opt_state, batch, rng) -> (params, state, opt_state,
  loss): value_and_grad of the loss and one optimiser update, as the
  trainer's step on one device (no cross-device mean)."""
  def step(params, state, opt_state, batch, rng):
    def loss_fn(p):
      with case.precision():
        outputs, new_state = case.model.apply(p, state, rng, batch,
                                              is_training=True)
      return case.loss(outputs, batch), new_state

    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params)
    updates, opt_state = case.tx.update(grads, opt_state, params)
    new_state = jax.tree.map(lambda n, o: n.astype(o.dtype), new_state, state)
    return optax.apply_updates(params, updates), new_state, opt_state, loss
  return step


def abstract_args(case: Case):
  """The step's arguments as shape structs (jax.eval_shape: no memory)."""
  params, state, opt_state = jax.eval_shape(init_fn(case),
                                            jax.random.PRNGKey(0))
  rng = jax.ShapeDtypeStruct((2,), jnp.uint32)
  return params, state, opt_state, dict(case.shapes), rng


def lower(case: Case):
  """The jitted step (params, state and optimiser state donated), lowered
  on shape structs."""
  return jax.jit(train_step(case), donate_argnums=(0, 1, 2)).lower(
      *abstract_args(case))


def sample_batch(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
  """Random host arrays of the case's batch shapes."""
  rng = np.random.default_rng(seed)
  batch = {}
  for name, s in case.shapes.items():
    if jnp.issubdtype(s.dtype, jnp.integer):
      batch[name] = rng.integers(0, case.int_ranges.get(name, 2),
                                 size=s.shape).astype(s.dtype)
    else:
      batch[name] = rng.normal(size=s.shape).astype(s.dtype)
  return batch


def planned_bytes(compiled) -> dict[str, int]:
  """XLA's plan for one call: argument, output, temp, alias, and peak =
  argument + output + temp - alias (donated buffers counted once)."""
  m = compiled.memory_analysis()
  out = {'argument': m.argument_size_in_bytes,
         'output': m.output_size_in_bytes,
         'temp': m.temp_size_in_bytes, 'alias': m.alias_size_in_bytes}
  out['peak'] = out['argument'] + out['output'] + out['temp'] - out['alias']
  return out


# ---------------------------------------------------------------------------
# The fast path of each case.
# ---------------------------------------------------------------------------

# Builder-level cases: the switches of the fast path, as model kwargs.
# Chunk sizes: only the big cross-attentions are chunked (a kv chunk larger
# than the latent count leaves the latent self-attention in one dense chunk;
# perceiver.attention runs single-chunk attention densely).
FAST = {
    'optical_flow': dict(encoder=dict(scan_layers=True, remat=True,
                                      kv_chunk_size=8192),
                         decoder=dict(q_chunk_size=8192)),
    'video_autoencoding': dict(encoder=dict(scan_layers=True, remat=True,
                                            kv_chunk_size=8192),
                               decoder={}),
}


def describe(config: ml_collections.ConfigDict) -> str:
  """The fast-path switches of an experiment config, for printouts."""
  parts = [name for name in ('scan_layers', 'remat', 'fast_kernels')
           if config.get(name)]
  for part in ('encoder', 'decoder'):
    sub = config.model.get(part) or {}
    for key in config_lib.CHUNK_KEYS:
      if sub.get(key):
        parts.append(f'{part}.{key}={sub[key]}')
  if config.compute_dtype != 'float32':
    parts.append(config.compute_dtype)
  return ', '.join(parts) or 'none'


def _from_config(config: ml_collections.ConfigDict, path: str, batch: int,
                 shapes: Mapping[str, jax.ShapeDtypeStruct],
                 int_ranges: Mapping[str, int],
                 compute_dtype: Optional[str]) -> Case:
  """A case of an experiment config: its task's model and loss, its
  optimiser; the exact path through config_lib.release_exact."""
  if path not in PATHS:
    raise ValueError(f'path={path!r}; use one of {PATHS}.')
  if path == 'exact':
    config = config_lib.release_exact(config)
  elif compute_dtype:
    config.compute_dtype = compute_dtype
  task = config_lib.load_task(config)
  schedule = optim.make_schedule(config.schedule,
                                 max(config.num_train_steps, 1))
  del batch
  return Case(
      model=task.make_model(config), shapes=shapes, int_ranges=int_ranges,
      loss=lambda out, b: task.loss_and_metrics(out, b, config)[0],
      tx=optim.make_optimizer(config.optimizer, schedule),
      compute_dtype=config.compute_dtype,
      fast_kernels=bool(config.get('fast_kernels')),
      switches=describe(config))


def from_config(config: ml_collections.ConfigDict, path: str,
                shapes: Mapping[str, jax.ShapeDtypeStruct], *,
                int_ranges: Optional[Mapping[str, int]] = None,
                compute_dtype: Optional[str] = None) -> Case:
  """A case of any experiment config on `path`, for the batch `shapes`
  (what the task's model reads, plus whatever a replaced loss reads)."""
  return _from_config(config, path, 0, shapes, int_ranges or {},
                      compute_dtype)


def _shape(shape, dtype) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(tuple(int(d) for d in shape), jnp.dtype(dtype))


def _image(config, path, batch, compute_dtype):
  size = config.input.get('image_size', 224)
  channels = config.model.get('input_channels') or 3
  shapes = {'images': _shape((batch, size, size, channels), jnp.float32),
            'labels': _shape((batch, config.model.num_classes), jnp.float32)}
  return _from_config(config, path, batch, shapes, {}, compute_dtype)


def _mlm(config, path, batch, compute_dtype):
  t = config.input.sequence_length
  vocab = config.model.vocab_size
  shapes = {'inputs': _shape((batch, t), jnp.int32),
            'input_mask': _shape((batch, t), jnp.int32),
            'targets': _shape((batch, t), jnp.int32),
            'loss_weights': _shape((batch, t), jnp.float32),
            'target_mask': _shape((batch, t), jnp.float32)}
  return _from_config(config, path, batch, shapes,
                      {'inputs': vocab, 'targets': vocab}, compute_dtype)


def _recipe(module: str, *args):
  import importlib  # pylint: disable=g-import-not-at-top
  return getattr(importlib.import_module(module), args[0])(*args[1:])


def imagenet_fourier(path: str, batch: int, *, tiny: bool = False,
                     compute_dtype: Optional[str] = None) -> Case:
  """experiments/imagenet_fourier.py (tiny: its smoke variant, 32x32)."""
  config = _recipe('perceiver.tasks.image.recipes', 'from_variants', 'fourier',
                   {'smoke': True} if tiny else {})
  return _image(config, path, batch, compute_dtype)


def mlm_bytes(path: str, batch: int, *, tiny: bool = False,
              compute_dtype: Optional[str] = None) -> Case:
  """experiments/mlm_bytes.py (tiny: its smoke variant, T = 64)."""
  config = _recipe('perceiver.tasks.language.recipes', 'mlm', 'mlm_bytes',
                   {'smoke': True} if tiny else {})
  return _mlm(config, path, batch, compute_dtype)


def fourier_classifier(*, num_classes: int, num_bands: int,
                       max_resolution: tuple[int, int], layers: int,
                       blocks: int = 2, latents: int = 128,
                       channels: int = 256, heads: int = 8
                       ) -> dict[str, Any]:
  """builders.image_classifier kwargs: pixels plus 2D Fourier features, N x
  D = latents x channels, `blocks` x `layers` shared self-attention layers
  of `heads` heads, 1-head cross-attention, widening 1, the classification
  decoder."""
  return dict(
      num_classes=num_classes, input_channels=3,
      input_preprocessor=dict(
          position_encoding_type='fourier', prep_type='pixels',
          spatial_downsample=1,
          fourier_position_encoding_kwargs=dict(
              num_bands=num_bands, max_resolution=tuple(max_resolution),
              sine_only=False, concat_pos=True)),
      encoder=dict(num_self_attends_per_block=layers, num_blocks=blocks,
                   z_index_dim=latents, num_z_channels=channels,
                   num_cross_attend_heads=1, num_self_attend_heads=heads,
                   cross_attend_widening_factor=1,
                   self_attend_widening_factor=1, dropout_prob=0.0),
      decoder=dict(num_z_channels=channels, use_query_residual=True,
                   position_encoding_type='trainable',
                   trainable_position_encoding_kwargs=dict(
                       num_channels=channels)),
      projection_decoder=False)


def bytes_mlm(*, seq: int, d_model: int, channels: int, layers: int,
              qk: int, heads: int = 8, latents: int = 128,
              decoder_qk: int = 0, decoder_heads: int = 8
              ) -> dict[str, Any]:
  """builders.mlm kwargs: T = seq bytes embedded in d_model, N x D = latents
  x channels, `layers` self-attention layers and the cross-attention of
  `heads` heads (qk `qk`, v = D), widening 1; the decoder's per-position
  queries (d_model wide) read the latents with `decoder_heads` heads (qk
  `decoder_qk`, default `qk`; v = d_model)."""
  return dict(
      vocab_size=262, d_model=d_model, max_seq_len=seq,
      encoder=dict(num_self_attends_per_block=layers, num_blocks=1,
                   z_index_dim=latents, num_z_channels=channels,
                   num_self_attend_heads=heads, num_cross_attend_heads=heads,
                   qk_channels=qk, v_channels=channels,
                   use_query_residual=True, cross_attend_widening_factor=1,
                   self_attend_widening_factor=1),
      decoder=dict(output_num_channels=channels,
                   position_encoding_type='trainable',
                   output_index_dims=seq, num_z_channels=channels,
                   qk_channels=decoder_qk or qk, v_channels=d_model,
                   num_heads=decoder_heads, final_project=False,
                   use_query_residual=False,
                   trainable_position_encoding_kwargs=dict(
                       num_channels=d_model)))


# The reduced configs of speed/bench_core.py ("core"): the ImageNet and
# MLM recipes with a small model, for timing on a CPU.
SMALL_CLASSIFIER = fourier_classifier(num_classes=100, num_bands=32,
                                      max_resolution=(64, 64), layers=2)
SMALL_MLM_SEQ = 512
SMALL_MLM = bytes_mlm(seq=SMALL_MLM_SEQ, d_model=256, channels=384,
                      layers=4, qk=128)


def swap_model(config, model: Mapping[str, Any]):
  """config with `model` in place of config.model, keeping the recipe's
  chunk sizes (the fast path's switches stay the recipe's)."""
  new = ml_collections.ConfigDict(dict(model))
  for part in ('encoder', 'decoder'):
    old = config.model.get(part) or {}
    for key in config_lib.CHUNK_KEYS:
      if old.get(key) and part in new:
        new[part][key] = old[key]
  config.model = new
  return config


def imagenet_small(path: str, batch: int, *, tiny: bool = False,
                   compute_dtype: Optional[str] = None) -> Case:
  """The ImageNet recipe on 64x64 images with SMALL_CLASSIFIER (M = 4096,
  N x D = 128 x 256, 2 blocks of 2 shared layers)."""
  del tiny
  config = _recipe('perceiver.tasks.image.recipes', 'from_variants',
                   'fourier', {})
  config.input.image_size = 64
  return _image(swap_model(config, SMALL_CLASSIFIER), path, batch,
                compute_dtype)


def mlm_small(path: str, batch: int, *, tiny: bool = False,
              compute_dtype: Optional[str] = None) -> Case:
  """The MLM recipe on 512 bytes with SMALL_MLM (N x D = 128 x 384, 4
  layers), without gradient accumulation."""
  del tiny
  config = _recipe('perceiver.tasks.language.recipes', 'mlm', 'mlm_bytes', {})
  config.input.sequence_length = SMALL_MLM_SEQ
  config.optimizer.grad_accum_steps = 1
  return _mlm(swap_model(config, SMALL_MLM), path, batch, compute_dtype)


def _mean_square(outputs, batch) -> jax.Array:
  """Stand-in loss: the mean square of every output array, summed."""
  del batch
  return sum(jnp.mean(jnp.square(x.astype(jnp.float32)))
             for x in jax.tree.leaves(outputs))


def _from_spec(spec: Mapping[str, Any], fast: Mapping[str, Any], path: str,
               batch: int, compute_dtype: Optional[str],
               build: Optional[Callable[..., Any]] = None) -> Case:
  """A case of a release spec, built by perceiver.model_card: the encoder
  kwargs of fast['encoder'] and the decoder kwargs of fast['decoder'] are
  added on the fast path."""
  if path not in PATHS:
    raise ValueError(f'path={path!r}; use one of {PATHS}.')
  spec = dict(spec)
  encoder = {}
  if path == 'fast':
    encoder = dict(fast.get('encoder', {}))
    if fast.get('decoder'):
      spec['decoder'] = dict(spec['decoder'], **fast['decoder'])
  forward = (build or builders.build)(spec, **encoder)
  names = builders.INPUT_NAMES[spec['builder']]
  inputs = builders.example_inputs(spec, batch)

  def apply(b, *, is_training):
    return forward(*[b[n] for n in names], is_training=is_training)

  switches = [f'encoder.{k}={v}' for k, v in encoder.items()] + [
      f'decoder.{k}={v}' for k, v in (fast.get('decoder') or {}).items()
      if path == 'fast'] + (['fast_kernels'] if path == 'fast' else [])
  dtype = (compute_dtype if path == 'fast' and compute_dtype else 'float32')
  return Case(model=hk.transform_with_state(apply),
              shapes=dict(zip(names, inputs)), int_ranges={},
              loss=_mean_square, tx=optax.lamb(1e-3, weight_decay=0.01),
              compute_dtype=dtype, fast_kernels=path == 'fast',
              switches=', '.join(switches) + (
                  f', {dtype}' if dtype != 'float32' else '') or 'none')


def optical_flow(path: str, batch: int, *, tiny: bool = False,
                 compute_dtype: Optional[str] = None) -> Case:
  """The released flow model (368x496 frame pairs, 2048 x 512 latents, 24
  layers; perceiver/release_specs/full_optical_flow.json)."""
  del tiny
  return _from_spec(release_specs.load('full_optical_flow'),
                    FAST['optical_flow'], path, batch, compute_dtype)


def video_autoencoding(path: str, batch: int, *, tiny: bool = False,
                       compute_dtype: Optional[str] = None) -> Case:
  """The released Kinetics autoencoder decoding [P]'s training outputs (512
  pixels, 512 audio patches, the label; App. I)."""
  del tiny
  return _from_spec(release_specs.load('full_video_autoencoding'),
                    FAST['video_autoencoding'], path, batch, compute_dtype,
                    build=builders.build_video_train_decode)


CASES: dict[str, Callable[..., Case]] = {
    'imagenet_small': imagenet_small,
    'mlm_small': mlm_small,
    'imagenet_fourier': imagenet_fourier,
    'mlm_bytes': mlm_bytes,
    'optical_flow': optical_flow,
    'video_autoencoding': video_autoencoding,
}


def get(name: str, path: str, batch: int, **kwargs) -> Case:
  if name not in CASES:
    raise ValueError(f'Unknown case {name!r}; known: {sorted(CASES)}.')
  return CASES[name](path, batch, **kwargs)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """Rows as a right-aligned plain-text table under `header`."""
  widths = [max(len(str(r[i])) for r in list(rows) + [header])
            for i in range(len(header))]
  lines = [' | '.join(h.rjust(w) for h, w in zip(header, widths)),
           '-+-'.join('-' * w for w in widths)]
  for row in rows:
    lines.append(' | '.join(str(c).rjust(w) for c, w in zip(row, widths)))
  return '\n'.join(lines)
