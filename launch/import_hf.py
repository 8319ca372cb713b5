r"""Brings a Hugging Face transformers Perceiver back as a release-format file.

  python launch/import_hf.py --hf_dir=workdirs/mlm_hf \
      --output=workdirs/mlm_from_hf.pystate

Writes the params (and Haiku state) in the release's .pickle/.pystate
format, and the architecture as <output>.spec.json. Fine-tune from it with
config.init_from.path=<output>, or export it again with
launch/export_hf.py --checkpoint=<output> --spec=<output>.spec.json.
The directory can be one written by launch/export_hf.py (the round trip is
bit for bit) or any PerceiverFor* checkpoint saved by transformers.
perceiver/hf/load.py has the details.
"""
import json
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perceiver.hf import load  # pylint: disable=g-import-not-at-top,wrong-import-position

_HF_DIR = flags.DEFINE_string('hf_dir', None, 'A transformers directory.')
_OUTPUT = flags.DEFINE_string('output', None, '.pickle or .pystate path.')
flags.mark_flags_as_required(['hf_dir', 'output'])


def main(argv):
  del argv
  print(json.dumps(load.import_to_file(_HF_DIR.value, _OUTPUT.value),
                   indent=1))


if __name__ == '__main__':
  app.run(main)
