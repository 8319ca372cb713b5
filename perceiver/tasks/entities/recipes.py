"""Config builders of experiments/entities.py (the StarCraft II stand-in).

[P] §4.4 / App. B / Table 9: AlphaStar's entity encoder (a Transformer)
replaced by Perceiver IO with N = 32 latents (64 swept), "3 layers", other
hyperparameters as on ImageNet; both trained by behavioural cloning.
Here both train on the synthetic battle sets of
perceiver/tasks/entities/battle.py at AlphaStar's M = 512 entity slots.

Training recipe (the same for both encoders, so that the comparison is
fair): AdamW, lr 1e-3 with a linear warmup and cosine decay, weight decay
1e-4, global-norm clipping at 1, batch 8.
DEVIATION: [P] trains Perceiver IO with its ImageNet recipe (LAMB) and
AlphaStar's Transformer with AlphaStar's (Adam); one optimiser for both
keeps the comparison about the encoders, and Adam-type updates learn
fastest in the few hundred CPU steps this machine affords. Batch 8 (not
AlphaStar's 512 x 64 trajectories): CPU-sized.
"""
from typing import Any

import ml_collections

from perceiver.train import config_lib

TASK_MODULE = 'perceiver.tasks.entities.task'
ENCODERS = ('transformer', 'perceiver')
LATENTS = (32, 64)  # [P] App. B sweeps N over 32 and 64


def entities(args: dict[str, Any]) -> ml_collections.ConfigDict:
  """The experiment's config from its parsed variants (experiments/
  entities.py documents them)."""
  c = config_lib.base_config(TASK_MODULE)
  config_lib.add_task_defaults(c)
  c.input.name = 'battle_sets'  # generated on the fly (battle.py)
  c.input.eval_split = 'validation'
  c.input.test_split = ''  # the one held-out set is the comparison's
  c.input.global_batch_size = config_lib.positive_variant(args, 'batch', 8)
  c.input.eval_batch_size = 32
  c.input.max_entities = config_lib.positive_variant(args, 'entities', 512)
  c.input.min_entities = min(16, c.input.max_entities)
  c.best_metric = 'eval/pointer_accuracy'
  c.best_mode = 'max'

  encoder = args.get('encoder', 'perceiver')
  if encoder not in ENCODERS:
    raise ValueError(f'experiments/entities.py: encoder={encoder!r}; use one '
                     f'of {ENCODERS}.')
  encoder_kwargs = {}
  if encoder == 'perceiver':
    latents = config_lib.positive_variant(args, 'latents', 32)
    if latents not in LATENTS:
      raise ValueError(f'experiments/entities.py: latents={latents}; [P] '
                       f'sweeps {LATENTS}.')
    encoder_kwargs['num_latents'] = latents
  elif 'latents' in args:
    raise ValueError('experiments/entities.py: latents= applies to '
                     'encoder=perceiver only.')
  c.model = ml_collections.ConfigDict(dict(encoder=encoder,
                                           encoder_kwargs=encoder_kwargs))
  c.scan_layers = True  # hk.layer_stack over the (3) self-attention layers

  c.num_train_steps = config_lib.positive_variant(args, 'steps', 600)
  c.optimizer.name = 'adamw'
  c.optimizer.weight_decay = 1e-4
  c.optimizer.clip_global_norm = 1.0
  c.schedule.name = 'warmup_cosine'
  c.schedule.base_lr = config_lib.positive_variant(args, 'lr', 1e-3, float)
  c.schedule.warmup_steps = min(20, c.num_train_steps // 10)
  c.log_every = 10
  c.eval_every = 0  # the held-out split at the end (launch/eval.py between)
  c.checkpoint_every = 50
  c.keep_checkpoints = 2

  if args.get('smoke'):  # 2 steps of a tiny model: CI runs the whole system
    c.input.max_entities = 12
    c.input.min_entities = 4
    c.input.global_batch_size = 4
    c.input.eval_batch_size = 4
    c.input.num_eval_examples = 4
    c.input.prefetch_batches = 1
    config_lib.smoke_loop(c)
    if encoder == 'perceiver':
      c.model.encoder_kwargs.update(num_latents=4, num_self_attends=1)
    else:
      c.model.encoder_kwargs.update(num_layers=1)
  return c
