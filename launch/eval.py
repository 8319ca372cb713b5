r"""Evaluates a checkpoint of a training run. Thin: flags, then one call.

  python launch/eval.py --config=experiments/mnist.py --workdir=workdirs/mnist \
      --step=best --split=test
"""
import os
import sys
import json

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import checkpoint  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import trainer  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'The experiment file the run was trained with.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'The training run.')
_STEP = flags.DEFINE_string('step', 'latest', "'latest', 'best' or a step.")
_SPLIT = flags.DEFINE_string('split', '', 'TFDS split; default the test split.')
flags.mark_flags_as_required(['config', 'workdir'])
common.check_flag('step', checkpoint.check_step_name)


def main(argv):
  del argv
  common.setup()
  result = trainer.evaluate(_CONFIG.value, _WORKDIR.value, step=_STEP.value,
                            split=_SPLIT.value)
  print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == '__main__':
  app.run(main)
