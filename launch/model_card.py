r"""Model card: parameters and forward FLOPs of each released Perceiver IO.
Thin: flags, then one call (perceiver/model_card.py has the method).

  python launch/model_card.py
  python launch/model_card.py --families=imagenet_fourier,language_mlm \
      --batch_size=1 --json_out=/tmp/model_card.json
"""
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perceiver import model_card  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import logs  # pylint: disable=g-import-not-at-top,wrong-import-position

_FAMILIES = flags.DEFINE_list(
    'families', None, 'Families to put on the card (default: all registered: '
    f'{", ".join(model_card.REGISTRY)}).')
_BATCH = flags.DEFINE_integer('batch_size', 1, 'Batch the forward is lowered '
                              'at; FLOPs are reported per example.',
                              lower_bound=1)
_JSON = flags.DEFINE_string('json_out', None, 'Optional path for the cards '
                            'as JSON.')
flags.register_validator(
    'json_out', lambda path: path is None or os.path.isdir(
        os.path.dirname(os.path.abspath(path))),
    message='--json_out: its directory does not exist (the card would be '
    'computed, then fail to be written).')
_VARIANTS = flags.DEFINE_bool('variants', True,
                              'Also cost variants (the video decodes).')


def main(argv):
  del argv
  logs.configure()
  try:
    model_card.print_cards(_FAMILIES.value, batch_size=_BATCH.value,
                           variants=_VARIANTS.value, json_out=_JSON.value)
  except KeyError as e:
    raise app.UsageError(str(e)) from None


if __name__ == '__main__':
  app.run(main)
