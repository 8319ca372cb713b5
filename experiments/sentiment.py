r"""Sentiment of Rotten Tomatoes snippets: the embedded, SST-2-like task.

Not in the paper: an offline stand-in for GLUE SST-2 ([P] Table 14 column
SST-2; SST-2 is itself built from Rotten Tomatoes reviews), read through
the GLUE pipeline as task 'sst2' (perceiver/tasks/language/tfds_builders.py:
8,452 train / 1,079 validation / 1,037 test sentences). The model is the
CPU-sized bytes MLM of recipes.SMALL (T = 128 bytes) with the GLUE
classifier head of [P] F.4, fine-tuned from an MLM checkpoint or from
scratch:

  python launch/train.py --config=experiments/mlm_bytes.py:embedded \
      --workdir=workdirs/mlm_small ...  (benchmarks/repro/language_repro.py)
  python launch/train.py \
      --config=experiments/sentiment.py:init=workdirs/mlm_small/checkpoints \
      --workdir=workdirs/sentiment
  python launch/train.py --config=experiments/sentiment.py \
      --workdir=workdirs/sentiment_scratch
  python launch/train.py --config=experiments/sentiment.py:smoke --workdir=/tmp/s

Expected: [P] Table 14 reports SST-2 dev accuracy 93.17 for the full bytes
model pretrained on C4 + Wikipedia; this toy setting is far below that.
Measured numbers (benchmarks/repro/LANGUAGE.md): pretrained on KJV+Shakespeare
vs from scratch, same steps and seed; with the MLM's locality prior
(`local=2`, T = 128, 3 seeds) 57.2% against 54.8% test accuracy.

Recipe: [P] F.4's (LAMB, weight decay 0.01, warmup min(200, 10% of the
steps), cosine) with 10 epochs at batch 32 and lr 5e-5 by default.

Variants: init=PATH, bs=B, lr=X, epochs=E, steps=N, model=NAME (default
small), length=T, smoke, and the model fields of experiments/mlm_bytes.py
(embed_init=X, local=W, ...), which must match the checkpoint's.
"""
from perceiver.tasks.language import recipes
from perceiver.train import config_lib

VARIANTS = {'init', 'bs', 'lr', 'epochs', 'steps', 'model', 'length', 'smoke',
            *recipes.MODEL_VARIANTS}


def get_config(arg=None):
  args = config_lib.parse_variants(arg, VARIANTS, 'experiments/sentiment.py')
  return recipes.sentiment(args)
