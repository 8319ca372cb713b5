"""Config builders of the image experiments (experiments/imagenet_*.py,
experiments/mnist.py).

The experiment files hold the launch commands, the paper's numbers and the
variants; the functions here turn parsed variants into a ConfigDict of
`perceiver.train.config_lib` keys.

The ImageNet recipe ([P] App. A, [code] train/experiment.py), shared by the
four ImageNet models: LAMB (b1 .9, b2 .999, eps 1e-6), lr 5e-4 * batch / 256
= 2e-3, flat for 55 epochs then cosine to 0 over 55, no warmup, weight decay
0.1 (not on biases or norms; position embeddings decayed), global-norm clip
10, batch 1024, 110 epochs, label smoothing 0.1, RandAugment 4x5, MixUp 0.2 /
CutMix.

Every experiment trains on the fast path (`fast_path`): the release's model
and parameters, computed with scanned layers, rematerialised self-attention
and, on ImageNet, chunked attention over the 50,176 inputs
(benchmarks/README.md has the measurements). `trainer.export` writes the
release's per-layer layout; `config_lib.release_exact` gives the
release-exact path.
"""
from typing import Any

import ml_collections

from perceiver.train import config_lib

TASK = 'perceiver.tasks.image.task'
TRAIN_EXAMPLES = 1_281_167  # ImageNet-1k train split
EPOCHS = 110
FLAT_EPOCHS = 55

IMAGENET_VARIANTS = ('smoke', 'batch')
MNIST_VARIANTS = ('smoke', 'steps')


# --- The fast path (benchmarks/speed/bench_paths.py; benchmarks/README.md)
# ImageNet encoder kv chunk: the cross-attention's [512, 50,176] logits are
# never built; chunks longer than the 512 latents leave the self-attention
# dense (perceiver.attention runs a single chunk densely).
IMAGENET_KV_CHUNK = 2048


def fast_path(c: ml_collections.ConfigDict, *, kv_chunk_size: int = 0
              ) -> None:
  """Turns on the fast path's switches (measured against the release-exact
  path by benchmarks/speed/bench_paths.py): `hk.layer_stack` (one compiled layer
  instead of every one), remat of the self-attention layers (less memory
  per example), and, when `kv_chunk_size` is given, chunked encoder
  attention."""
  c.scan_layers = True
  c.remat = True
  if kv_chunk_size:
    c.model.encoder.kv_chunk_size = kv_chunk_size


# --- ImageNet models ([P] App. A, Table 7; [code] ImageNet colab) ------------


def imagenet_model(name: str) -> ml_collections.ConfigDict:
  """builders.image_classifier kwargs of PIO config A with the input of
  `name`: 'fourier', 'learned', 'conv' or 'perceiver' (the original
  Perceiver's average+project decoder on the Fourier input)."""
  model = ml_collections.ConfigDict(dict(
      num_classes=1000,
      input_channels=3,
      input_preprocessor=dict(
          position_encoding_type='fourier',
          fourier_position_encoding_kwargs=dict(
              concat_pos=True, max_resolution=(224, 224), num_bands=64,
              sine_only=False),
          prep_type='pixels', spatial_downsample=1),
      encoder=dict(
          cross_attend_widening_factor=1, cross_attention_shape_for_attn='kv',
          dropout_prob=0.0, num_blocks=8, num_cross_attend_heads=1,
          num_self_attend_heads=8, num_self_attends_per_block=6,
          num_z_channels=1024, self_attend_widening_factor=1,
          use_query_residual=True, z_index_dim=512,
          z_pos_enc_init_scale=0.02),
      decoder=dict(
          num_z_channels=1024, position_encoding_type='trainable',
          trainable_position_encoding_kwargs=dict(init_scale=0.02,
                                                  num_channels=1024),
          use_query_residual=True),
      projection_decoder=False,
  ))
  if name == 'fourier':
    return model
  if name == 'learned':
    # 1x1 conv RGB->256 concatenated with a learned 50,176x256 position
    # embedding (trunc. normal 0.02) through a Linear projector to 256.
    model.input_preprocessor = dict(
        position_encoding_type='trainable',
        trainable_position_encoding_kwargs=dict(init_scale=0.02,
                                                num_channels=256),
        prep_type='conv1x1', project_pos_dim=256, num_channels=256,
        spatial_downsample=1, concat_or_add_pos='concat')
    model.decoder.use_query_residual = False  # [code]: off for learned pos
    return model
  if name == 'conv':
    # 7x7 conv (stride 2) to 64, BatchNorm (0.9, 1e-5), ReLU, 3x3 max-pool
    # (stride 2) -> 56x56 = 3,136 inputs, with 2-D Fourier features at max
    # resolution 56 (322 channels).
    model.input_preprocessor = dict(
        position_encoding_type='fourier',
        fourier_position_encoding_kwargs=dict(
            concat_pos=True, max_resolution=(56, 56), num_bands=64,
            sine_only=False),
        prep_type='conv')
    return model
  if name == 'perceiver':
    model.projection_decoder = True  # mean over latents, then Linear
    model.decoder = {}  # unused with the projection decoder
    return model
  raise ValueError(f'Unknown ImageNet model {name!r}; use fourier, learned, '
                   'conv or perceiver.')


def imagenet(model_name: str, args: dict[str, Any]
             ) -> ml_collections.ConfigDict:
  """The paper's ImageNet training ([P] App. A) of `imagenet_model(name)`."""
  c = config_lib.base_config(TASK)
  c.input.module = 'perceiver.tasks.image.imagenet'
  config_lib.add_task_defaults(c)
  c.input.name = 'imagenet2012'
  c.input.train_split = 'train'
  c.input.eval_split = 'validation'  # the 50k val set ([code] calls it TEST)
  c.input.test_split = ''
  c.input.global_batch_size = config_lib.positive_variant(args, 'batch', 1024)
  c.input.eval_batch_size = 1000
  c.input.shuffle_buffer = 10_000
  c.input.cache = False  # 150 GB of JPEGs
  c.model = imagenet_model(model_name)

  batch = c.input.global_batch_size
  steps_per_epoch = TRAIN_EXAMPLES / batch
  c.num_train_steps = int(EPOCHS * steps_per_epoch)  # 137,625 at batch 1024
  c.task.label_smoothing = 0.1  # [code] only
  c.optimizer.name = 'lamb'
  c.optimizer.b1, c.optimizer.b2, c.optimizer.eps = 0.9, 0.999, 1e-6
  c.optimizer.weight_decay = 0.1
  c.optimizer.decay_pos_embeddings = True  # [code] decays them
  c.optimizer.clip_global_norm = 10.0
  c.schedule.name = 'flat_cosine'
  c.schedule.base_lr = 5e-4 * batch / 256  # linear scaling rule: 2e-3 @1024
  c.schedule.warmup_steps = 0  # "no warmup (it often broke LAMB)"
  c.schedule.flat_steps = int(FLAT_EPOCHS * steps_per_epoch)  # 55 epochs
  c.schedule.decay_steps = c.num_train_steps - c.schedule.flat_steps
  c.log_every = 100
  c.eval_every = int(5 * steps_per_epoch)  # every 5 epochs
  c.checkpoint_every = 2000  # ~25 min at 4.85 steps/s
  c.keep_checkpoints = 3
  c.best_metric = 'eval/accuracy'
  c.best_mode = 'max'
  fast_path(c, kv_chunk_size=IMAGENET_KV_CHUNK)

  if args.get('smoke'):
    _imagenet_smoke(c)
  return c


def _imagenet_smoke(c: ml_collections.ConfigDict) -> None:
  """Two steps of a tiny model on 32x32 images: the whole system, in CI."""
  c.input.image_size = 32
  c.input.global_batch_size = 8
  c.input.eval_batch_size = 8
  c.input.shuffle_buffer = 16
  c.input.randaugment_layers = 1  # all 16 ops are still traced
  enc, dec, prep = c.model.encoder, c.model.decoder, c.model.input_preprocessor
  if 'fourier_position_encoding_kwargs' in prep:
    res = prep.fourier_position_encoding_kwargs.max_resolution
    prep.fourier_position_encoding_kwargs.max_resolution = (
        (8, 8) if res[0] == 56 else (32, 32))
    prep.fourier_position_encoding_kwargs.num_bands = 4
  if 'trainable_position_encoding_kwargs' in prep:
    prep.trainable_position_encoding_kwargs.num_channels = 8
    prep.project_pos_dim = 8
    prep.num_channels = 8
  enc.num_blocks, enc.num_self_attends_per_block = 2, 1
  enc.num_z_channels, enc.z_index_dim, enc.num_self_attend_heads = 16, 4, 2
  if dec:
    dec.num_z_channels = 16
    dec.trainable_position_encoding_kwargs.num_channels = 16
  # 32x32 = 1,024 inputs in 4 chunks: the chunked path runs in CI too (the
  # conv model's 64 inputs stay in one chunk).
  enc.kv_chunk_size = 256
  c.num_train_steps = 2
  c.schedule.flat_steps = 1
  c.schedule.decay_steps = 1
  c.log_every = 1
  c.eval_every = 2
  c.checkpoint_every = 2


# --- MNIST (not in the paper: the repository's CPU-sized default) ------------


def mnist(args: dict[str, Any]) -> ml_collections.ConfigDict:
  """The ImageNet recipe at toy scale on the embedded MNIST
  (experiments/mnist.py has the reasons for each choice)."""
  c = config_lib.base_config(TASK)
  c.input.module = 'perceiver.tasks.image.mnist'
  config_lib.add_task_defaults(c)
  c.input.name = 'embedded_mnist'
  c.input.global_batch_size = 128
  c.input.eval_batch_size = 1000
  c.input.shuffle_buffer = 50_000  # the whole train split: a full shuffle
  c.input.random_shift = 1  # pixels

  d = 64  # latent channels D
  c.model = ml_collections.ConfigDict(dict(
      num_classes=10,
      input_channels=1,
      input_preprocessor=dict(
          prep_type='conv', spatial_downsample=4, num_channels=64,
          position_encoding_type='fourier',
          fourier_position_encoding_kwargs=dict(
              concat_pos=True, max_resolution=(7, 7), num_bands=8,
              sine_only=False)),
      encoder=dict(
          cross_attend_widening_factor=1, cross_attention_shape_for_attn='kv',
          dropout_prob=0.0, num_blocks=1, num_cross_attend_heads=1,
          num_self_attend_heads=4, num_self_attends_per_block=3,
          num_z_channels=d, self_attend_widening_factor=1,
          use_query_residual=True, z_index_dim=8, z_pos_enc_init_scale=0.02),
      decoder=dict(
          num_z_channels=d, position_encoding_type='trainable',
          trainable_position_encoding_kwargs=dict(init_scale=0.02,
                                                  num_channels=d),
          use_query_residual=True),
      projection_decoder=False,
  ))

  # ~5 epochs
  c.num_train_steps = config_lib.positive_variant(args, 'steps', 2000)
  c.optimizer.name = 'lamb'
  c.optimizer.weight_decay = 1e-4
  c.optimizer.clip_global_norm = 10.0  # as on ImageNet
  c.schedule.name = 'warmup_cosine'
  c.schedule.base_lr = 4e-3
  c.schedule.warmup_steps = 100
  c.log_every = 100
  c.eval_every = 1000
  c.checkpoint_every = 500
  c.keep_checkpoints = 2
  c.best_metric = 'eval/accuracy'
  c.best_mode = 'max'
  fast_path(c)  # 49 inputs: nothing to chunk

  if args.get('smoke'):
    c.num_train_steps = 2
    c.input.global_batch_size = 8
    c.input.shuffle_buffer = 1000  # a full 50k buffer takes ~5 s to fill
    c.model.input_preprocessor.prep_type = 'patches'  # no BatchNorm: the
    # layout-equivalence tests compare devices exactly (BN is per device)
    c.model.encoder.num_z_channels = c.model.decoder.num_z_channels = 16
    c.model.decoder.trainable_position_encoding_kwargs.num_channels = 16
    c.model.encoder.z_index_dim = 8
    c.model.encoder.num_self_attends_per_block = 1
    c.schedule.warmup_steps = 0
    c.log_every = 1
    c.eval_every = 0
    c.checkpoint_every = 1
  return c
