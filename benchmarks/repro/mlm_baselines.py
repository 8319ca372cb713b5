r"""Count baselines on exactly the masked bytes a `launch/train.py` MLM run
evaluates: the numbers its eval/loss must beat.

Not a test. Builds the run's config (the same experiment variants and
--config.KEY=VALUE overrides as its launch/train.py command), reads the
first --train_batches of its training stream (the batches the run trained
on first) and every eval batch (the eval split, masked with the trainer's
fixed seed), and prints the masked-byte accuracy and NLL of:
  * unigram: the training batches' masked-byte frequencies (what a model
    that ignores every input predicts: the plateau);
  * context: a count model of a shallow context (the two neighbouring
    input bytes for per-byte masking; the masked run's length and the
    byte's index in it for whole words), smoothed towards the unigram
    (`benchmarks/probes/mlm_plateau.count_baselines`).

  .venv/bin/python benchmarks/repro/mlm_baselines.py \
      --variants=embedded,small,local=2 --workdir=/tmp/mlm_local \
      --config=input.docs_per_example=1 --config=input.eval_epochs=4 ...

Results: benchmarks/repro/LANGUAGE.md.
"""
import argparse
import json
import os
import sys

import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=wrong-import-position
from benchmarks.probes import mlm_plateau
from benchmarks.repro import language_repro
from perceiver.tasks.language import mlm
from perceiver.train import config_lib
# pylint: enable=wrong-import-position


def baselines(config, workdir: str, train_batches: int) -> dict:
  """{'unigram': (acc, nll), 'context': (acc, nll), 'masked_bytes': n}."""
  data_dir = mlm.prepare_data(config, workdir)
  stream = mlm.train_iterator(config, data_dir=data_dir, seed=config.seed,
                              start_step=0, process_index=0, process_count=1)
  keys = ('inputs', 'targets', 'target_mask')
  train = {k: [] for k in keys}
  for _, batch in zip(range(train_batches), stream):
    for k in keys:
      train[k].append(np.asarray(batch[k]))
  batches, _ = mlm.eval_iterator(config, config.input.eval_split,
                                 data_dir=data_dir, process_index=0,
                                 process_count=1)
  val = {k: [] for k in keys}
  for batch in batches:
    keep = np.asarray(batch['mask']) > 0  # padding rows of the last batch
    for k in keys:
      val[k].append(np.asarray(batch[k])[keep])
  train = {k: np.concatenate(v) for k, v in train.items()}
  val = {k: np.concatenate(v) for k, v in val.items()}
  masking = 'byte' if config.input.mask_unit == 'token' else 'word'
  out = mlm_plateau.count_baselines(train, val, masking)
  out['masked_bytes'] = int(val['target_mask'].sum())
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--variants', default='embedded,small',
                      help='experiments/mlm_bytes.py variants of the run')
  parser.add_argument('--config', action='append', default=[],
                      metavar='KEY=VALUE', help="the run's --config.KEY=VALUE")
  parser.add_argument('--workdir', required=True,
                      help='where the embedded corpus is built (or the '
                      "run's --config.input.data_dir is read)")
  parser.add_argument('--train_batches', type=int, default=500)
  args = parser.parse_args()
  config = config_lib.load_experiment(
      os.path.join(_REPO, 'experiments', 'mlm_bytes.py'), args.variants)
  language_repro.set_overrides(
      config, language_repro.parse_overrides(args.config))
  result = baselines(config, args.workdir, args.train_batches)
  print(json.dumps(result, indent=1))


if __name__ == '__main__':
  main()
