r"""`make main`: the MNIST experiment end to end on the CPU.

Trains experiments/mnist.py from scratch (or resumes) in --workdir,
evaluates the best checkpoint on the test split, exports it in the release's
pickle format and prints a summary. Thin: flags, then one library call.

  python launch/main.py --workdir=workdirs/main
"""
import os
import sys

from absl import app
from absl import flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)  # run from a fresh clone without installing

from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import main_job  # pylint: disable=g-import-not-at-top,wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', 'workdirs/main', 'Output directory.')
_CONFIG_ARG = flags.DEFINE_string('variant', '', 'experiments/mnist.py arg.')


def main(argv):
  del argv
  common.setup()
  main_job.run(os.path.join(_REPO, 'experiments', 'mnist.py'),
               _WORKDIR.value, variant=_CONFIG_ARG.value,
               progress=sys.stderr.isatty())


if __name__ == '__main__':
  app.run(main)
