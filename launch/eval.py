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

from perceiver.train import distributed  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import trainer  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'The experiment file the run was trained with.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'The training run.')
_STEP = flags.DEFINE_string('step', 'latest', "'latest', 'best' or a step.")
_SPLIT = flags.DEFINE_string('split', '', 'TFDS split; default the test split.')
flags.mark_flags_as_required(['config', 'workdir'])
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', '', 'host:port of process 0 (multi-process).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 0, 'Processes in all.')
_PROCESS_ID = flags.DEFINE_integer('process_id', -1, 'This process, 0-based.')
_AUTO = flags.DEFINE_bool(
    'distributed_auto', False,
    'jax.distributed.initialize() with no arguments (TPU pods).')


def main(argv):
  del argv
  distributed.initialize(coordinator_address=_COORDINATOR.value,
                         num_processes=_NUM_PROCESSES.value,
                         process_id=_PROCESS_ID.value, auto=_AUTO.value)
  result = trainer.evaluate(_CONFIG.value, _WORKDIR.value, step=_STEP.value,
                            split=_SPLIT.value)
  print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == '__main__':
  app.run(main)
