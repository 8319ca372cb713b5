r"""Perceiver IO on ImageNet, 2-D Fourier features: [P] App. A, Table 7.

Expected: 79.0% top-1 (PIO config A, 2D FF; 48.4M params, 407B FLOPs) after
110 epochs on 64 TPUv3 (4.85 steps/s).

  python launch/train.py --config=experiments/imagenet_fourier.py \
      --workdir=$WORKDIR --config.input.data_dir=$TFDS_DIR --distributed_auto
  python launch/train.py --config=experiments/imagenet_fourier.py:smoke \
      --workdir=/tmp/smoke   # CI: 2 steps of a tiny model (mock data in tests)

The training recipe ([P] App. A, [code] experiment.py), shared by the other
imagenet_* experiments, which load this file and change the model:
LAMB (b1 .9, b2 .999, eps 1e-6), lr 5e-4 * batch / 256 = 2e-3, flat for 55
epochs then cosine to 0 over 55, no warmup, weight decay 0.1 (not on biases
or norms; position embeddings decayed), global-norm clip 10, batch 1024,
110 epochs, label smoothing 0.1, RandAugment 4x5, MixUp 0.2 / CutMix.

Variants: `smoke`; `batch=N` (lr follows the linear scaling rule).
"""
import ml_collections

from perceiver.train import config_lib

TRAIN_EXAMPLES = 1_281_167  # ImageNet-1k train split
EPOCHS = 110
FLAT_EPOCHS = 55


def parse(arg):
  out = {}
  for item in filter(None, (arg or '').split(',')):
    key, _, value = item.partition('=')
    out[key] = value or True
  return out


def model_fourier():
  """[code] ImageNet colab: PIO config A with 2-D Fourier features."""
  return ml_collections.ConfigDict(dict(
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


def imagenet_recipe(model: ml_collections.ConfigDict, arg=None):
  """The paper's ImageNet training around `model`."""
  args = parse(arg)
  c = config_lib.base_config()
  c.input.module = 'perceiver.data.imagenet'
  c.input.name = 'imagenet2012'
  config_lib.dataset_defaults(c)
  c.input.train_split = 'train'
  c.input.eval_split = 'validation'  # the 50k val set ([code] calls it TEST)
  c.input.test_split = ''
  c.input.global_batch_size = int(args.get('batch', 1024))
  c.input.eval_batch_size = 1000
  c.input.shuffle_buffer = 10_000
  c.input.cache = False  # 150 GB of JPEGs
  c.model = model

  batch = c.input.global_batch_size
  steps_per_epoch = TRAIN_EXAMPLES / batch
  c.num_train_steps = int(EPOCHS * steps_per_epoch)  # 137,625 at batch 1024
  c.label_smoothing = 0.1  # [code] only
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

  if args.get('smoke'):
    smoke(c)
  return c


def smoke(c):
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
  c.num_train_steps = 2
  c.schedule.flat_steps = 1
  c.schedule.decay_steps = 1
  c.log_every = 1
  c.eval_every = 2
  c.checkpoint_every = 2


def get_config(arg=None):
  return imagenet_recipe(model_fourier(), arg)
