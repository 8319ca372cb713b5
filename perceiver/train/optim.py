"""Optimisers and learning-rate schedules, all from optax.

[P] App. A / [code] train/experiment.py: ImageNet uses LAMB (b1 0.9, b2 0.999,
eps 1e-6), lr 5e-4 * batch / 256 held flat for 55 epochs and then cosine-
decayed to 0 over 55 more, no warmup, weight decay 0.1 on everything but
biases and normalisation parameters, and global-norm clipping at 10. [P] §4.1
(MLM) uses a linear warmup then cosine. Step decay is the classic ResNet
schedule, kept for comparisons.

Step counting: schedules count *optimiser updates*. With
`grad_accum_steps = k`, `optax.MultiSteps` applies one update every k step-
function calls, so a schedule of S updates spans k * S micro-steps.
"""
import re
from typing import Any, Callable

import jax
import ml_collections
import optax

from perceiver import perceiver

# Leaves that are never decayed: biases ('b') and the parameters of any
# normalisation module (LayerNorm/BatchNorm 'scale' and 'offset').
_BIAS_NAMES = frozenset({'b', 'bias'})
_NORM_MODULE = re.compile(r'(^|/|~)(layer_norm|batchnorm|batch_norm|norm)')
# Learned position embeddings and the latent array (both TrainablePosition-
# Encoding 'pos_embs' in the release's parameter tree).
_POS_NAMES = frozenset({'pos_embs'})


def make_schedule(cfg: ml_collections.ConfigDict, total_updates: int
                  ) -> optax.Schedule:
  """Returns lr(update_count) for config.schedule."""
  base, warmup = cfg.base_lr, cfg.warmup_steps
  if cfg.name == 'flat_cosine':
    decay = cfg.decay_steps or max(total_updates - warmup - cfg.flat_steps, 1)
    main = optax.join_schedules(
        [optax.constant_schedule(base),
         optax.cosine_decay_schedule(base, decay, alpha=cfg.end_lr / base
                                     if base else 0.0)],
        [cfg.flat_steps])
  elif cfg.name == 'warmup_cosine':
    decay = cfg.decay_steps or max(total_updates - warmup, 1)
    main = optax.cosine_decay_schedule(
        base, decay, alpha=cfg.end_lr / base if base else 0.0)
  elif cfg.name == 'step':
    main = optax.piecewise_constant_schedule(
        base, {int(b): cfg.decay_factor for b in cfg.boundaries})
  else:
    raise ValueError(f'Unknown config.schedule.name={cfg.name!r}; use '
                     '"flat_cosine", "warmup_cosine" or "step".')
  if not warmup:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, base, warmup), main], [warmup])


def _path_names(path) -> tuple[str, str]:
  keys = [getattr(k, 'key', getattr(k, 'name', str(k))) for k in path]
  return '/'.join(str(k) for k in keys[:-1]), str(keys[-1])


def decay_mask(params: Any, *, decay_pos_embeddings: bool) -> Any:
  """True where weight decay applies: not biases, not norms, and position
  embeddings only if `decay_pos_embeddings` ([code] decays them)."""
  def keep(path, leaf):
    del leaf
    module, name = _path_names(path)
    if name in _BIAS_NAMES or _NORM_MODULE.search(module):
      return False
    if name in _POS_NAMES:
      return decay_pos_embeddings
    return True
  return jax.tree_util.tree_map_with_path(keep, params)


def scale_by_trust_ratio_per_layer() -> optax.GradientTransformation:
  """`optax.scale_by_trust_ratio` (LAMB's ||param|| / ||update||), with one
  ratio per layer of a scanned stack, as for the release's per-layer leaves.

  A scanned encoder (`config.scan_layers`) holds its L self-attention
  layers as [L, ...] leaves; one norm over a whole leaf would give every
  layer the same ratio, and the fast path would train differently from the
  release-exact path. Other leaves get optax's computation unchanged.
  """
  whole = optax.scale_by_trust_ratio()

  def one(update, param):
    return whole.update(update, optax.EmptyState(), param)[0]

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError('The trust ratio needs params: call '
                       'update(updates, state, params).')

    def scale(path, update, param):
      module, _ = _path_names(path)
      if perceiver.is_stacked_module(module):
        return jax.vmap(one)(update, param)
      return one(update, param)
    return jax.tree_util.tree_map_with_path(scale, updates, params), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def make_optimizer(cfg: ml_collections.ConfigDict, schedule: optax.Schedule
                   ) -> optax.GradientTransformation:
  """config.optimizer -> clip, then LAMB or AdamW, then optional MultiSteps."""
  mask = lambda p: decay_mask(
      p, decay_pos_embeddings=cfg.decay_pos_embeddings)
  if cfg.name == 'lamb':
    # optax.lamb, with the trust ratio taken per layer of a scanned stack.
    opt = optax.chain(
        optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps),
        optax.add_decayed_weights(cfg.weight_decay, mask),
        scale_by_trust_ratio_per_layer(),
        optax.scale_by_learning_rate(schedule))
  elif cfg.name == 'adamw':
    opt = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                      weight_decay=cfg.weight_decay, mask=mask)
  else:
    raise ValueError(f'Unknown config.optimizer.name={cfg.name!r}; use '
                     '"lamb" or "adamw".')
  if cfg.clip_global_norm:
    opt = optax.chain(optax.clip_by_global_norm(cfg.clip_global_norm), opt)
  if cfg.grad_accum_steps > 1:
    opt = optax.MultiSteps(opt, every_k_schedule=cfg.grad_accum_steps)
  return opt


def lr_at(schedule: Callable, step, grad_accum_steps: int):
  """The lr used by the update that micro-step `step` contributes to."""
  return schedule(step // grad_accum_steps)
