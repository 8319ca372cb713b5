r"""MLM pretraining of Perceiver IO on UTF-8 bytes ([P] §4.1, Tables 1, 11, 12).

The released bytes model (the release's MLM colab, [P] Table 11; 201,108,230
params): 2048 bytes in, 256 x 1280 latents, 26 self-attention layers, a
decoder with 2048 learned 768-d queries and logits tied to the embedding.

  python launch/train.py --config=experiments/mlm_bytes.py \
      --workdir=workdirs/mlm_bytes --config.input.data_dir=DIR_WITH_C4_WIKI
  python launch/train.py --config=experiments/mlm_bytes.py:embedded \
      --workdir=workdirs/mlm_bytes_embedded
  python launch/train.py --config=experiments/mlm_bytes.py:smoke --workdir=/tmp/s

Expected: [P] reports no MLM accuracy. Fine-tuned on GLUE
(experiments/glue.py:init=workdirs/mlm_bytes/checkpoints) it should give
[P] Table 1 / Table 14 row "Perceiver IO" (bytes): GLUE dev average 80.95
(Table 1: 81.0). The `embedded` corpus (a few MB of KJV + Shakespeare) is
far too small for that; it is for checking the system.

Recipe ([P] Table 12): LAMB, lr 1.25e-3, 1k linear warmup, cosine to 0 at
500k, weight decay 0.01, batch 2048, 500k steps, C4 70% + Wikipedia 30%,
10 documents per example, whole-word masking p = 0.15.
Where the paper is silent (config fields):
  * batch 2048 = 8 accumulated micro-batches of 256 (`accum=K`,
    config.optimizer.grad_accum_steps); num_train_steps counts micro-batches;
  * loss on masked positions only (config.input.loss_on_masked_only), every
    masked word fully MASKed (config.input.bert_replacement=False);
  * no gradient clipping, Adam b1 0.9, b2 0.999, eps 1e-6 (LAMB), no dropout;
  * the cosine ends at step 500k (config.schedule.decay_steps = 0).

Variants (comma-separated after the colon):
  smoke      2 steps of a tiny model on the embedded KJV+Shakespeare corpus.
  embedded   the embedded corpus instead of C4 + Wikipedia.
  small      the CPU-sized model of recipes.SMALL (T = 128 bytes; DEVIATION:
             not in the paper; benchmarks/repro/language_repro.py).
  steps=N    optimiser updates (default 500000).
  accum=K    micro-batches per update (default 8; batch stays 2048).
  batch=B    batch per update (default 2048).
  lr=X       peak learning rate (default 1.25e-3).
Model fields of the plateau ablations (benchmarks/repro/LANGUAGE.md; the
release's values are the defaults, any other is a DEVIATION):
  embed_init=X      token embedding (= tied logits) init stddev (1.0).
  input_pos=fourier Fourier input positions instead of the learned table.
  input_pos_init=X  learned input positions' init stddev (0.02).
  query_pos_init=X  decoder queries' init stddev (0.02).
  latents=N         number of latents (256; small: 32).
  cross_heads=H     heads of the encoder's cross-attention (8; small: 4).
  local=W           a Gaussian locality prior of width W bytes on both
                    cross-attentions (off; models.mlm_config's
                    local_cross_attention). `small,local=2` leaves the
                    unigram plateau at T = 128 (benchmarks/repro/LANGUAGE.md).
Per-byte instead of whole-word masking is a config field:
--config.input.mask_unit=token.
"""
from perceiver.tasks.language import recipes
from perceiver.train import config_lib

VARIANTS = {'smoke', 'embedded', 'small', 'steps', 'accum', 'batch', 'lr',
            *recipes.MODEL_VARIANTS}


def get_config(arg=None):
  args = config_lib.parse_variants(arg, VARIANTS, 'experiments/mlm_bytes.py')
  return recipes.mlm('mlm_bytes', args)
