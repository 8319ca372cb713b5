r"""Optical flow between two images, or a benchmark's EPE. Thin: flags, one call.

  # The released checkpoint (368x496 network; any image size, tiled):
  python launch/flow.py --checkpoint=optical_flow_checkpoint.pystate \
      --frame1=a.png --frame2=b.png --output=out/ab
  # Our training run, against ground truth (a .flo or a disparity PNG):
  python launch/flow.py --config=experiments/optical_flow.py:cpu \
      --checkpoint=workdirs/flow_cpu --frame1=left.png --frame2=right.png \
      --output=out/lr --gt_disparity=disp.png
  # A benchmark at full resolution (Sintel, KITTI, stereo pairs):
  python launch/flow.py --checkpoint=workdirs/flow --dataset=sintel_clean \
      --data_dir=DIR
  # Plumbing test without weights:
  python launch/flow.py --config=experiments/optical_flow.py:smoke \
      --random_init --frame1=a.png --frame2=b.png --output=/tmp/ab

Writes <output>.flo (Middlebury format) and <output>.png (Middlebury
colours); prints EPE and 1/3/5 px outlier rates when ground truth is given.
--config (default experiments/optical_flow.py, the paper's = the release's
model) defines the network; its variant must match the checkpoint.
"""
import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from perceiver.tasks.flow import inference  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(_ROOT, 'experiments', 'optical_flow.py'),
    'Experiment file[:variant] whose model the checkpoint holds.',
    lock_config=True)
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', '', 'A release .pystate/.pickle, or a training run (its '
    'workdir, checkpoints/ folder or one step folder).')
_RANDOM_INIT = flags.DEFINE_bool('random_init', False,
                                 'Random weights (testing) instead.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of --random_init.')
_FRAME1 = flags.DEFINE_string('frame1', '', 'First image (PNG/JPEG/...).')
_FRAME2 = flags.DEFINE_string('frame2', '', 'Second image, same size.')
_OUTPUT = flags.DEFINE_string('output', '', 'Output prefix: .flo and .png.')
_GT_FLOW = flags.DEFINE_string('gt_flow', '',
                               'Ground truth: .flo or KITTI flow PNG.')
_GT_DISPARITY = flags.DEFINE_string(
    'gt_disparity', '', 'Ground truth of a stereo pair (frame1 = left): a '
    'disparity PNG; flow = (-d, 0); 0 = unknown.')
_DISPARITY_SCALE = flags.DEFINE_float(
    'disparity_scale', 0.0, 'PNG value per pixel of disparity; 0 = 256 for '
    '16-bit PNGs (KITTI), 1 for 8-bit ones (Middlebury).')
_DATASET = flags.DEFINE_string(
    'dataset', '', 'Evaluate a whole dataset instead: sintel_clean, '
    'sintel_final, kitti, motorcycle or aloe.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', 'Where --dataset lives.')
_DOWNSCALE = flags.DEFINE_integer('downscale', 1,
                                  'Box-downscale --dataset pairs by this.')
_MIN_OVERLAP = flags.DEFINE_integer('min_overlap', 20,
                                    'Minimum tile overlap, pixels.')
_JSON = flags.DEFINE_string('json', '', 'Also write the result here.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  result = inference.main(
      _CONFIG.value, checkpoint=_CHECKPOINT.value,
      random_init=_RANDOM_INIT.value, seed=_SEED.value, frame1=_FRAME1.value,
      frame2=_FRAME2.value, output=_OUTPUT.value, gt_flow=_GT_FLOW.value,
      gt_disparity=_GT_DISPARITY.value,
      disparity_scale=_DISPARITY_SCALE.value, dataset=_DATASET.value,
      data_dir=_DATA_DIR.value, downscale=_DOWNSCALE.value,
      min_overlap=_MIN_OVERLAP.value)
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump(result, f, indent=2, sort_keys=True)


if __name__ == '__main__':
  app.run(main)
