r"""GLUE fine-tuning of a pretrained Perceiver IO MLM ([P] §4.1, App. F.4,
Tables 1, 2, 13, 14).

Single task (one learned decoder query, a 2-layer tanh MLP head; no [CLS]):

  python launch/train.py --config=experiments/glue.py:task=cola,bs=16,lr=5e-5 \
      --workdir=workdirs/glue_cola_16_5e-5 \
      --config.init_from.path=workdirs/mlm_bytes/checkpoints \
      --config.input.data_dir=DIR_WITH_TFDS_GLUE

`init=PATH` (or --config.init_from.path) is our MLM run's checkpoints/
directory or a release-format .pickle (language_perceiver_io_bytes.pickle);
the log lists what was loaded and what was newly initialised (the decoder
query, its attention and the head). The grid of [P] Table 13 is
`recipes.glue_sweep()` (python -c "from perceiver.tasks.language import
recipes; print('\n'.join(recipes.glue_sweep()))"); keep each task's best
dev score.

Multitask ([P] §4.1, Table 2), all 8 tasks at once, one output per task:

  python launch/train.py --config=experiments/glue.py:multitask=query \
      --workdir=workdirs/glue_mt_query --config.init_from.path=...

Expected (GLUE dev, [P] Table 14; 'eval/score' is the task's metric, the
mean over tasks for multitask): bytes "Perceiver IO" CoLA 50.19 (MCC),
MNLI 83.22/83.89, MRPC 87.24, QNLI 91.71, QQP 90.12, RTE 64.84, SST-2
93.17, STS-B 86.81 (Pearson), average 80.95. Multitask: query 81.79,
shared_token 81.49, task_tokens 81.76 (Table 2: 81.8, 81.5, 81.8).

Recipe ([P] F.4): 10 epochs, batch {16,32,64} x lr {1e-4,5e-5,2e-5,1e-5},
LAMB, 200 warmup steps, weight decay 0.01, T = the pretraining length.
Where the paper is silent (config fields):
  * after warmup, cosine to 0 (config.schedule.name='warmup_cosine');
  * STS-B regresses with the squared error; classification uses softmax CE;
  * multitask: 10 epochs of the union of the 8 training sets, sampled in
    proportion to their sizes (config.input.multitask_sampling), each
    example training only its own task's head;
  * the new decoder is freshly initialised (warm-start its attention from
    the MLM decoder with config.init_from.rename=
    (('^basic_decoder/cross_attention','glue_decoder/cross_attention'),));
  * eval every epoch on every dev split, checkpoint kept by eval/score.

Variants (comma-separated after the colon):
  task=NAME        cola|sst2|mrpc|stsb|qqp|mnli|qnli|rte (default sst2).
  multitask=V      query|shared_token|task_tokens (all 8 tasks).
  bs=B, lr=X       the grid point (default 32, 5e-5).
  epochs=E         default 10.
  model=NAME       mlm_bytes (default) | mlm_bytes_plusplus | mlm_spm_base.
  spm=PATH         the SentencePiece model (mlm_spm_base).
  init=PATH        the pretrained checkpoint (config.init_from.path).
  length=T         input length (default the model's, 2048 bytes / 512).
  smoke            2 steps of a tiny model.
  The model fields of experiments/mlm_bytes.py (embed_init=X, local=W, ...)
  build the pretrained model's DEVIATIONs; they must match the checkpoint's.
"""
from perceiver.tasks.language import recipes
from perceiver.train import config_lib

VARIANTS = {'task', 'multitask', 'bs', 'lr', 'epochs', 'model', 'spm', 'init',
            'length', 'smoke',
            *recipes.MODEL_VARIANTS}


def sweep() -> list[str]:
  """The [P] Table 13 grid as variant strings (8 tasks x 3 x 4)."""
  return recipes.glue_sweep()


def get_config(arg=None):
  args = config_lib.parse_variants(arg, VARIANTS, 'experiments/glue.py')
  return recipes.glue(args)
