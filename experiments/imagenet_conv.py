r"""Perceiver IO on ImageNet, conv preprocessing: [P] App. A, Table 7.

Expected: 82.1% top-1 (PIO config A, conv; 48.6M params, 369B FLOPs).

  python launch/train.py --config=experiments/imagenet_conv.py \
      --workdir=$WORKDIR --config.input.data_dir=$TFDS_DIR --distributed_auto

Model ([code] ImageNet colab): 7x7 conv (stride 2) to 64, BatchNorm (0.9,
1e-5), ReLU, 3x3 max-pool (stride 2) -> 56x56 = 3,136 inputs, concatenated
with 2-D Fourier features at max resolution 56 (322 channels). BatchNorm
uses per-device statistics (as the release). Export to .pystate (state). Training recipe:
perceiver/tasks/image/recipes.py (shared). Variants: `smoke`, `batch=N`.
"""
from perceiver.tasks.image import recipes
from perceiver.train import config_lib


def get_config(arg=None):
  args = config_lib.parse_variants(arg, recipes.IMAGENET_VARIANTS,
                                   'experiments/imagenet_conv.py')
  return recipes.from_variants('conv', args)
