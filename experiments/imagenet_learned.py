r"""Perceiver IO on ImageNet, learned position encoding: [P] App. A, Table 7.

Expected: 72.7% top-1 (PIO config A, learned pos; 62.3M params, 407B FLOPs).

  python launch/train.py --config=experiments/imagenet_learned.py \
      --workdir=$WORKDIR --config.input.data_dir=$TFDS_DIR --distributed_auto

Model ([code] ImageNet colab): a 1x1 conv RGB->256 concatenated with a
learned 50,176x256 position embedding (trunc. normal 0.02) through a Linear
projector to 256; no query residual in the decoder. Training recipe:
perceiver/tasks/image/recipes.py (shared). Variants: `smoke`, `batch=N`.
"""
from perceiver.tasks.image import recipes
from perceiver.train import config_lib


def get_config(arg=None):
  args = config_lib.parse_variants(arg, recipes.IMAGENET_VARIANTS,
                                   'experiments/imagenet_learned.py')
  return recipes.from_variants('learned', args)
