"""Config builders of the flow experiments (experiments/optical_flow.py).

Glossary: H, W network input (training crop); N latents, D latent channels;
L self-attention layers; B global batch.

Recipes: `paper()`, `cpu()` and `smoke()`; `from_variants` parses the
experiment's variants. Every model is the released architecture
(perceiver/release_specs/full_optical_flow.json) with dotted diffs
(CPU, SMOKE, PAPER_CHUNKS).

Paper recipe ([P] §4.2, App. H, Tables 3, 6): the released
architecture (3x3 patches of both frames concatenated, Linear 54->64 plus
2D Fourier features of 64 bands: 322 channels at 182,528 = 368x496 pixels;
N = 2048, D = 512, 24 self-attention layers of 16 heads, 1-head cross-
attentions, widening 1, per-pixel queries, zero-init Linear->2, x 20 / 100);
AutoFlow (400k pairs), 480 epochs at batch 512 (375k steps), LAMB, cosine
from 4e-4, with a curriculum of rising augmentation severity after a first
phase without augmentation that feeds each pair both ways.

Data (`source`): the paper recipe reads the released static AutoFlow pairs
('autoflow', perceiver/tasks/flow/autoflow_static.py); `cpu` and `smoke`
render AutoFlow-style pairs on the fly ('generated'). DEVIATION (data
availability): the released set has 40k pairs, not the paper's 400k, so the
paper's 375k updates at batch 512 are 4,800 passes over it.

Where [P] is silent (config fields, named in the experiment's docstring):
no warmup, no weight decay, no clipping; the curriculum's phase lengths
(10% without augmentation, then severities 1/3, 2/3, 1 over equal thirds of
the rest); the loss (task.py).
"""
from typing import Any

import ml_collections

from perceiver import release_specs
from perceiver.tasks.flow import task
from perceiver.train import config_lib

TASK_MODULE = 'perceiver.tasks.flow.task'
AUTOFLOW_PAIRS = 400_000  # [P] App. H
PAPER_EPOCHS = 480  # [P] App. H
PAPER_BATCH = 512  # [P] App. H
PAPER_LR = 4e-4  # [P] App. H
CPU_STEPS = 4000  # the CPU reproduction's budget (FLOW.md)
# Departures from the release that help a small model start to learn
# (benchmarks/repro/FLOW.md measures each); every one is off by default.
LEVERS = ('qres', 'head_init', 'stem', 'motion')
VARIANTS = ('smoke', 'cpu', 'steps', 'batch', 'accum', 'lr', 'textures',
            'source') + LEVERS

_PREP_FOURIER = 'input_preprocessor.fourier_position_encoding_kwargs.'
_DEC_FOURIER = 'decoder.fourier_position_encoding_kwargs.'

# DEVIATION (not in the paper): the CPU-sized model of the reproduction
# (benchmarks/repro/FLOW.md): the released design at 32x48 pixels, 16 Fourier
# bands, N x D = 64 x 128, 4 self-attention layers of 4 heads.
CPU = {
    _PREP_FOURIER + 'num_bands': 16,
    _PREP_FOURIER + 'max_resolution': [32, 48],
    'encoder.z_index_dim': 64,
    'encoder.num_z_channels': 128,
    'encoder.num_self_attends_per_block': 4,
    'encoder.num_self_attend_heads': 4,
    'decoder.output_image_shape': [32, 48],
    _DEC_FOURIER + 'num_bands': 16,
    _DEC_FOURIER + 'max_resolution': [32, 48],
}
# The tiny release-format model of tests/golden_data/optical_flow_tiny.json.
SMOKE = {
    _PREP_FOURIER + 'num_bands': 6,
    _PREP_FOURIER + 'max_resolution': [12, 16],
    'encoder.z_index_dim': 16,
    'encoder.num_z_channels': 32,
    'encoder.num_self_attends_per_block': 2,
    'encoder.num_self_attend_heads': 4,
    'decoder.output_image_shape': [12, 16],
    _DEC_FOURIER + 'num_bands': 6,
    _DEC_FOURIER + 'max_resolution': [12, 16],
}
# The paper's model chunks its attention over the 182,528 pixels.
PAPER_CHUNKS = {'encoder.kv_chunk_size': 8192, 'decoder.q_chunk_size': 8192}


def model_config(diffs: dict[str, Any]) -> dict[str, Any]:
  """builders.optical_flow kwargs: the released architecture
  (perceiver/release_specs/full_optical_flow.json) with dotted `diffs`."""
  spec = release_specs.load('full_optical_flow')
  model = {k: spec[k] for k in ('flow_scale_factor', 'input_preprocessor',
                                'encoder', 'decoder')}
  return release_specs.override(model, diffs)


def _base(diffs: dict[str, Any], textures: str = '',
          source: str = 'generated') -> ml_collections.ConfigDict:
  """What every flow config shares: the model of `diffs`, the data, the
  curriculum and LAMB ([P] App. H)."""
  task.check_source(source)
  c = config_lib.base_config(TASK_MODULE)
  config_lib.add_task_defaults(c)
  c.input.source = source
  c.model = ml_collections.ConfigDict(model_config(diffs))
  c.input.image_size = tuple(c.model.decoder.output_image_shape)
  c.input.train_split = 'train'
  c.input.eval_split = task.HELDOUT
  c.input.test_split = ''
  c.best_metric = 'eval/epe'
  c.best_mode = 'min'
  c.input.phase_ends = (0.1, 0.4, 0.7, 1.0)
  c.input.phase_severities = (0.0, 1 / 3, 2 / 3, 1.0)
  c.input.reverse_first_phase = True
  if textures:
    c.input.texture_dirs = (str(textures),)
  # Fast path: one compiled layer (rematerialised in the paper model).
  c.scan_layers = True
  c.remat = False
  c.optimizer.name = 'lamb'  # [P] App. H
  c.optimizer.weight_decay = 0.0  # [P] silent
  c.optimizer.clip_global_norm = 0.0  # [P] silent
  c.schedule.name = 'warmup_cosine'  # cosine from the peak ([P] App. H)
  c.schedule.warmup_steps = 0  # [P] silent
  c.schedule.base_lr = PAPER_LR
  c.input.eval_batch_size = 64
  c.input.num_eval_examples = 512
  c.log_every = 100
  c.keep_checkpoints = 2
  return c


def paper(batch: int = PAPER_BATCH, accum: int = 1, steps: int = 0,
          lr: float = PAPER_LR, textures: str = '', source: str = 'autoflow'
          ) -> ml_collections.ConfigDict:
  """The paper's recipe (module doc): B = `batch` per update in `accum`
  micro-batches, `steps` updates (default 480 epochs of AutoFlow's 400k),
  on the released AutoFlow pairs (`source`)."""
  c = _base(PAPER_CHUNKS, textures, source)
  c.remat = True
  c.schedule.base_lr = lr
  config_lib.set_batch(
      c, batch, accum, steps or AUTOFLOW_PAIRS * PAPER_EPOCHS // batch)
  c.input.num_scenes = AUTOFLOW_PAIRS
  c.eval_every = 5000 * accum
  c.checkpoint_every = 5000 * accum
  return c


def cpu(batch: int = 8, steps: int = CPU_STEPS, lr: float = 1e-3,
        textures: str = '', source: str = 'generated'
        ) -> ml_collections.ConfigDict:
  """The CPU-scale reproduction (benchmarks/repro/FLOW.md): unique scenes,
  batch 8, 4,000 steps (55 minutes on 2 cores shared with other jobs for
  the levers' arm; the release design itself learns nothing in them)."""
  c = _base(CPU, textures, source)
  config_lib.set_batch(c, batch, 1, steps)
  c.input.num_scenes = 0
  # Small motions (up to ~3 px per layer before the zoom augmentation)
  # and few layers: at this scale the model only learns what local
  # evidence and the dominant background motion show (FLOW.md).
  c.input.max_translation = 0.06
  c.input.min_layers = 1
  c.input.max_layers = 3
  # DEVIATION (CPU scale): AdamW, not LAMB. LAMB changes each layer by
  # about lr of its own norm per step; the zero-initialised output layer
  # (whose output is then x 20 / 100) grows too slowly for a short run:
  # at lr 1e-3 and 1e-2 the loss stayed at the zero-flow level for 150
  # steps (FLOW.md).
  c.optimizer.name = 'adamw'
  c.schedule.base_lr = lr
  c.schedule.warmup_steps = 50
  c.input.eval_batch_size = 32
  c.input.num_eval_examples = 128
  c.input.prefetch_batches = 2
  c.log_every = 25
  c.eval_every = 1000
  c.checkpoint_every = 250
  return c


def smoke(lr: float = PAPER_LR, textures: str = '',
          source: str = 'generated') -> ml_collections.ConfigDict:
  """2 steps of the tiny model (on generated pairs by default)."""
  c = _base(SMOKE, textures, source)
  c.schedule.base_lr = lr
  config_lib.set_batch(c, 8, 1, 2)
  c.input.num_scenes = 0
  c.input.eval_batch_size = 8
  c.input.num_eval_examples = 8
  c.input.max_layers = 3
  config_lib.smoke_loop(c)
  return c


def apply_levers(c: ml_collections.ConfigDict, args: dict[str, Any]
                 ) -> ml_collections.ConfigDict:
  """Turns on the LEVERS named in `args` (each a DEVIATION, FLOW.md).

  qres       the decoder's query residual: each pixel's output adds its own
             input features (its patches, and the stem's) to what it reads
             from the latents. The release has none ([P] §4.2).
  head_init  the output Linear starts at Haiku's default init instead of
             the release's zeros. With zeros and motions drawn symmetrically
             about zero, the model starts at a saddle of the L1 loss
             (../leads: neither lever alone leaves it in 1,500 steps).
  stem       io_processors.FlowConvStem: 4 dilated 3x3 convolutions (rates
             1, 2, 4, 8; 48 channels) on both frames, a 31-pixel receptive
             field, concatenated to each pixel's inputs.
  motion=F   the motion curriculum (task.py: config.input.motion_warmup):
             motion ranges rise from a quarter to full over the first F of
             training.
  """
  if args.get('qres'):
    c.model.decoder.use_query_residual = True
  if args.get('head_init'):
    c.model.decoder.output_w_init = None
  if args.get('stem'):
    c.model.conv_stem = ml_collections.ConfigDict(
        {'num_channels': 48, 'rates': (1, 2, 4, 8)})
  if 'motion' in args:
    warmup = config_lib.positive_variant(args, 'motion', 0.3, float)
    if warmup > 1:
      raise ValueError(f'experiments/optical_flow.py: motion={warmup} is a '
                       'fraction of training in (0, 1].')
    c.input.motion_warmup = warmup
  return c


def from_variants(args: dict[str, Any]) -> ml_collections.ConfigDict:
  """experiments/optical_flow.py's variants -> a config."""
  return apply_levers(_from_variants(args), args)


def _from_variants(args: dict[str, Any]) -> ml_collections.ConfigDict:
  textures = args.get('textures', '')
  paper_model = not (args.get('smoke') or args.get('cpu'))
  source = args.get('source', 'autoflow' if paper_model else 'generated')
  if source not in task.SOURCES:
    raise ValueError(f'experiments/optical_flow.py: variant "source={source}"'
                     f'; use source=generated or source=autoflow.')
  if textures and source == 'autoflow':
    raise ValueError('experiments/optical_flow.py: textures= applies to '
                     'generated pairs; add source=generated, or drop it.')
  lr = config_lib.positive_variant(
      args, 'lr', 1e-3 if args.get('cpu') and not args.get('smoke')
      else PAPER_LR, float)
  if args.get('smoke') or args.get('cpu'):
    if 'accum' in args:
      raise ValueError('experiments/optical_flow.py: accum= applies to the '
                       'paper model only.')
  if args.get('smoke'):
    return smoke(lr, textures, source)
  if args.get('cpu'):
    batch, _, steps = config_lib.batch_variants(args, batch=8,
                                                steps=CPU_STEPS)
    return cpu(batch, steps, lr, textures, source)
  batch, accum, steps = config_lib.batch_variants(
      args, batch=PAPER_BATCH,
      steps=lambda b: AUTOFLOW_PAIRS * PAPER_EPOCHS // b)
  return paper(batch, accum, steps, lr, textures, source)
