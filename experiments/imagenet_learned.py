r"""Perceiver IO on ImageNet, learned position encoding: [P] App. A, Table 7.

Expected: 72.7% top-1 (PIO config A, learned pos; 62.3M params, 407B FLOPs).

  python launch/train.py --config=experiments/imagenet_learned.py \
      --workdir=$WORKDIR --config.input.data_dir=$TFDS_DIR --distributed_auto

Model ([code] ImageNet colab): a 1x1 conv RGB->256 concatenated with a
learned 50,176x256 position embedding (trunc. normal 0.02) through a Linear
projector to 256; no query residual in the decoder. Training recipe:
experiments/imagenet_fourier.py (shared). Variants: `smoke`, `batch=N`.
"""
from perceiver.train import config_lib


def _recipe():
  return config_lib.load_sibling_experiment(__file__, 'imagenet_fourier')


def get_config(arg=None):
  base = _recipe()
  model = base.model_fourier()
  model.input_preprocessor = dict(
      position_encoding_type='trainable',
      trainable_position_encoding_kwargs=dict(init_scale=0.02,
                                              num_channels=256),
      prep_type='conv1x1', project_pos_dim=256, num_channels=256,
      spatial_downsample=1, concat_or_add_pos='concat')
  model.decoder.use_query_residual = False  # [code]: off for learned pos
  return base.imagenet_recipe(model, arg)
