r"""The original Perceiver on ImageNet (average+project decoder): [P] App. A.

Expected: 78.6% top-1 (Perceiver 2D FF; 42.1M params, 404B FLOPs, Table 7).

  python launch/train.py --config=experiments/imagenet_perceiver.py \
      --workdir=$WORKDIR --config.input.data_dir=$TFDS_DIR --distributed_auto

Model: the PIO config A encoder with 2-D Fourier features, but the
decoder is the Perceiver's: mean over the latents then a Linear to 1000
(`ProjectionDecoder`, projection_decoder=True). Training recipe:
perceiver/tasks/image/recipes.py (shared). Variants: `smoke`, `batch=N`.
"""
from perceiver.tasks.image import recipes
from perceiver.train import config_lib


def get_config(arg=None):
  args = config_lib.parse_variants(arg, recipes.IMAGENET_VARIANTS,
                                   'experiments/imagenet_perceiver.py')
  return recipes.from_variants('perceiver', args)
