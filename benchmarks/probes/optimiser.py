"""The project's optimiser for the probes' own training loops.

The probes train without the trainer (no checkpoints, no input pipeline,
so that a probe is quick) but with its optimiser: `config.optimizer` and
`config.schedule` of `config_lib.base_config`, turned into an update rule
by `perceiver.train.optim` exactly as `trainer.train_and_evaluate` does.
A probe's update is therefore the one a launch/train.py run makes: LAMB or
AdamW ([P] App. A; [code] train/experiment.py), weight decay on neither
biases nor normalisation parameters, LAMB's trust ratio per layer of a
scanned stack, optional global-norm clipping.
"""
import ml_collections
import optax

from perceiver.train import config_lib
from perceiver.train import optim


def config(*, name: str, lr: float, steps: int, warmup: int = 0,
           cosine: bool = True, weight_decay: float = 0.0,
           clip_global_norm: float = 0.0) -> ml_collections.ConfigDict:
  """The project's optimiser and schedule fields for a probe's run.

  Args:
    name: config.optimizer.name, 'lamb' or 'adamw'.
    lr: the peak learning rate (config.schedule.base_lr).
    steps: the run's optimiser updates (config.num_train_steps).
    warmup: linear warmup updates from 0 (config.schedule.warmup_steps).
    cosine: True for a cosine decay to 0 after the warmup
      ('warmup_cosine'); False for `lr` held constant after it ('step' with
      no boundaries).
    weight_decay: config.optimizer.weight_decay.
    clip_global_norm: config.optimizer.clip_global_norm (0: off).

  Returns:
    A config with `optimizer`, `schedule` and `num_train_steps`; every other
    field keeps `config_lib.base_config`'s value (b1 0.9, b2 0.999,
    eps 1e-6, position embeddings decayed as in the release).
  """
  c = config_lib.base_config()
  c.optimizer.name = name
  c.optimizer.weight_decay = weight_decay
  c.optimizer.clip_global_norm = clip_global_norm
  c.schedule.name = 'warmup_cosine' if cosine else 'step'
  c.schedule.base_lr = lr
  c.schedule.warmup_steps = warmup
  c.schedule.boundaries = ()
  c.num_train_steps = steps
  return c


def make(c: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """`c.optimizer` and `c.schedule` as the trainer builds them."""
  accum = c.optimizer.grad_accum_steps
  schedule = optim.make_schedule(c.schedule,
                                 max(c.num_train_steps // accum, 1))
  return optim.make_optimizer(c.optimizer, schedule)
