r"""Exports a checkpoint to a Hugging Face transformers (PyTorch) directory.

  # A training run: the experiment gives the architecture.
  python launch/export_hf.py --config=experiments/mlm_bytes.py:smoke \
      --workdir=workdirs/mlm --output=workdirs/mlm_hf
  # A release-format file with a released architecture (or a spec JSON).
  python launch/export_hf.py --checkpoint=optical_flow_checkpoint.pystate \
      --spec=optical_flow --output=flow_hf

Then, in PyTorch: transformers.PerceiverForMaskedLM.from_pretrained(
'workdirs/mlm_hf'). The export is checked by running it in transformers
next to our model (--noverify skips that); models transformers cannot
express are refused with the options that stand in the way. Pass the same
--config.<key>=<value> overrides the run was trained with. Needs the `hf`
extra: pip install -e '.[hf]'. perceiver/hf/export.py has the details.
"""
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perceiver.hf import export  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'The experiment file the run was trained with.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run (Orbax).')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'Instead of --workdir: a .pickle/.pystate file or an '
    'Orbax checkpoints/ or step directory.')
_SPEC = flags.DEFINE_string(
    'spec', None, 'Instead of --config: a release family (language_mlm, '
    'imagenet_fourier, imagenet_learned, imagenet_conv, optical_flow, '
    'video_autoencoding) or a spec JSON file.')
_OUTPUT = flags.DEFINE_string('output', None, 'The directory to write.')
_STEP = flags.DEFINE_string('step', 'latest', "'latest', 'best' or a step.")
_VERIFY = flags.DEFINE_boolean(
    'verify', True, 'Run the export in transformers and compare it with our '
    'model (rtol 1e-4, atol 1e-5); fail if they disagree.')
_TOKENIZER = flags.DEFINE_boolean(
    'tokenizer', True, 'MLM: write the bytes tokenizer files.')
_ALLOW_INEXACT = flags.DEFINE_boolean(
    'allow_inexact', False, 'Export a family transformers computes '
    'differently (the ImageNet conv stem), reporting the difference.')
_OVERWRITE = flags.DEFINE_boolean('overwrite', False,
                                  'Replace an existing --output.')
flags.mark_flags_as_required(['output'])


def main(argv):
  del argv
  if bool(_WORKDIR.value) == bool(_CHECKPOINT.value):
    raise app.UsageError('Give exactly one of --workdir and --checkpoint.')
  print(export.export_checkpoint(
      _OUTPUT.value, checkpoint=_WORKDIR.value or _CHECKPOINT.value,
      config=_CONFIG.value, spec=_SPEC.value, step=_STEP.value,
      verify=_VERIFY.value, tokenizer=_TOKENIZER.value,
      allow_inexact=_ALLOW_INEXACT.value, overwrite=_OVERWRITE.value))


if __name__ == '__main__':
  app.run(main)
