"""The entity-set task (the StarCraft II stand-in): the trainer's interface.

Shapes: B per-device batch (inside the step), B_p per-process batch,
M entity slots, F features per entity.

[P] §4.4 / App. B train AlphaStar by behavioural cloning on human replays
and report the Elite-bot win rate (Table 9). Neither the replays nor the
game exist here; this task trains the same entity encoders on
perceiver.tasks.entities.battle, whose labels need relations between
entities:
  * pointer: for every self/enemy unit, the slot of the enemy it should
    attack (softmax cross-entropy over the M slots, real targets only);
  * win: whether self wins a deterministic combat simulation (sigmoid
    cross-entropy on one logit).
loss = pointer_weight * pointer loss + win_weight * win loss.

Data: generated on the fly with numpy, never stored. Global training
batch t (1-based) is examples (t-1)*B .. t*B-1 of the training stream of
`config.seed`; process p of P generates only its B/P of them, so the
global batch is the same for any process count and a resumed run sees the
very batches of an uninterrupted one. A background thread generates up to
`config.input.prefetch_batches` batches ahead. The held-out splits
'validation' and 'test' are fixed sets of `num_eval_examples` scenes each
(battle.EVAL_SEED, independent of config.seed), generated once per process.
"""
import functools
from typing import Any, Iterator, Mapping, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from perceiver.tasks import common
from perceiver.tasks.entities import battle
from perceiver.tasks.entities import models

EVAL_STREAMS = {'validation': battle.EVAL_STREAM, 'test': battle.EVAL_STREAM + 1}
_RULES = {'in_range': battle.RULE_IN_RANGE, 'nearest': battle.RULE_NEAREST}


# --- Configuration -------------------------------------------------------


def default_task_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      pointer_weight=1.0,  # weight of the pointer cross-entropy
      win_weight=1.0,  # weight of the win-prediction cross-entropy
  ))


def default_input_config(config: Optional[ml_collections.ConfigDict] = None
                         ) -> ml_collections.ConfigDict:
  del config
  return ml_collections.ConfigDict(dict(
      max_entities=512,  # M: entity slots (AlphaStar's 512)
      min_entities=16,  # scenes hold U{min..max} entities
      num_eval_examples=512,  # scenes in each held-out split
      prefetch_batches=2,  # training batches generated ahead (a thread)
  ))


# --- Model, loss and metrics ---------------------------------------------


def make_model(config: ml_collections.ConfigDict) -> hk.TransformedWithState:
  """The encoder of config.model.encoder with the pointer and win heads."""
  kwargs = common.with_layer_switches(config.model.encoder_kwargs, config)
  return hk.transform_with_state(
      models.make_forward(config.model.encoder, kwargs))


def example_batch(config: ml_collections.ConfigDict, batch_size: int
                  ) -> dict[str, np.ndarray]:
  """Host arrays of one per-device training batch's shapes (for init)."""
  m = config.input.max_entities
  return {'entities': np.zeros((batch_size, m, battle.NUM_FEATURES),
                               np.float32),
          'entity_mask': np.ones((batch_size, m), bool),
          'target': np.zeros((batch_size, m), np.int32),
          'rule': np.zeros((batch_size, m), np.int32),
          'win': np.zeros((batch_size,), np.int32)}


def _pointer_terms(logits: jax.Array,  # [B, M, M]
                   target: jax.Array,  # [B, M], -1: no target
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(nll [B, M], correct [B, M], has_target [B, M]) as float32."""
  logits = logits.astype(jnp.float32)
  has_target = target >= 0
  safe = jnp.maximum(target, 0)
  picked = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
  nll = jax.nn.logsumexp(logits, axis=-1) - picked
  correct = jnp.argmax(logits, axis=-1) == safe
  valid = has_target.astype(jnp.float32)
  return nll * valid, correct * valid, valid


def _win_terms(logits: jax.Array, win: jax.Array  # [B], [B]
               ) -> tuple[jax.Array, jax.Array]:
  """(nll [B], correct [B]) as float32."""
  logits = logits.astype(jnp.float32)
  labels = win.astype(jnp.float32)
  nll = optax.sigmoid_binary_cross_entropy(logits, labels)
  correct = ((logits > 0) == (win > 0)).astype(jnp.float32)
  return nll, correct


def loss_and_metrics(outputs: Mapping[str, jax.Array],
                     batch: Mapping[str, jax.Array],
                     config: ml_collections.ConfigDict
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The weighted loss and per-device means."""
  nll, correct, valid = _pointer_terms(outputs['pointer_logits'],
                                       batch['target'])
  count = jnp.maximum(jnp.sum(valid), 1.0)
  pointer_loss = jnp.sum(nll) / count
  win_nll, win_correct = _win_terms(outputs['win_logits'], batch['win'])
  win_loss = jnp.mean(win_nll)
  loss = (config.task.pointer_weight * pointer_loss +
          config.task.win_weight * win_loss)
  return loss, {'loss': loss, 'pointer_loss': pointer_loss,
                'win_loss': win_loss,
                'pointer_accuracy': jnp.sum(correct) / count,
                'win_accuracy': jnp.mean(win_correct)}


def eval_sums(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array],
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Sums over the real examples of the batch (batch['mask'] [B])."""
  del config
  example = batch['mask'].astype(jnp.float32)  # [B]
  nll, correct, valid = _pointer_terms(outputs['pointer_logits'],
                                       batch['target'])
  valid = valid * example[:, None]
  sums = {'pointer_nll': jnp.sum(nll * valid),
          'pointer_correct': jnp.sum(correct * valid),
          'pointer_count': jnp.sum(valid)}
  for name, rule in _RULES.items():
    of_rule = valid * (batch['rule'] == rule)
    sums[f'pointer_correct_{name}'] = jnp.sum(correct * of_rule)
    sums[f'pointer_count_{name}'] = jnp.sum(of_rule)
  win_nll, win_correct = _win_terms(outputs['win_logits'], batch['win'])
  sums.update(win_nll=jnp.sum(win_nll * example),
              win_correct=jnp.sum(win_correct * example),
              count=jnp.sum(example))
  return sums


def finalize_eval(sums: Mapping[str, Any],
                  config: ml_collections.ConfigDict) -> dict[str, float]:
  """Accuracies and losses over the whole split."""
  def ratio(a, b):
    return float(sums[a]) / max(float(sums[b]), 1.0)
  pointer_loss = ratio('pointer_nll', 'pointer_count')
  win_loss = ratio('win_nll', 'count')
  out = {'pointer_accuracy': ratio('pointer_correct', 'pointer_count'),
         'win_accuracy': ratio('win_correct', 'count'),
         'pointer_loss': pointer_loss, 'win_loss': win_loss,
         'loss': (config.task.pointer_weight * pointer_loss +
                  config.task.win_weight * win_loss),
         'num_examples': float(sums['count'])}
  for name in _RULES:
    out[f'pointer_accuracy_{name}'] = ratio(f'pointer_correct_{name}',
                                            f'pointer_count_{name}')
  return out


# --- Input ---------------------------------------------------------------


def prepare_data(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Nothing to build: scenes are generated on the fly."""
  del config, workdir
  return None


def train_iterator(config: ml_collections.ConfigDict, *,
                   data_dir: Optional[str], seed: int, start_step: int,
                   process_index: int, process_count: int
                   ) -> Iterator[dict[str, np.ndarray]]:
  """This process's batches for steps start_step + 1, ...: a pure function
  of (seed, step)."""
  del data_dir
  cfg = config.input
  make = functools.partial(battle.batch, seed, battle.TRAIN_STREAM,
                           min_entities=cfg.min_entities,
                           max_entities=cfg.max_entities)
  return common.generated_train_batches(
      lambda step, indices: make(indices),
      global_batch=cfg.global_batch_size, start_step=start_step,
      process_index=process_index, process_count=process_count,
      depth=max(int(cfg.prefetch_batches), 0))


@functools.lru_cache(maxsize=4)
def held_out(split: str, num_examples: int, min_entities: int,
             max_entities: int) -> dict[str, np.ndarray]:
  """The fixed held-out split (independent of config.seed), all of it."""
  if split not in EVAL_STREAMS:
    raise ValueError(f'Unknown split {split!r} of the entity task; use one '
                     f'of {sorted(EVAL_STREAMS)}.')
  return battle.batch(battle.EVAL_SEED, EVAL_STREAMS[split],
                      range(num_examples), min_entities=min_entities,
                      max_entities=max_entities)


def eval_iterator(config: ml_collections.ConfigDict, split: str, *,
                  data_dir: Optional[str], process_index: int,
                  process_count: int
                  ) -> tuple[list[dict[str, np.ndarray]], int]:
  """(batches with 'mask', number of batches) of the whole split; the last
  global batch is padded with masked copies of example 0."""
  del data_dir
  cfg = config.input
  data = held_out(split, cfg.num_eval_examples, cfg.min_entities,
                  cfg.max_entities)
  global_batch = cfg.eval_batch_size
  lo, hi = common.process_slice(global_batch, process_index, process_count,
                                'eval_batch_size')
  n = cfg.num_eval_examples
  num_batches = common.num_eval_batches(n, global_batch)
  batches = []
  for b in range(num_batches):
    index, real = common.eval_rows(b, n, global_batch, lo, hi)
    local = {k: v[index] for k, v in data.items()}
    local['mask'] = real.astype(np.int32)
    batches.append(local)
  return batches, num_batches
