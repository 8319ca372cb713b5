"""Optical flow: the task interface (perceiver/train/task.py) for training.

Glossary of shapes: B batch (per device inside the step), B_p per-process
batch, H, W the network's input size (a training crop), M = O = H*W inputs
and output queries; images [B, 2, H, W, 3] in [-1, 1], flow [B, H, W, 2]
(u, v) in pixels, valid [B, H, W].

Model: `builders.optical_flow` with `config.model` as its kwargs (the
architecture is described in perceiver/tasks/flow/recipes.py).

Loss. [P] does not state the loss. The release
fixes the output scale: the decoder's Linear output is divided by 100 and
multiplied by 20, and the result is flow in pixels of the input frames.
Training uses that same output (no other rescaling), against ground truth
in pixels. DEVIATION (paper silent): the loss is RAFT's, which trains on
the AutoFlow data the paper uses: the mean over pixels of |du| + |dv|
(`config.task.loss = 'l1'`; 'epe' takes the mean end-point error instead).
All pixels are supervised, occluded ones included, as RAFT and AutoFlow do
on dense synthetic flow (`config.task.supervise_occluded`); metrics count
only valid (non-occluded, in-frame) pixels.

Data (`config.input.source`). 'generated': training pairs are rendered on
the fly (perceiver.tasks.flow.autoflow) from (seed, example index).
'autoflow': the released static AutoFlow pairs under
`config.input.data_dir`, read and augmented by
perceiver.tasks.flow.autoflow_static (its docstring: the layout, the
held-out rule, the augmentation). Either way example i of step s is global
index (s - 1) * B + i, so the stream is a pure function of (seed, step) and
resume is exact. The augmentation curriculum ([P] App. H) is a list of
phases over the fraction of training done: `config.input.phase_ends` and
`phase_severities`; the first phase feeds each pair forward and reversed
when `reverse_first_phase`.

Evaluation in the training loop: split 'heldout', at the network's size,
without augmentation: `num_eval_examples` generated pairs from `eval_seed`
(a stream the training never draws), or the first `num_eval_examples`
held-out AutoFlow samples (`heldout_fraction` of them, never trained on),
centre-cropped. The best checkpoint is the lowest 'eval/epe'. Sintel,
KITTI and the real stereo pairs are evaluated at full resolution through
`builders.tiled_flow`, as [P] does, by perceiver.tasks.flow.inference
(launch/flow.py --dataset=...).
"""
from typing import Any, Iterator, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from perceiver import builders
from perceiver.tasks import common
from perceiver.tasks.flow import autoflow
from perceiver.tasks.flow import autoflow_static
from perceiver.tasks.flow import metrics as flow_metrics

HELDOUT = 'heldout'  # the one eval split of the training loop
TRAIN_STREAM, EVAL_STREAM = 0, 1  # autoflow.make_example streams
LOSSES = ('l1', 'epe')
SOURCES = ('generated', 'autoflow')  # config.input.source


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


def default_task_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.loss = 'l1'  # 'l1' (RAFT: |du| + |dv|) | 'epe' (||.||_2)
  c.supervise_occluded = True  # loss on every pixel, not only valid ones
  return c


def default_input_config(config: ml_collections.ConfigDict
                         ) -> ml_collections.ConfigDict:
  del config
  c = ml_collections.ConfigDict()
  c.image_size = (368, 496)  # (H, W) of the training crops = network input
  # 'generated' (rendered on the fly) | 'autoflow' (the released static
  # pairs under config.input.data_dir; autoflow_static.py).
  c.source = 'generated'
  c.heldout_fraction = autoflow_static.HELDOUT_FRACTION  # autoflow only
  c.read_threads = 8  # autoflow: threads per process reading a batch
  c.texture_dirs = ()  # image folders added to scikit-image's photos
  c.num_scenes = 0  # >0: cycle through this many scenes (AutoFlow: 400k)
  # Curriculum ([P] App. H): phase p covers the fraction of training up to
  # phase_ends[p], with augmentation severity phase_severities[p].
  c.phase_ends = (0.1, 0.4, 0.7, 1.0)
  c.phase_severities = (0.0, 1 / 3, 2 / 3, 1.0)
  c.reverse_first_phase = True  # phase 0 feeds each pair both ways
  # Scene ranges (autoflow.SceneOptions).
  c.min_layers = 2
  c.max_layers = 5
  c.max_translation = 0.1  # fraction of W, per axis
  c.max_rotation = 0.15  # radians
  c.max_log2_scale = 0.15
  c.nonrigid_lipschitz = 0.2
  # DEVIATION (not in [P]; off at 0): a motion curriculum. Over the first
  # `motion_warmup` fraction of training, every motion range above
  # (translation, rotation, scale, non-rigid) is scaled by a factor rising
  # linearly from `motion_start` to 1, so training starts from sub-pixel
  # motions, which each pixel's 3x3 patches alone determine. Evaluation
  # always uses the full ranges.
  c.motion_warmup = 0.0
  c.motion_start = 0.25
  c.num_eval_examples = 64  # held-out generated pairs
  c.eval_seed = 0  # their seed (stream EVAL_STREAM, apart from training)
  c.prefetch_batches = 2  # batches rendered ahead in a background thread
  return c


def check_source(source: str) -> None:
  if source not in SOURCES:
    raise ValueError(
        f'config.input.source={source!r}; use one of {SOURCES} (the variant '
        'source=generated|autoflow): generated pairs rendered on the fly, or '
        'the released static AutoFlow pairs under config.input.data_dir.')


def _check(config: ml_collections.ConfigDict) -> None:
  check_source(config.input.source)
  if not 0 < config.input.heldout_fraction < 1:
    raise ValueError(
        f'config.input.heldout_fraction={config.input.heldout_fraction} must '
        'lie in (0, 1): the fraction of AutoFlow samples held out for eval.')
  if config.task.loss not in LOSSES:
    raise ValueError(f'config.task.loss={config.task.loss!r}; use one of '
                     f'{LOSSES}.')
  cfg = config.input
  ends, sev = tuple(cfg.phase_ends), tuple(cfg.phase_severities)
  if not ends or len(ends) != len(sev):
    raise ValueError(f'config.input.phase_ends {ends} and phase_severities '
                     f'{sev} must be non-empty and of the same length.')
  if list(ends) != sorted(ends) or abs(ends[-1] - 1.0) > 1e-9:
    raise ValueError(f'config.input.phase_ends={ends} must increase to 1.0 '
                     '(fractions of config.num_train_steps).')
  if any(not 0 <= s <= 1 for s in sev):
    raise ValueError(f'config.input.phase_severities={sev} must lie in '
                     '[0, 1].')
  if not 0 <= cfg.motion_warmup <= 1 or not 0 < cfg.motion_start <= 1:
    raise ValueError(
        f'config.input.motion_warmup={cfg.motion_warmup} must lie in [0, 1] '
        f'(a fraction of training) and motion_start={cfg.motion_start} in '
        '(0, 1] (the first step\'s fraction of the motion ranges).')
  if cfg.motion_warmup and cfg.source != 'generated':
    raise ValueError(
        f'config.input.motion_warmup={cfg.motion_warmup} scales the motions '
        'of generated scenes; the static AutoFlow pairs have fixed motions. '
        'Use source=generated or drop the motion= variant.')
  model_shape = tuple(config.model.decoder.output_image_shape)
  if tuple(cfg.image_size) != model_shape:
    raise ValueError(
        f'config.input.image_size={tuple(cfg.image_size)} differs from the '
        f'network input config.model.decoder.output_image_shape='
        f'{model_shape}; set both to the training crop size.')


def scene_options(cfg: ml_collections.ConfigDict, motion: float = 1.0
                  ) -> autoflow.SceneOptions:
  """The scene ranges of `cfg`, every motion range times `motion`."""
  return autoflow.SceneOptions(
      min_layers=cfg.min_layers, max_layers=cfg.max_layers,
      max_translation=cfg.max_translation * motion,
      max_rotation=cfg.max_rotation * motion,
      max_log2_scale=cfg.max_log2_scale * motion,
      nonrigid_lipschitz=cfg.nonrigid_lipschitz * motion)


def motion_at(config: ml_collections.ConfigDict, step: int) -> float:
  """The motion curriculum's factor at training step `step` (1-based)."""
  warmup = float(config.input.motion_warmup)
  if warmup <= 0:
    return 1.0
  fraction = (step - 1) / max(config.num_train_steps, 1)
  start = float(config.input.motion_start)
  return start + (1.0 - start) * min(fraction / warmup, 1.0)


def phase_at(config: ml_collections.ConfigDict, step: int
             ) -> tuple[int, float, bool]:
  """(phase, severity, reversed pairs) of training step `step` (1-based)."""
  fraction = (step - 1) / max(config.num_train_steps, 1)
  ends = tuple(config.input.phase_ends)
  phase = next((p for p, end in enumerate(ends) if fraction < end),
               len(ends) - 1)
  reverse = phase == 0 and bool(config.input.reverse_first_phase)
  return phase, float(config.input.phase_severities[phase]), reverse


# ---------------------------------------------------------------------------
# Model, loss and metrics
# ---------------------------------------------------------------------------


def model_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """builders.optical_flow kwargs: config.model plus the loop's switches."""
  kwargs = config.model.to_dict()
  encoder = common.with_layer_switches(kwargs.pop('encoder'), config)
  return dict(kwargs, encoder=encoder)


def make_model(config: ml_collections.ConfigDict) -> hk.TransformedWithState:
  """forward(batch, *, is_training) -> flow [B, H, W, 2] in pixels."""
  _check(config)
  flow_fn = builders.optical_flow(**model_kwargs(config))

  def forward(batch, *, is_training):
    return flow_fn(batch['images'], is_training=is_training)

  return hk.transform_with_state(forward)


def example_batch(config: ml_collections.ConfigDict, batch_size: int
                  ) -> dict[str, np.ndarray]:
  h, w = config.input.image_size
  return {'images': np.zeros((batch_size, 2, h, w, 3), np.float32),
          'flow': np.zeros((batch_size, h, w, 2), np.float32),
          'valid': np.zeros((batch_size, h, w), np.float32)}


def loss_and_metrics(outputs: jax.Array,  # [B, H, W, 2]
                     batch: dict[str, jax.Array],
                     config: ml_collections.ConfigDict
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The loss (module docstring) and the EPE on valid pixels."""
  pred = outputs.astype(jnp.float32)
  gt = batch['flow'].astype(jnp.float32)  # [B, H, W, 2]
  valid = batch['valid'].astype(jnp.float32)  # [B, H, W]
  weights = (jnp.ones_like(valid) if config.task.supervise_occluded
             else valid)
  if config.task.loss == 'l1':
    per_pixel = jnp.sum(jnp.abs(pred - gt), -1)
  else:
    per_pixel = flow_metrics.end_point_error(pred, gt)
  if config.task.loss == 'l1':
    zero_per_pixel = jnp.sum(jnp.abs(gt), -1)
  else:
    zero_per_pixel = flow_metrics.end_point_error(jnp.zeros_like(gt), gt)
  normaliser = jnp.maximum(jnp.sum(weights), 1.0)
  loss = jnp.sum(per_pixel * weights) / normaliser
  sums = flow_metrics.sums(pred, gt, valid)
  epe = sums['epe_sum'] / jnp.maximum(sums['valid_pixels'], 1.0)
  # zero flow's loss on the same pairs: loss / zero_loss = 1 means nothing
  # has been learnt (benchmarks/repro/FLOW.md plots it).
  return loss, {'loss': loss, 'epe': epe,
                'zero_loss': jnp.sum(zero_per_pixel * weights) / normaliser,
                'valid_fraction': jnp.mean(valid)}


def eval_sums(outputs: jax.Array,  # [B, H, W, 2]
              batch: dict[str, jax.Array],
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Sums over the valid pixels of the real (mask 1) examples."""
  del config
  out = flow_metrics.sums(outputs, batch['flow'], batch['valid'],
                          weight=batch['mask'])
  out['count'] = jnp.sum(batch['mask'])
  return out


def finalize_eval(sums, config: ml_collections.ConfigDict
                  ) -> dict[str, float]:
  """'epe' (the best-checkpoint metric) and the 1/3/5 px outlier rates."""
  del config
  result = flow_metrics.finalize(sums)
  result['num_examples'] = float(sums['count'])
  return result


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------


def prepare_data(config: ml_collections.ConfigDict, workdir: str
                 ) -> Optional[str]:
  """Fails early, with a clear error, on missing data: loads the textures
  (generated pairs: nothing to build) or lists the AutoFlow folder and its
  splits (returning config.input.data_dir, which the iterators then read)."""
  del workdir
  _check(config)
  cfg = config.input
  if cfg.source == 'autoflow':
    autoflow_static.split(cfg.data_dir, autoflow_static.TRAIN,
                          cfg.heldout_fraction)
    if cfg.eval_split:
      autoflow_static.split(cfg.data_dir, autoflow_static.HELDOUT,
                            cfg.heldout_fraction)
    return cfg.data_dir
  autoflow.textures(tuple(cfg.texture_dirs))
  return None


def train_iterator(config: ml_collections.ConfigDict, *,
                   data_dir: Optional[str], seed: int, start_step: int,
                   process_index: int, process_count: int
                   ) -> Iterator[dict[str, np.ndarray]]:
  """This process's batches [B_p, ...] for steps start_step + 1, ..."""
  _check(config)
  cfg = config.input
  if cfg.source == 'autoflow':
    data_dir = data_dir or cfg.data_dir
    names = autoflow_static.split(data_dir, autoflow_static.TRAIN,
                                  cfg.heldout_fraction)

    def make(step, indices):
      _, severity, reverse = phase_at(config, step)
      return autoflow_static.make_batch(
          data_dir, names, indices, threads=cfg.read_threads,
          size=tuple(cfg.image_size), seed=seed, stream=TRAIN_STREAM,
          severity=severity, reverse_pairs=reverse)
  else:
    textures = autoflow.textures(tuple(cfg.texture_dirs))

    def make(step, indices):
      _, severity, reverse = phase_at(config, step)
      return autoflow.make_batch(
          textures, indices, size=tuple(cfg.image_size),
          seed=seed, stream=TRAIN_STREAM, severity=severity,
          reverse_pairs=reverse, num_scenes=cfg.num_scenes,
          options=scene_options(cfg, motion_at(config, step)))

  return common.generated_train_batches(
      make, global_batch=cfg.global_batch_size, start_step=start_step,
      process_index=process_index, process_count=process_count,
      depth=int(cfg.prefetch_batches))


def eval_iterator(config: ml_collections.ConfigDict, split: str, *,
                  data_dir: Optional[str], process_index: int,
                  process_count: int) -> tuple[Any, int]:
  """(batches with 'mask', number of batches) of the held-out pairs."""
  if split != HELDOUT:
    raise ValueError(
        f'The flow task evaluates split {HELDOUT!r} (held-out generated or '
        f'AutoFlow pairs) in the training loop, not {split!r}. Evaluate '
        'Sintel, KITTI and real stereo pairs at full resolution with '
        'launch/flow.py --dataset=... --config=... --checkpoint=...')
  _check(config)
  cfg = config.input
  lo, hi = common.process_slice(cfg.eval_batch_size, process_index,
                                process_count, 'eval_batch_size')
  size = tuple(cfg.image_size)
  if cfg.source == 'autoflow':
    data_dir = data_dir or cfg.data_dir
    names = autoflow_static.split(data_dir, autoflow_static.HELDOUT,
                                  cfg.heldout_fraction)
    total = min(cfg.num_eval_examples, len(names))

    def render(indices):
      return autoflow_static.stack([
          autoflow_static.make_eval_example(data_dir, names[i], size)
          for i in indices])
  else:
    total = cfg.num_eval_examples
    textures = autoflow.textures(tuple(cfg.texture_dirs))
    opts = scene_options(cfg)

    def render(indices):
      return autoflow.make_batch(textures, indices, size=size,
                                 seed=cfg.eval_seed, stream=EVAL_STREAM,
                                 options=opts)
  num_batches = common.num_eval_batches(total, cfg.eval_batch_size)

  def make(b):
    indices, real = common.eval_rows(b, total, cfg.eval_batch_size, lo, hi)
    # Only the real pairs are made; the padding copies the first.
    out = render([int(i) for i in indices[real]] or [0])
    out = common.pad_rows(out, hi - lo)
    out['mask'] = real.astype(np.float32)
    return out

  return (common.prefetch(make, range(num_batches), int(cfg.prefetch_batches)),
          num_batches)
