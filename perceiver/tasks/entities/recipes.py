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


def _model(encoder: str, latents: int) -> ml_collections.ConfigDict:
  if encoder not in ENCODERS:
    raise ValueError(f'experiments/entities.py: encoder={encoder!r}; use one '
                     f'of {ENCODERS}.')
  encoder_kwargs = {}
  if encoder == 'perceiver':
    if latents not in LATENTS:
      raise ValueError(f'experiments/entities.py: latents={latents}; [P] '
                       f'sweeps {LATENTS}.')
    encoder_kwargs['num_latents'] = latents
  return ml_collections.ConfigDict(dict(encoder=encoder,
                                        encoder_kwargs=encoder_kwargs))


def cpu(encoder: str = 'perceiver', latents: int = 32, batch: int = 8,
        steps: int = 600, entities: int = 512, lr: float = 1e-3
        ) -> ml_collections.ConfigDict:
  """The comparison of the module doc: `encoder` ('perceiver' with N =
  `latents`, or 'transformer') on `entities` slots, batch `batch`, `steps`
  steps of AdamW at peak `lr`."""
  c = config_lib.base_config(TASK_MODULE)
  config_lib.add_task_defaults(c)
  c.input.name = 'battle_sets'  # generated on the fly (battle.py)
  c.input.eval_split = 'validation'
  c.input.test_split = ''  # the one held-out set is the comparison's
  c.input.eval_batch_size = 32
  c.input.max_entities = entities
  c.input.min_entities = min(16, c.input.max_entities)
  c.best_metric = 'eval/pointer_accuracy'
  c.best_mode = 'max'
  c.model = _model(encoder, latents)
  c.scan_layers = True  # hk.layer_stack over the (3) self-attention layers

  config_lib.set_batch(c, batch, 1, steps)
  c.optimizer.name = 'adamw'
  c.optimizer.weight_decay = 1e-4
  c.optimizer.clip_global_norm = 1.0
  c.schedule.name = 'warmup_cosine'
  c.schedule.base_lr = lr
  c.schedule.warmup_steps = min(20, c.num_train_steps // 10)
  c.log_every = 10
  c.eval_every = 0  # the held-out split at the end (launch/eval.py between)
  c.checkpoint_every = 50
  c.keep_checkpoints = 2
  return c


def paper(encoder: str = 'perceiver', latents: int = 32, **kwargs
          ) -> ml_collections.ConfigDict:
  """[P] §4.4's encoders at AlphaStar's 512 entity slots: `cpu`. The
  replays and AlphaStar's own training are not available, so there is no
  larger recipe; `kwargs` are cpu's."""
  return cpu(encoder, latents, **kwargs)


def smoke(encoder: str = 'perceiver', latents: int = 32, lr: float = 1e-3
          ) -> ml_collections.ConfigDict:
  """2 steps of a tiny model: CI runs the whole system."""
  c = cpu(encoder, latents, lr=lr)
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


def from_variants(args: dict[str, Any]) -> ml_collections.ConfigDict:
  """experiments/entities.py's variants (documented there) -> a config."""
  encoder = args.get('encoder', 'perceiver')
  if encoder != 'perceiver' and 'latents' in args:
    if encoder in ENCODERS:
      raise ValueError('experiments/entities.py: latents= applies to '
                       'encoder=perceiver only.')
  latents = config_lib.positive_variant(args, 'latents', 32)
  batch, _, steps = config_lib.batch_variants(args, batch=8, steps=600)
  entities = config_lib.positive_variant(args, 'entities', 512)
  lr = config_lib.positive_variant(args, 'lr', 1e-3, float)
  if args.get('smoke'):
    return smoke(encoder, latents, lr)
  return cpu(encoder, latents, batch, steps, entities, lr)
