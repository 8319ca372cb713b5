r"""MLM pretraining of Perceiver IO++ on UTF-8 bytes ([P] §4.1, Tables 1, 11).

[P] Table 11 "Perceiver IO++": 2048 bytes, 256 x 1536 latents, 40 layers,
the same 768-d decoder (425,607,430 params, models.py).

  python launch/train.py --config=experiments/mlm_bytes_plusplus.py \
      --workdir=workdirs/mlm_bytes_pp --config.input.data_dir=DIR_WITH_C4_WIKI
  python launch/train.py --config=experiments/mlm_bytes_plusplus.py:smoke \
      --workdir=/tmp/s

Expected: fine-tuned on GLUE, [P] Table 14 row "Perceiver IO++": dev
average 81.76 (Table 1: 81.8); CoLA 52.54, SST-2 93.98.

Recipe and silent-paper choices: as experiments/mlm_bytes.py ([P] Table 12).
Variants: smoke, embedded, steps=N, accum=K, batch=B, lr=X (as mlm_bytes).
"""
from perceiver.tasks.language import recipes
from perceiver.train import config_lib

VARIANTS = {'smoke', 'embedded', 'steps', 'accum', 'batch', 'lr'}


def get_config(arg=None):
  args = config_lib.parse_variants(arg, VARIANTS, 'experiments/mlm_bytes_plusplus.py')
  return recipes.mlm('mlm_bytes_plusplus', args)
