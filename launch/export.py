r"""Exports a checkpoint's params in the release's pickle format.

  python launch/export.py --config=experiments/mnist.py \
      --workdir=workdirs/mnist --output=workdirs/mnist/params.pickle

`.pickle` holds the params mapping (models without BatchNorm); `.pystate`
holds {'params', 'state'} (conv models). Read back with
perceiver.checkpoint_io.load_params.
"""
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver import checkpoint_io  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import checkpoint  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import trainer  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'The experiment file the run was trained with.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'The training run.')
_OUTPUT = flags.DEFINE_string('output', None, '.pickle or .pystate path.')
_STEP = flags.DEFINE_string('step', 'latest', "'latest', 'best' or a step.")
flags.mark_flags_as_required(['config', 'workdir', 'output'])
common.check_flag('step', checkpoint.check_step_name)
common.check_flag('output', checkpoint_io.check_extension)


def main(argv):
  del argv
  common.setup()
  print(trainer.export(_CONFIG.value, _WORKDIR.value, _OUTPUT.value,
                       step=_STEP.value))


if __name__ == '__main__':
  app.run(main)
