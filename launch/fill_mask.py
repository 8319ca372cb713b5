r"""Fills masked spans of text with a Perceiver IO MLM. Thin: flags, one call.

  python launch/fill_mask.py --checkpoint=language_perceiver_io_bytes.pickle \
      --text="This is an incomplete sentence where some words are [MASK:9]"

  # No checkpoint at hand: an untrained tiny model exercises the pipeline.
  python launch/fill_mask.py --config=mlm_bytes:smoke --random_init_seed=0 \
      --text="The ___ sat on the mat." --mask_char=_

Mask syntax (perceiver/tasks/language/fill_mask.py): [MASK] one token, [MASK:n]
n tokens (bytes for the bytes model), \[ a literal '[', and with
--mask_char=c every c is one masked token.
"""
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from launch import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.language import fill_mask  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.language import models  # pylint: disable=g-import-not-at-top,wrong-import-position

_TEXT = flags.DEFINE_multi_string('text', None, 'Text with masked spans; '
                                  'repeat the flag for several texts.')
_CONFIG = flags.DEFINE_string(
    'config', 'mlm_bytes', 'mlm_bytes, mlm_bytes_plusplus or mlm_spm_base, '
    'optionally with ":smoke".')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'A release-format .pickle/.pystate MLM checkpoint.')
_SEED = flags.DEFINE_integer(
    'random_init_seed', None, 'Use an untrained model with this seed '
    'instead of a checkpoint.')
_MASK_CHAR = flags.DEFINE_string('mask_char', None,
                                 'A character that marks one masked token.')
_SPM = flags.DEFINE_string('sentencepiece_model', None,
                           'SentencePiece model file (SPM configs).')
flags.mark_flag_as_required('text')
common.check_flag('config', models.get_config)
common.check_flag('checkpoint', fill_mask.check_checkpoint_path)
common.check_flag('mask_char', fill_mask.check_mask_char)
flags.register_multi_flags_validator(
    ['checkpoint', 'random_init_seed'],
    lambda f: (f['checkpoint'] is None) != (f['random_init_seed'] is None),
    message='Give exactly one of --checkpoint and --random_init_seed.')


def main(argv):
  del argv
  fill_mask.run(_TEXT.value, config=_CONFIG.value, checkpoint=_CHECKPOINT.value,
                random_init_seed=_SEED.value, mask_char=_MASK_CHAR.value,
                sentencepiece_model=_SPM.value)


if __name__ == '__main__':
  app.run(main)
