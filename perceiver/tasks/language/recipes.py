"""Config builders shared by the language experiments (experiments/mlm_*.py,
experiments/glue.py, experiments/sentiment.py).

The experiment files hold the launch commands, the paper's numbers and the
variants; `mlm`, `glue` and `sentiment` turn a parsed variant dict into a
ConfigDict of `perceiver.train.config_lib.base_config()` keys (nothing new
is added, so `config_lib.validate` and `lock_config=True` catch typos).
`paper`, `cpu` and `smoke` are the MLM pretraining recipes, as every task's
recipes module offers them.

Paper recipes:
  * MLM ([P] §4.1, F.3, Table 12): LAMB, lr 1.25e-3, 1k linear warmup then
    cosine, weight decay 0.01, batch 2048, 500k steps.
  * GLUE ([P] F.4, Table 13): 10 epochs, batch {16, 32, 64} x lr {1e-4,
    5e-5, 2e-5, 1e-5}, LAMB, 200 warmup steps, weight decay 0.01.
Choices where the paper is silent are config fields, named in the
experiment docstrings.

Every experiment trains on the fast path (`hk.layer_stack`, plus remat for
MLM pretraining; benchmarks/README.md has the measurements): the release's
model and parameters, computed differently. Fine-tuning from a release
pickle converts its per-layer layout; `trainer.export` writes it back.
"""
import itertools
from typing import Any

import ml_collections

from perceiver import builders
from perceiver.tasks.language import models
from perceiver.train import config_lib

MLM_TASK = 'perceiver.tasks.language.mlm'
GLUE_TASK = 'perceiver.tasks.language.glue'

# GLUE training-set sizes (TFDS glue/<task> 'train'), for "10 epochs".
GLUE_TRAIN_SIZES = {'cola': 8551, 'sst2': 67349, 'mrpc': 3668, 'stsb': 5749,
                    'qqp': 363846, 'mnli': 392702, 'qnli': 104743,
                    'rte': 2490}
RT_TRAIN_SIZE = 8452  # the embedded rotten_tomatoes_snippets 'train'
GLUE_BATCH_SIZES = (16, 32, 64)  # [P] Table 13
GLUE_LEARNING_RATES = (1e-4, 5e-5, 2e-5, 1e-5)  # [P] Table 13

# A CPU-sized bytes MLM (DEVIATION: not in the paper; for the embedded
# corpus and benchmarks/repro/language_repro.py): the released design at
# T = 128 bytes, E = 128, N x D = 32 x 160, 4 layers (776k params; about
# 0.3 s per step of 32 on 2 loaded CPU cores).
SMALL = dict(max_seq_len=128, d_model=128, num_latents=32,
             latent_channels=160, num_layers=4, num_heads=4, qk_channels=64,
             decoder_heads=4, decoder_qk_channels=64)


# Experiment variants that set a model field of the plateau ablations
# (benchmarks/repro/LANGUAGE.md): variant -> (mlm_config kwarg, type, the
# release's value).
MODEL_VARIANTS = {
    'embed_init': ('embedding_init_scale', float, 1.0),
    'input_pos': ('input_position_encoding', str, 'trainable'),
    'input_pos_init': ('input_position_init_scale', float, 0.02),
    'query_pos_init': ('query_position_init_scale', float, 0.02),
    'latents': ('num_latents', int, 256),
    'cross_heads': ('cross_attend_heads', int, 8),
    # DEVIATION: a locality prior on the cross-attentions (models.mlm_config).
    'local': ('local_cross_attention', float, 0.0),
}


def _model_overrides(args: dict[str, Any]) -> dict[str, Any]:
  out = {}
  for variant, (field, kind, release) in MODEL_VARIANTS.items():
    if variant not in args:
      continue
    if kind is not str:
      out[field] = config_lib.positive_variant(args, variant, release, kind)
    elif args[variant] in builders.MLM_INPUT_POSITIONS:
      out[field] = args[variant]
    else:
      raise ValueError(
          f'Variant "{variant}={args[variant]}": use one of '
          f'{builders.MLM_INPUT_POSITIONS} (e.g. "{variant}={release}").')
  return out


def model_config(name: str, args: dict[str, Any]) -> dict[str, Any]:
  """models.get_config(name) for 'mlm_bytes' etc., or 'small' (SMALL), with
  the MODEL_VARIANTS in `args` (release values change nothing)."""
  extra = _model_overrides(args)
  if name == 'small' and args.get('smoke'):
    return models.get_config('mlm_bytes:smoke', **extra)
  if name == 'small':
    return models.mlm_config(vocab_size=models.BYTES_VOCAB_SIZE,
                             **{**SMALL, **extra})
  if args.get('smoke'):
    return models.get_config(f'{name}:smoke', **extra)
  return models.get_config(name, **extra)


def _base(task: str) -> ml_collections.ConfigDict:
  c = config_lib.add_task_defaults(config_lib.base_config(task))
  c.best_metric = 'eval/score' if task == GLUE_TASK else 'eval/accuracy'
  c.best_mode = 'max'
  c.optimizer.name = 'lamb'
  c.optimizer.weight_decay = 0.01  # [P] F.3 / F.4
  c.schedule.name = 'warmup_cosine'
  # The fast path: one compiled self-attention layer instead of 26
  # (compile time and step time: benchmarks/speed/bench_paths.py).
  c.scan_layers = True
  return c


def mlm(model_name: str, args: dict[str, Any]) -> ml_collections.ConfigDict:
  """The MLM pretraining recipe ([P] §4.1, F.3) for `model_name`."""
  c = _base(MLM_TASK)
  if args.get('small'):
    model_name = 'small'
  model = model_config(model_name, args)
  c.model = ml_collections.ConfigDict(model)
  spm = model_name == 'mlm_spm_base'
  c.input.tokenizer = 'sentencepiece' if spm else 'bytes'
  c.input.sentencepiece_model = args.get('spm', '')
  c.input.sequence_length = model['max_seq_len']
  if args.get('embedded') or args.get('smoke'):
    c.input.name = 'kjv_shakespeare'
    c.input.eval_split = 'validation'
  else:
    c.input.name = 'c4_wikipedia'
    c.input.eval_split = ''  # held-out MLM accuracy: run with embedded
  c.input.train_split = 'train'
  c.input.test_split = ''
  c.input.shuffle_buffer = 4096  # documents
  c.input.cache = bool(args.get('embedded') or args.get('smoke'))

  # Batch 2048 = global micro-batch x grad_accum_steps ([P] Table 12).
  # DEVIATION ([P] silent): 8 micro-batches of 256 by default (a 2048 x 2048-byte batch
  # does not fit a few devices); `accum=K` changes it, the batch stays 2048.
  batch, accum, updates = config_lib.batch_variants(
      args, batch=2048, accum=8, steps=500_000)  # [P] Table 12
  config_lib.set_batch(c, batch, accum, updates)
  c.input.eval_batch_size = max(c.input.global_batch_size, 8)
  c.schedule.base_lr = config_lib.positive_variant(  # [P] Table 12
      args, 'lr', 1.25e-3, float)
  c.schedule.warmup_steps = 1000  # optimiser updates, linear from 0
  # DEVIATION ([P] silent): the cosine runs from the end of warmup to step 500k (so the
  # whole schedule is 500k updates); [P] says "cosine over 500k".
  c.schedule.decay_steps = 0
  c.optimizer.clip_global_norm = 0.0  # [P] silent: no clipping
  # Remat of the self-attention layers: a larger micro-batch fits in the
  # same memory (benchmarks/speed/bench_paths.py, section 'batch').
  c.remat = True
  c.log_every = 100
  c.eval_every = 10_000 * accum
  c.checkpoint_every = 5_000 * accum
  c.keep_checkpoints = 2

  if args.get('smoke'):  # 2 steps of a tiny model on the embedded corpus
    c.input.global_batch_size = 4
    c.input.eval_batch_size = 4
    c.optimizer.grad_accum_steps = 1
    c.input.docs_per_example = 2
    c.input.shuffle_buffer = 64
    config_lib.smoke_loop(c)
  return c


def paper(model_name: str = 'mlm_bytes', **variants
          ) -> ml_collections.ConfigDict:
  """MLM pretraining of `model_name` as [P] §4.1 / Table 12 (`variants`
  are experiments/mlm_bytes.py's, e.g. steps=1000)."""
  return mlm(model_name, variants)


def cpu(**variants) -> ml_collections.ConfigDict:
  """MLM pretraining of the CPU-sized bytes model (SMALL) on the embedded
  corpus (DEVIATION: not in the paper; benchmarks/repro/language_repro.py)."""
  return mlm('mlm_bytes', {**variants, 'small': True, 'embedded': True})


def smoke(model_name: str = 'mlm_bytes') -> ml_collections.ConfigDict:
  """2 steps of a tiny `model_name` on the embedded corpus."""
  return mlm(model_name, {'smoke': True})


def glue(args: dict[str, Any], *, init_default: str = ''
         ) -> ml_collections.ConfigDict:
  """GLUE fine-tuning ([P] F.4) of task=<name> or multitask=<variant>."""
  c = _base(GLUE_TASK)
  model_name = args.get('model', 'mlm_bytes')
  model = model_config(model_name, args)
  c.model = ml_collections.ConfigDict(model)
  c.input.tokenizer = ('sentencepiece' if model_name == 'mlm_spm_base'
                       else 'bytes')
  c.input.sentencepiece_model = args.get('spm', '')
  c.input.sequence_length = config_lib.positive_variant(
      args, 'length', model['max_seq_len'])
  c.input.name = 'glue'
  multitask = args.get('multitask')
  if multitask:
    if multitask not in models.MULTITASK_VARIANTS:
      raise ValueError(f'multitask={multitask!r}; use one of '
                       f'{models.MULTITASK_VARIANTS}.')
    c.input.glue_tasks = tuple(GLUE_TRAIN_SIZES)
    c.model.multitask = multitask
    train_size = sum(GLUE_TRAIN_SIZES.values())  # one epoch of the union
  else:
    task = args.get('task', 'sst2')
    if task not in GLUE_TRAIN_SIZES:
      raise ValueError(f'task={task!r}; use one of {list(GLUE_TRAIN_SIZES)}.')
    c.input.glue_tasks = (task,)
    train_size = GLUE_TRAIN_SIZES[task]
  c.input.train_split = 'train'
  c.input.eval_split = 'validation'  # every dev split (MNLI m and mm)
  c.input.test_split = ''  # GLUE test labels are hidden
  c.input.cache = False
  c.input.shuffle_buffer = 10_000
  batch = config_lib.positive_variant(args, 'bs', 32)
  c.input.global_batch_size = batch
  c.input.eval_batch_size = 64
  epochs = config_lib.positive_variant(args, 'epochs', 10, float)  # [P] F.4
  steps_per_epoch = -(-train_size // batch)
  c.num_train_steps = max(int(epochs * steps_per_epoch), 1)
  c.schedule.base_lr = config_lib.positive_variant(args, 'lr', 5e-5, float)
  c.schedule.warmup_steps = 200  # [P] F.4
  # DEVIATION ([P] silent): cosine to 0 after warmup.
  c.log_every = 50
  c.eval_every = steps_per_epoch  # every epoch; best by eval/score kept
  c.checkpoint_every = steps_per_epoch
  c.keep_checkpoints = 1
  c.init_from.path = args.get('init', init_default)

  if args.get('smoke'):
    c.input.sequence_length = 48  # + up to 8 task tokens <= 64 positions
    c.input.global_batch_size = 4
    c.input.eval_batch_size = 8
    config_lib.smoke_loop(c)
  return c


def glue_sweep() -> list[str]:
  """Variant strings of the [P] Table 13 grid, for every task: launch each
  with --config=experiments/glue.py:<variant> and keep the best dev score."""
  return [f'task={t},bs={b},lr={lr:g}' for t, b, lr in itertools.product(
      GLUE_TRAIN_SIZES, GLUE_BATCH_SIZES, GLUE_LEARNING_RATES)]


def sentiment(args: dict[str, Any]) -> ml_collections.ConfigDict:
  """The embedded Rotten Tomatoes task (SST-2-like) on a small bytes model."""
  c = glue({**args, 'task': 'sst2', 'model': args.get('model', 'small')})
  c.input.name = 'rotten_tomatoes_snippets'
  c.input.glue_tasks = ('sst2',)
  c.input.cache = True
  c.input.shuffle_buffer = RT_TRAIN_SIZE
  c.input.eval_split = 'validation'
  c.input.test_split = 'test'
  c.input.eval_batch_size = 200
  if not args.get('smoke'):
    batch = config_lib.positive_variant(args, 'bs', 32)
    steps = (config_lib.positive_variant(args, 'steps', 1000)
             if 'steps' in args else 0)
    epochs = config_lib.positive_variant(args, 'epochs', 10, float)
    c.num_train_steps = steps or int(epochs * -(-RT_TRAIN_SIZE // batch))
    c.eval_every = 0
    c.checkpoint_every = 0
    c.schedule.warmup_steps = min(200, c.num_train_steps // 10)
  return c
