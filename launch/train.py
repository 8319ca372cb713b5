r"""Trains an experiment. Thin: flags, then one library call.

  python launch/train.py --config=experiments/mnist.py --workdir=workdirs/mnist
  python launch/train.py --config=experiments/imagenet_fourier.py \
      --workdir=gs://bucket/pio_fourier --config.input.data_dir=gs://bucket/tfds

Re-running the same command resumes from the workdir's latest checkpoint.
Multi-host: see launch/README.md (--coordinator_address, --num_processes,
--process_id; on TPU pods nothing is needed).
"""
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import trainer  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment file, e.g. experiments/mnist.py[:variant].',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints, logs, data.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  common.setup()
  trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                             progress=sys.stderr.isatty())


if __name__ == '__main__':
  app.run(main)
