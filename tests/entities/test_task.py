"""The entity task's functions: loss and metrics on hand-made logits, eval
sums with padding, and the input streams (exact resume, any process count,
a fixed held-out set)."""
import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from perceiver.tasks.entities import battle
from perceiver.tasks.entities import models
from perceiver.tasks.entities import task


def _config(**input_overrides):
  c = ml_collections.ConfigDict()
  c.task = task.default_task_config()
  c.input = task.default_input_config()
  c.input.global_batch_size = 4
  c.input.eval_batch_size = 4
  c.input.max_entities = 24
  c.input.num_eval_examples = 6
  c.input.update(input_overrides)
  return c


def _outputs(pointer_logits, win_logits):
  return {'pointer_logits': jnp.asarray(pointer_logits, jnp.float32),
          'win_logits': jnp.asarray(win_logits, jnp.float32)}


def _loss(outputs, batch, config):
  # One compiled program instead of dozens of eagerly dispatched ops.
  return jax.jit(functools.partial(task.loss_and_metrics, config=config))(
      outputs, batch)


def test_loss_and_metrics_on_hand_made_logits():
  # 1 scene, 4 slots (slot 3 masked): targets 1, 2, none, none.
  mask = np.array([[1, 1, 1, 0]], bool)
  target = np.array([[1, 2, -1, -1]])
  logits = np.zeros((1, 4, 4))
  logits[0, 0, 1] = 5.0  # right
  logits[0, 1, 0] = 5.0  # wrong
  logits = np.where(mask[:, None, :], logits, models.MASKED_LOGIT)
  batch = {'target': target, 'win': np.array([1]), 'entity_mask': mask}
  loss, metrics = _loss(_outputs(logits, [2.0]), batch, _config())
  lse = math.log(math.exp(5.0) + 2)  # over the 3 real slots
  assert metrics['pointer_loss'] == pytest.approx(((lse - 5) + lse) / 2,
                                                  rel=1e-5)
  assert metrics['pointer_accuracy'] == pytest.approx(0.5)
  assert metrics['win_loss'] == pytest.approx(math.log1p(math.exp(-2.0)),
                                              rel=1e-5)
  assert metrics['win_accuracy'] == 1.0
  assert loss == pytest.approx(metrics['pointer_loss'] + metrics['win_loss'])
  config = _config()
  config.task.win_weight = 0.0
  loss, _ = _loss(_outputs(logits, [2.0]), batch, config)
  assert loss == pytest.approx(metrics['pointer_loss'])


def test_eval_sums_ignore_padding_examples_and_split_by_rule():
  target = np.array([[1, 0], [1, 0]])
  rule = np.array([[battle.RULE_IN_RANGE, battle.RULE_NEAREST]] * 2)
  logits = np.array([[[0., 9.], [9., 0.]],  # both right
                     [[9., 0.], [0., 9.]]])  # both wrong, but padding
  batch = {'target': target, 'rule': rule, 'win': np.array([0, 1]),
           'mask': np.array([1, 0])}
  sums = jax.jit(functools.partial(task.eval_sums, config=_config()))(
      _outputs(logits, [-3.0, -3.0]), batch)
  result = task.finalize_eval({k: np.asarray(v) for k, v in sums.items()},
                              _config())
  assert result['num_examples'] == 1
  assert result['pointer_accuracy'] == 1.0
  assert result['pointer_accuracy_in_range'] == 1.0
  assert result['pointer_accuracy_nearest'] == 1.0
  assert result['win_accuracy'] == 1.0


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_train_stream_resumes_exactly_on_any_process_count():
  config = _config()
  kwargs = dict(data_dir=None, seed=3)
  whole = _take(task.train_iterator(config, start_step=0, process_index=0,
                                    process_count=1, **kwargs), 3)
  resumed = next(task.train_iterator(config, start_step=2, process_index=0,
                                     process_count=1, **kwargs))
  halves = [next(task.train_iterator(config, start_step=2, process_index=p,
                                     process_count=2, **kwargs))
            for p in (0, 1)]
  config.input.prefetch_batches = 0  # the unthreaded path agrees
  plain = _take(task.train_iterator(config, start_step=0, process_index=0,
                                    process_count=1, **kwargs), 3)
  for key in whole[2]:
    np.testing.assert_array_equal(resumed[key], whole[2][key])
    np.testing.assert_array_equal(
        np.concatenate([h[key] for h in halves]), whole[2][key])
    np.testing.assert_array_equal(plain[2][key], whole[2][key])
  assert whole[2]['entities'].shape == (4, 24, battle.NUM_FEATURES)
  assert not np.array_equal(whole[0]['entities'], whole[1]['entities'])
  with pytest.raises(ValueError, match='does not divide'):
    next(task.train_iterator(config, start_step=0, process_index=0,
                             process_count=3, **kwargs))


def test_held_out_splits_are_fixed_padded_and_distinct():
  config = _config()
  batches, num = task.eval_iterator(config, 'validation', data_dir=None,
                                    process_index=0, process_count=1)
  assert num == len(batches) == 2  # 6 examples in batches of 4
  assert [b['mask'].tolist() for b in batches] == [[1, 1, 1, 1], [1, 1, 0, 0]]
  halves = [task.eval_iterator(config, 'validation', data_dir=None,
                               process_index=p, process_count=2)[0]
            for p in (0, 1)]
  for i, b in enumerate(batches):
    np.testing.assert_array_equal(
        np.concatenate([h[i]['entities'] for h in halves]), b['entities'])
  test = task.eval_iterator(config, 'test', data_dir=None, process_index=0,
                            process_count=1)[0]
  assert not np.array_equal(test[0]['entities'], batches[0]['entities'])
  # The held-out set is the fixed-seed stream, whatever config.seed is.
  first = battle.example(battle.EVAL_SEED, battle.EVAL_STREAM, 0,
                         min_entities=16, max_entities=24)
  np.testing.assert_array_equal(batches[0]['entities'][0], first['entities'])
  with pytest.raises(ValueError, match="Unknown split 'train'"):
    task.eval_iterator(config, 'train', data_dir=None, process_index=0,
                       process_count=1)


def test_example_batch_matches_the_stream():
  config = _config()
  real = next(task.train_iterator(config, data_dir=None, seed=0, start_step=0,
                                  process_index=0, process_count=1))
  fake = task.example_batch(config, 4)
  assert {k: (v.shape, v.dtype) for k, v in fake.items()} == {
      k: (v.shape, v.dtype) for k, v in real.items()}
