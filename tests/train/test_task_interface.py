"""The task interface (perceiver/train/task.py), with a toy task defined here.

The toy task is a small linear regression y = x . w + offset, where `offset`
is one value per step shared by every example: a step-wide input fed through
batch[SHARED], never split over devices. Its metric, the mean squared error,
is lower-is-better (best_mode 'min'). It runs through the real loop
(train_and_evaluate) on 1 and 4 devices, with real Orbax checkpoints.

Shapes: B batch, F features.
"""
import itertools
import logging
import os
import re

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from perceiver.train import checkpoint
from perceiver.train import config_lib
from perceiver.train import task as task_lib
from perceiver.train import trainer

F = 4  # features
TRUE_W = np.asarray([1.0, -2.0, 0.5, 3.0], np.float32)
EVAL_EXAMPLES = 24


# --- The toy task: every function of the interface ---------------------------


def default_task_config():
  return ml_collections.ConfigDict(dict(noise=0.0))  # target noise std


def default_input_config(config):
  del config
  return ml_collections.ConfigDict(dict(num_features=F))


def make_model(config):
  del config

  def forward(batch, *, is_training):
    del is_training
    offset = batch[task_lib.SHARED]['offset']  # [1], the same everywhere
    pred = hk.Linear(1, name='regressor')(batch['x'])[:, 0] + offset[0]
    return pred, offset  # [B], [1]

  return hk.transform_with_state(forward)


def example_batch(config, batch_size):
  return {'x': np.zeros((batch_size, config.input.num_features), np.float32),
          'y': np.zeros((batch_size,), np.float32),
          task_lib.SHARED: {'offset': np.zeros((1,), np.float32)}}


def loss_and_metrics(outputs, batch, config):
  del config
  pred, offset = outputs
  mse = jnp.mean(jnp.square(pred - batch['y']))
  # 0 when every device got the same step-wide value.
  spread = (jax.lax.pmax(offset[0], trainer.AXIS) -
            jax.lax.pmin(offset[0], trainer.AXIS))
  return mse, {'loss': mse, 'mse': mse, 'shared_spread': spread,
               'offset': offset[0]}


def eval_sums(outputs, batch, config):
  del config
  pred, _ = outputs
  return {'se': jnp.sum(jnp.square(pred - batch['y']) * batch['mask']),
          'count': jnp.sum(batch['mask'])}


def finalize_eval(sums, config):
  del config
  return {'mse': float(sums['se']) / max(float(sums['count']), 1.0)}


def prepare_data(config, workdir):
  del config, workdir
  return None  # generated on the fly


def step_offset(seed, step):
  """The shared input of `step`: a pure function of (seed, step)."""
  return np.float32(np.random.default_rng([seed, step, 1]).normal())


def _examples(rng, n, noise, offset):
  x = rng.normal(size=(n, F)).astype(np.float32)
  y = x @ TRUE_W + offset + noise * rng.normal(size=n)
  return x, y.astype(np.float32)


def train_iterator(config, *, data_dir, seed, start_step, process_index,
                   process_count):
  del data_dir
  batch = config.input.global_batch_size
  local = batch // process_count
  for step in itertools.count(start_step + 1):
    offset = step_offset(seed, step)
    x, y = _examples(np.random.default_rng([seed, step]), batch,
                     config.task.noise, offset)
    part = slice(process_index * local, (process_index + 1) * local)
    yield {'x': x[part], 'y': y[part],
           task_lib.SHARED: {'offset': np.asarray([offset])}}


def eval_iterator(config, split, *, data_dir, process_index, process_count):
  del split, data_dir
  x, y = _examples(np.random.default_rng(1234), EVAL_EXAMPLES, 0.0, 0.0)
  local = config.input.eval_batch_size // process_count
  per_process = np.array_split(np.arange(EVAL_EXAMPLES), process_count)
  num_batches = -(-max(len(p) for p in per_process) // local)
  idx = per_process[process_index]
  batches = []
  for b in range(num_batches):
    take = idx[b * local:(b + 1) * local]
    pad = local - len(take)
    batches.append({
        'x': np.concatenate([x[take], np.zeros((pad, F), np.float32)]),
        'y': np.concatenate([y[take], np.zeros((pad,), np.float32)]),
        'mask': np.concatenate([np.ones(len(take)), np.zeros(pad)]).astype(
            np.float32),
        task_lib.SHARED: {'offset': np.zeros((1,), np.float32)}})
  return batches, num_batches


# --- The tests ------------------------------------------------------------------


def _config(**overrides):
  c = config_lib.add_task_defaults(config_lib.base_config(__name__))
  c.input.global_batch_size = 8
  c.input.eval_batch_size = 8
  c.input.test_split = ''
  c.num_train_steps = 12
  c.log_every = 2
  c.eval_every = 2
  c.checkpoint_every = 0
  c.keep_checkpoints = 1
  c.best_metric = 'eval/mse'
  c.best_mode = 'min'
  c.async_checkpointing = False
  c.optimizer.name = 'adamw'
  # The rate jumps 20-fold after step 8: the eval error falls, then rises
  # as the updates overshoot, so the best step is not the last.
  c.schedule.name = 'step'
  c.schedule.base_lr = 0.5
  c.schedule.boundaries = (8,)
  c.schedule.decay_factor = 20.0
  c.update_from_flattened_dict(overrides)
  return c


def _eval_history(text):
  return {int(m.group(1)): float(m.group(2)) for m in re.finditer(
      r'step (\d+): eval/mse ([0-9.e+-]+)', text)}


def test_toy_module_satisfies_the_interface():
  import sys  # pylint: disable=g-import-not-at-top
  module = sys.modules[__name__]
  assert isinstance(module, task_lib.Task)
  task_lib.check(module)
  with pytest.raises(TypeError, match='lacks .*make_model'):
    task_lib.check(ml_collections.ConfigDict(dict(default_task_config=1)))


@pytest.mark.parametrize('num_devices', [1, 4])
def test_toy_task_trains_through_the_loop(num_devices, tmp_path, caplog):
  caplog.set_level(logging.INFO)
  config = _config()
  workdir = str(tmp_path / 'run')
  final = trainer.train_and_evaluate(config, workdir,
                                     devices=jax.devices()[:num_devices])

  # The progress lines show the task's own metrics by name.
  lines = [l for l in caplog.text.splitlines() if 'step 2/12' in l]
  assert lines and ' mse ' in lines[0] and 'shared_spread' in lines[0]

  # The step-wide input reached every device whole and unchanged.
  spreads = [float(v) for v in re.findall(r'shared_spread (\S+) \|',
                                          caplog.text)]
  assert spreads and all(s == 0.0 for s in spreads)
  offsets = [float(v) for v in re.findall(r'\| offset (\S+) \|', caplog.text)]
  # Logged every 2 steps: the mean of the two steps' shared values.
  expected = [np.mean([step_offset(0, s - 1), step_offset(0, s)])
              for s in range(2, 13, 2)]
  np.testing.assert_allclose(offsets, expected, rtol=1e-3, atol=1e-4)

  # The best checkpoint is the lowest eval/mse, and it is kept besides the
  # latest (keep_checkpoints=1).
  history = _eval_history(caplog.text)
  assert sorted(history) == [2, 4, 6, 8, 10, 12]
  best = min(history, key=history.get)
  assert best != 12, f'the schedule must overshoot: {history}'
  assert max(history, key=history.get) != best
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                 best_metric='eval/mse', best_mode='min',
                                 read_only=True)
  assert ckpt.best_step() == best
  assert sorted(ckpt.all_steps()) == sorted({best, 12})
  ckpt.close()
  assert final['eval/mse'] == pytest.approx(history[12], rel=1e-3)
  result = trainer.evaluate(config, workdir, step='best',
                            devices=jax.devices()[:1], split='validation')
  assert result['step'] == best
  assert result['mse'] == pytest.approx(history[best], rel=1e-4)


def test_one_device_equals_four_devices_with_shared_inputs(tmp_path):
  config = _config(num_train_steps=4, eval_every=0)
  runs = {}
  for n in (1, 4):
    workdir = str(tmp_path / str(n))
    trainer.train_and_evaluate(config, workdir, devices=jax.devices()[:n])
    ts, _ = trainer.restore_state(config, workdir, devices=jax.devices()[:1])
    runs[n] = jax.device_get(ts.params)
  for a, b in zip(jax.tree.leaves(runs[1]), jax.tree.leaves(runs[4])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('parallelism', ['shard_map', 'pmap'])
def test_gradients_are_the_mean_over_devices(parallelism, tmp_path):
  """The gradient of the global batch does not depend on the device count.

  Adam-like updates hide a gradient scaled by the device count (their
  m / sqrt(v) cancels it), but clipping and eps do not; so the gradients
  themselves are compared: after step 1 of 2 accumulated micro-steps, the
  optimiser state holds micro-step 1's gradient."""
  config = _config(num_train_steps=1, eval_every=0, parallelism=parallelism)
  config.optimizer.grad_accum_steps = 2
  grads = {}
  for n in (1, 4):
    workdir = str(tmp_path / str(n))
    trainer.train_and_evaluate(config, workdir, devices=jax.devices()[:n])
    ts, _ = trainer.restore_state(config, workdir, devices=jax.devices()[:1])
    grads[n] = jax.device_get(ts.opt_state.acc_grads)
  leaves = jax.tree.leaves(grads[1])
  assert max(float(np.abs(g).max()) for g in leaves) > 1e-3  # not vacuous
  for a, b in zip(leaves, jax.tree.leaves(grads[4])):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_unknown_task_option_is_rejected():
  config = _config()
  config.task.nosie = 0.1
  with pytest.raises(ValueError, match='config.task.nosie.*config.task.noise'):
    config_lib.validate(config)
