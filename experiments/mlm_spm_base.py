r"""MLM pretraining of Perceiver IO Base on SentencePiece tokens ([P] §4.1,
Tables 1, 11).

[P] Table 11 "Perceiver IO Base": 512 SentencePiece tokens (32k vocabulary),
256 x 1280 latents, 26 layers (223,155,456 params, models.py). Train the
tokenizer first (perceiver.tasks.language.tokenizers.train_sentencepiece, then
SentencePieceTokenizer.save) and pass its path as `spm=PATH`.

  python launch/train.py --config=experiments/mlm_spm_base.py:spm=spm.model \
      --workdir=workdirs/mlm_spm --config.input.data_dir=DIR_WITH_C4_WIKI
  python launch/train.py --config=experiments/mlm_spm_base.py:smoke,spm=spm.model \
      --workdir=/tmp/s

Expected: fine-tuned on GLUE, [P] Table 14 row "Perceiver IO Base (SPM)":
dev average 81.16 (Table 1: 81.2).

Recipe and silent-paper choices: as experiments/mlm_bytes.py ([P] Table 12),
with T = 512 tokens; a SentencePiece token is masked whole-word like bytes.
Variants: smoke, embedded, spm=PATH, steps=N, accum=K, batch=B, lr=X.
"""
from perceiver.tasks.language import recipes
from perceiver.train import config_lib

VARIANTS = {'smoke', 'embedded', 'spm', 'steps', 'accum', 'batch', 'lr'}


def get_config(arg=None):
  args = config_lib.parse_variants(arg, VARIANTS, 'experiments/mlm_spm_base.py')
  return recipes.mlm('mlm_spm_base', args)
