r"""Perceiver IO on ImageNet, 2-D Fourier features: [P] App. A, Table 7.

Expected: 79.0% top-1 (PIO config A, 2D FF; 48.4M params, 407B FLOPs) after
110 epochs on 64 TPUv3 (4.85 steps/s).

  python launch/train.py --config=experiments/imagenet_fourier.py \
      --workdir=$WORKDIR --config.input.data_dir=$TFDS_DIR --distributed_auto
  python launch/train.py --config=experiments/imagenet_fourier.py:smoke \
      --workdir=/tmp/smoke   # CI: 2 steps of a tiny model (mock data in tests)

The training recipe ([P] App. A, [code] experiment.py), shared by the four
imagenet_* experiments (perceiver/tasks/image/recipes.py): LAMB (b1 .9, b2
.999, eps 1e-6), lr 5e-4 * batch / 256 = 2e-3, flat for 55 epochs then cosine
to 0 over 55, no warmup, weight decay 0.1 (not on biases or norms; position
embeddings decayed), global-norm clip 10, batch 1024, 110 epochs, label
smoothing 0.1, RandAugment 4x5, MixUp 0.2 / CutMix.

Variants: `smoke`; `batch=N` (lr follows the linear scaling rule).
"""
from perceiver.tasks.image import recipes
from perceiver.train import config_lib


def get_config(arg=None):
  args = config_lib.parse_variants(arg, recipes.IMAGENET_VARIANTS,
                                   'experiments/imagenet_fourier.py')
  return recipes.from_variants('fourier', args)
