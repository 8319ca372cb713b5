"""Config builders of the image experiments (experiments/imagenet_*.py,
experiments/mnist.py).

The experiment files hold the launch commands, the paper's numbers and the
variants; `from_variants` turns parsed variants into a ConfigDict of
`perceiver.train.config_lib` keys through the recipes of every task:
`paper(model_name, batch)` (ImageNet, the released architectures of
perceiver/release_specs), `cpu(steps)` (MNIST) and `smoke(model_name)`.

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

from perceiver import release_specs
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


def _as_config(tree: Any) -> Any:
  """JSON lists as the tuples a ConfigDict field keeps (and a command-line
  override can set)."""
  if isinstance(tree, dict):
    return {k: _as_config(v) for k, v in tree.items()}
  if isinstance(tree, list):
    return tuple(_as_config(v) for v in tree)
  return tree


def imagenet_model(name: str) -> ml_collections.ConfigDict:
  """builders.image_classifier kwargs of PIO config A with the input of
  `name`: 'fourier', 'learned', 'conv' (the released architectures,
  perceiver/release_specs/full_imagenet_<name>.json) or 'perceiver' (the
  original Perceiver's average+project decoder on the Fourier input)."""
  if name not in ('fourier', 'learned', 'conv', 'perceiver'):
    raise ValueError(f'Unknown ImageNet model {name!r}; use fourier, learned, '
                     'conv or perceiver.')
  spec = release_specs.load(
      'full_imagenet_' + ('fourier' if name == 'perceiver' else name))
  model = dict(num_classes=spec['num_classes'], input_channels=3,  # RGB
               **_as_config(spec['config']), projection_decoder=False)
  # The JSON writes the rate as 0; a float field takes --config overrides.
  model['encoder']['dropout_prob'] = float(model['encoder']['dropout_prob'])
  model = ml_collections.ConfigDict(model)
  if name == 'perceiver':
    model.projection_decoder = True  # mean over latents, then Linear
    model.decoder = {}  # unused with the projection decoder
  return model


def paper(model_name: str = 'fourier', batch: int = 1024
          ) -> ml_collections.ConfigDict:
  """The paper's ImageNet training ([P] App. A) of `imagenet_model(name)`
  at global batch `batch` (the learning rate follows it)."""
  c = config_lib.base_config(TASK)
  c.input.module = 'perceiver.tasks.image.imagenet'
  config_lib.add_task_defaults(c)
  c.input.name = 'imagenet2012'
  c.input.train_split = 'train'
  c.input.eval_split = 'validation'  # the 50k val set ([code] calls it TEST)
  c.input.test_split = ''
  c.input.global_batch_size = batch
  c.input.eval_batch_size = 1000
  c.input.shuffle_buffer = 10_000
  c.input.cache = False  # 150 GB of JPEGs
  c.model = imagenet_model(model_name)

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
  return c


def smoke(model_name: str = 'mnist', batch: int = 1024
          ) -> ml_collections.ConfigDict:
  """Two steps of a tiny model: of `cpu` (MNIST) for 'mnist', else of
  `paper(model_name, batch)` on 32x32 images: the whole system, in CI."""
  if model_name == 'mnist':
    return _mnist_smoke(cpu())
  c = paper(model_name, batch)
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
  return c


# --- MNIST (not in the paper: the repository's CPU-sized default) ------------


def cpu(steps: int = 2000) -> ml_collections.ConfigDict:
  """The ImageNet recipe at toy scale on the embedded MNIST
  (experiments/mnist.py has the reasons for each choice); 2000 steps are
  about 5 epochs."""
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

  c.num_train_steps = steps
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
  return c


def _mnist_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`cpu`'s tiny model for 2 steps."""
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


def from_variants(model_name: str, args: dict[str, Any]
                  ) -> ml_collections.ConfigDict:
  """The variants of experiments/imagenet_<model_name>.py
  (IMAGENET_VARIANTS) or, for 'mnist', of experiments/mnist.py
  (MNIST_VARIANTS) -> a config."""
  if model_name == 'mnist':
    if args.get('smoke'):
      return smoke('mnist')
    _, _, steps = config_lib.batch_variants(args, batch=128, steps=2000)
    return cpu(steps)
  batch, _, _ = config_lib.batch_variants(
      args, batch=1024, steps=lambda b: int(EPOCHS * TRAIN_EXAMPLES / b))
  if args.get('smoke'):
    return smoke(model_name, batch)
  return paper(model_name, batch)
