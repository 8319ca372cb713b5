"""The training loop: data-parallel, resumable, deterministic.

Shapes: B global batch, B_d per-device batch (B / D), D devices, P processes,
H, W, C image, K classes.

Programming model ([code] jaxline experiment, haiku examples): `train_step`
is per-device code with the axis name 'batch'; gradients, BatchNorm
statistics and metrics are combined with `jax.lax.pmean`. By default the step
runs under `jax.jit(jax.shard_map(...))` over a 1-D device mesh, with the
training state replicated (P()) and the batch split over 'batch'
(P('batch')). `config.parallelism = 'pmap'` runs the very same function
under `jax.pmap` (tests check both give the same parameters).

Determinism: the step key is `fold_in(rng, step)` (then `fold_in(.,
device)` for per-device dropout), the input stream is a pure function of
(seed, step) (perceiver.data.pipeline), so a resumed run repeats an
uninterrupted one bit for bit. DEVIATION from strict device-count
invariance: dropout masks depend on the device index, and BatchNorm (conv
models) normalises with per-device statistics as in the release; models
without dropout/BatchNorm train identically on 1 or many devices.

Tasks: `config.task.module` names a task module by import path (image
classification 'perceiver.tasks.image.task', the language tasks
'perceiver.tasks.language.mlm' and '.glue', ...) that gives the model, the
loss and metrics, the eval sums and the input iterators: the interface of
perceiver/train/task.py. This loop imports nothing task-specific; there is
no registry. Batch entries under `batch[task.SHARED]` are step-wide values
given whole to every device; the rest is split over devices.

Steps: `config.num_train_steps` counts step-function calls (micro-batches of
the global batch). With `optimizer.grad_accum_steps = k` there are
num_train_steps / k optimiser updates and schedules are in those units.
"""
import json
import os
from typing import Any, NamedTuple, Optional, Sequence

from absl import logging
import haiku as hk
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from perceiver import checkpoint_io
from perceiver import mixed_precision
from perceiver.train import checkpoint
from perceiver.train import config_lib
from perceiver.train import distributed
from perceiver.train import metric_writer
from perceiver.train import optim
from perceiver.train import task as task_lib

AXIS = 'batch'  # the data-parallel axis name of every collective


class TrainState(NamedTuple):
  step: jax.Array  # [] int32: step-function calls completed so far
  params: hk.Params  # float32 master weights
  state: hk.State  # Haiku state: BatchNorm moving statistics ({} if none)
  opt_state: optax.OptState  # optimiser (and MultiSteps accumulator) state
  rng: jax.Array  # [2] uint32 base key; step key = fold_in(rng, step)


def task_module(config: ml_collections.ConfigDict):
  """The task of config.task.module (import path): model, loss, metrics,
  data; checked against perceiver/train/task.py."""
  return config_lib.load_task(config)


def precision_scope(config: ml_collections.ConfigDict):
  """What to hold while a model is traced: the mixed-precision policy of
  config.compute_dtype and the kernels of config.fast_kernels
  (perceiver.mixed_precision.trace_scope)."""
  return mixed_precision.trace_scope(config.compute_dtype,
                                     config.get('fast_kernels', False))


def _pmean_floats(tree: Any) -> Any:
  # Integer leaves (e.g. EMA counters) are identical on every device.
  return jax.tree.map(
      lambda x: jax.lax.pmean(x, AXIS) if jnp.issubdtype(x.dtype, jnp.floating)
      else x, tree)


# ---------------------------------------------------------------------------
# Update step and eval step (per-device code).
# ---------------------------------------------------------------------------


def make_train_step(model: hk.TransformedWithState,
                    tx: optax.GradientTransformation, schedule,
                    config: ml_collections.ConfigDict, *, task=None):
  """Returns train_step(ts, batch) -> (ts, metrics) for ONE device.

  `task` is the module of config.task.module, loaded when not given."""
  accum = config.optimizer.grad_accum_steps
  task = task or task_module(config)

  def train_step(ts: TrainState, batch: dict[str, jax.Array]):
    step_key = jax.random.fold_in(ts.rng, ts.step)
    device_key = jax.random.fold_in(step_key, jax.lax.axis_index(AXIS))

    def loss_fn(params):
      with precision_scope(config):
        outputs, new_state = model.apply(params, ts.state, device_key, batch,
                                         is_training=True)
      loss, metrics = task.loss_and_metrics(outputs, batch, config)
      new_state = jax.tree.map(lambda new, old: new.astype(old.dtype),
                               new_state, ts.state)
      return loss, (new_state, metrics)

    # The parameters are replicated (invariant over the axis). Under
    # shard_map, the gradient of an invariant input comes back already
    # summed over the devices (the transpose of the implicit broadcast is a
    # psum), and the pmean below would then leave D times the mean: the
    # gradient of a per-device copy marked as varying is that device's own,
    # so the pmean averages. (Under pmap the cast changes nothing.)
    # tests/train/test_task_interface.py compares the gradients themselves.
    local = jax.lax.pcast(ts.params, AXIS, to='varying')
    grads, (new_state, metrics) = jax.grad(loss_fn, has_aux=True)(local)
    grads = jax.lax.pmean(grads, AXIS)
    new_state = _pmean_floats(new_state)
    metrics = jax.lax.pmean(metrics, AXIS)
    updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
    params = optax.apply_updates(ts.params, updates)
    metrics['grad_norm'] = optax.tree.norm(grads)
    metrics['lr'] = optim.lr_at(schedule, ts.step, accum)
    new_ts = TrainState(step=ts.step + 1, params=params, state=new_state,
                        opt_state=opt_state, rng=ts.rng)
    return new_ts, metrics

  return train_step


def make_eval_step(model: hk.TransformedWithState,
                   config: ml_collections.ConfigDict, *, task=None):
  """Returns eval_step(params, state, batch) -> summed metrics, ONE device."""
  task = task or task_module(config)

  def eval_step(params, state, batch):
    with precision_scope(config):
      outputs, _ = model.apply(params, state, None, batch, is_training=False)
    sums = task.eval_sums(outputs, batch, config)
    return jax.lax.psum(sums, AXIS)

  return eval_step


def _split_shared(batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
  """(entries split over devices, step-wide entries given whole)."""
  split = {k: v for k, v in batch.items() if k != task_lib.SHARED}
  return split, dict(batch.get(task_lib.SHARED, {}))


def _join(split: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
  return dict(split, **{task_lib.SHARED: shared}) if shared else split


class _Runner:
  """Places state and batches and runs the per-device steps, under
  jit(shard_map) or pmap. The canonical state (for checkpoints and init) is
  always a global array replicated over the mesh. Batch entries are split
  over the 'batch' axis, except those under batch[SHARED], which every
  device gets whole."""

  def __init__(self, config, train_step, eval_step,
               devices: Optional[Sequence[jax.Device]]):
    self.mode = config.parallelism
    self.devices = list(devices) if devices else jax.devices()
    self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(AXIS))
    self.local_devices = [d for d in self.devices
                          if d.process_index == jax.process_index()]
    self.pmap_sharding = NamedSharding(
        Mesh(np.asarray(self.local_devices), ('pmap',)), P('pmap'))
    if self.mode == 'shard_map':
      # The batch travels as (split entries, shared entries): in_specs are
      # pytree prefixes, P(AXIS) for every split leaf, P() for shared ones.
      self.train_step = jax.jit(
          jax.shard_map(lambda ts, split, shared: train_step(
              ts, _join(split, shared)), mesh=self.mesh,
                        in_specs=(P(), P(AXIS), P()), out_specs=(P(), P())),
          donate_argnums=0)
      self.eval_step = jax.jit(jax.shard_map(
          lambda params, state, split, shared: eval_step(
              params, state, _join(split, shared)), mesh=self.mesh,
          in_specs=(P(), P(), P(AXIS), P()), out_specs=P()))
    else:
      pmap_devices = None if jax.process_count() > 1 else self.devices
      self.train_step = jax.pmap(train_step, axis_name=AXIS,
                                 devices=pmap_devices, donate_argnums=0)
      self.eval_step = jax.pmap(eval_step, axis_name=AXIS,
                                devices=pmap_devices)

  # Canonical (mesh-replicated) state <-> what the step functions take.
  def to_step(self, ts):
    if self.mode == 'shard_map':
      return ts
    n = len(self.local_devices)

    def replicate(x):
      stacked = np.broadcast_to(np.asarray(x), (n,) + np.shape(x))
      # The new jax.pmap (built on shard_map) takes arrays whose leading
      # axis is split over a 1-D mesh of its devices.
      return jax.device_put(stacked, self.pmap_sharding)
    return jax.tree.map(replicate, jax.device_get(ts))

  def to_canonical(self, ts):
    if self.mode == 'shard_map':
      return ts
    # Device 0's copy of each replicated [D, ...] array.
    host = jax.tree.map(
        lambda x: np.asarray(x.addressable_data(0)).reshape(x.shape[1:]), ts)
    return jax.device_put(host, self.replicated)

  def batch(self, local: dict[str, Any]):
    """This process's batch -> the step's batch argument(s)."""
    split, shared = _split_shared(local)
    if self.mode == 'shard_map':
      split = jax.tree.map(
          lambda x: jax.make_array_from_process_local_data(
              self.batch_sharding, x), split)
      # Identical on every process: each gives the whole array.
      shared = jax.tree.map(
          lambda x: jax.make_array_from_process_local_data(
              self.replicated, np.asarray(x), np.shape(x)), shared)
      return split, shared
    n = len(self.local_devices)
    split = jax.tree.map(lambda x: x.reshape((n, -1) + x.shape[1:]), split)
    shared = jax.tree.map(
        lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), shared)
    return (_join(split, shared),)

  def train(self, ts_step, batch):
    return self.train_step(ts_step, *batch)

  def eval(self, ts_step, batch):
    out = self.eval_step(ts_step.params, ts_step.state, *batch)
    if self.mode == 'shard_map':
      return out
    return jax.tree.map(lambda x: x[0], out)


# ---------------------------------------------------------------------------
# Shared set-up: config checks, model, optimiser, abstract state.
# ---------------------------------------------------------------------------


class _Setup(NamedTuple):
  task: Any  # the module of config.task.module, loaded once
  model: hk.TransformedWithState
  tx: optax.GradientTransformation
  schedule: Any
  init_fn: Any  # rng -> TrainState
  abstract: TrainState  # jax.eval_shape(init_fn), with shardings
  runner: _Runner
  data_dir: Optional[str]


def _setup(config, workdir, devices) -> _Setup:
  runner_devices = list(devices) if devices else jax.devices()
  num_devices = len(runner_devices)
  config_lib.validate(config, num_devices=num_devices)
  batch = config.input.global_batch_size
  task = task_module(config)
  # Data that must be built first (an embedded dataset): process 0 builds,
  # the others then find it built.
  data_dir = None
  if jax.process_index() == 0:
    data_dir = task.prepare_data(config, workdir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('dataset_built')
    if jax.process_index() != 0:
      data_dir = task.prepare_data(config, workdir)

  model = task.make_model(config)
  accum = config.optimizer.grad_accum_steps
  schedule = optim.make_schedule(config.schedule,
                                 max(config.num_train_steps // accum, 1))
  tx = optim.make_optimizer(config.optimizer, schedule)
  per_device = batch // num_devices
  example = task.example_batch(config, per_device)  # host arrays, init only

  def init_fn(rng):
    # The model is initialised with the run's key itself, as the release's
    # `init(jax.random.PRNGKey(seed), ...)`, so that a run seeded like the
    # release starts from the release's weights; the step keys derive from
    # fold_in(rng, 1).
    with precision_scope(config):
      params, state = model.init(rng, jax.tree.map(jnp.asarray, example),
                                 is_training=True)
    return TrainState(step=jnp.zeros([], jnp.int32), params=params,
                      state=state, opt_state=tx.init(params),
                      rng=jax.random.fold_in(rng, 1))

  runner = _Runner(config,
                   make_train_step(model, tx, schedule, config, task=task),
                   make_eval_step(model, config, task=task), runner_devices)
  # Shapes and dtypes before anything is allocated (restore target, init).
  abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(config.seed))
  abstract = jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                     sharding=runner.replicated), abstract)
  return _Setup(task, model, tx, schedule, init_fn, abstract, runner,
                data_dir)


def _evaluate_split(setup: _Setup, config, ts_step, split: str
                    ) -> dict[str, float]:
  batches, _ = setup.task.eval_iterator(
      config, split, data_dir=setup.data_dir,
      process_index=jax.process_index(), process_count=jax.process_count())
  sums = None
  for i, local in enumerate(batches):
    out = setup.runner.eval(ts_step, setup.runner.batch(local))
    sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    if i % 16 == 15:
      jax.block_until_ready(sums)
  return setup.task.finalize_eval(jax.device_get(sums), config)


def _checkpointer(config, workdir, read_only=False):
  return checkpoint.Checkpointer(
      os.path.join(workdir, 'checkpoints'), keep=config.keep_checkpoints,
      best_metric=config.best_metric, best_mode=config.best_mode,
      async_checkpointing=config.async_checkpointing, read_only=read_only)


def _to_checkpoint(ts: TrainState) -> dict[str, Any]:
  return ts._asdict()


def _from_checkpoint(tree: dict[str, Any]) -> TrainState:
  return TrainState(**tree)


# ---------------------------------------------------------------------------
# train_and_evaluate: the one training loop.
# ---------------------------------------------------------------------------


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       devices: Optional[Sequence[jax.Device]] = None,
                       progress: bool = False) -> dict[str, float]:
  """Trains config for config.num_train_steps in workdir; returns the final
  metrics ('eval/...' on eval_split, 'test/...' on test_split).

  Args:
    config: a validated experiment config (experiments/<name>.py).
    workdir: checkpoints/, tensorboard/, metrics.json (and the embedded
      dataset) go here.
    devices: the devices of the data-parallel mesh (default: all). Tests use
      a subset to compare one device with many.
    progress: draw a progress line on stderr (local interactive runs).

  Resuming restores the newest intact checkpoint: a damaged newer step is
  reported (step and reason) and moved to <workdir>/checkpoints_damaged/
  (perceiver.train.checkpoint.Checkpointer.restore_latest_intact). A config
  whose model differs from the checkpoint's fails, naming every entry.
  On any error, a save in flight is finished and Orbax is shut down before
  the error propagates, so that it is the last thing printed. In a
  multi-process run each process first logs which processes are lost and
  the last checkpoint (perceiver.train.distributed.report_stopped); a lost
  process ends the job within the heartbeat timeout of jax.distributed.
  """
  setup = _setup(config, workdir, devices)
  ckpt = _checkpointer(config, workdir)
  writer = metric_writer.MetricWriter(
      os.path.join(workdir, 'tensorboard'),
      enabled=jax.process_index() == 0, total_steps=config.num_train_steps,
      progress=progress)
  try:
    return _train(config, workdir, setup, ckpt, writer)
  except BaseException as e:
    if jax.process_count() > 1:
      # First, while nothing waits on the other processes: which of them
      # are lost, and the last checkpoint (the job ends; see distributed).
      _report_quietly(e, ckpt.directory)
    # Left running, Orbax's background save fails at interpreter exit with
    # dozens of "Event loop is closed" tracebacks after the real error.
    _close_quietly(ckpt, writer)
    raise


def _report_quietly(error: BaseException, directory: str) -> None:
  try:
    distributed.report_stopped(error, directory)
  except Exception as e:  # pylint: disable=broad-exception-caught
    logging.warning('While reporting the stop: %s: %s', type(e).__name__, e)


def _close_quietly(ckpt: checkpoint.Checkpointer,
                   writer: metric_writer.MetricWriter) -> None:
  """Closes both after an error, logging (not raising) their own errors."""
  for close in (ckpt.close, writer.close):
    try:
      close()
    except Exception as e:  # pylint: disable=broad-exception-caught
      logging.warning('While stopping after an error: %s: %s',
                      type(e).__name__, e)


def _train(config, workdir, setup: _Setup, ckpt: checkpoint.Checkpointer,
           writer: metric_writer.MetricWriter) -> dict[str, float]:
  """The body of train_and_evaluate; closes ckpt and writer when done."""
  runner = setup.runner
  total_steps = config.num_train_steps
  ts = _initial_state(config, setup, ckpt, writer)
  start_step = int(jax.device_get(ts.step))
  num_params = hk.data_structures.tree_size(setup.abstract.params)
  writer.log(f'{num_params:,} parameters; training steps {start_step}..'
             f'{total_steps} on {len(runner.devices)} devices '
             f'({config.parallelism}), {jax.process_count()} processes.')

  # ---- Input pipeline ---------------------------------------------------
  train_iter = setup.task.train_iterator(
      config, data_dir=setup.data_dir, seed=config.seed,
      start_step=start_step, process_index=jax.process_index(),
      process_count=jax.process_count())

  # ---- Train loop -------------------------------------------------------
  ts_step = runner.to_step(ts)
  del ts
  timer = metric_writer.Timer(start_step, total_steps)
  pending: list[Any] = []  # device metrics not fetched yet
  pending_from = start_step + 1
  eval_metrics: dict[str, float] = {}
  for step in range(start_step + 1, total_steps + 1):
    ts_step, metrics = runner.train(ts_step, runner.batch(next(train_iter)))
    pending.append(metrics)
    last = step == total_steps
    do_eval = last or (config.eval_every and step % config.eval_every == 0)
    do_ckpt = (last or do_eval or
               (config.checkpoint_every and step % config.checkpoint_every == 0))
    if step % config.log_every and not do_ckpt:
      continue
    # Fetch the metrics of steps pending_from..step in one transfer: every
    # log_every steps, and before a checkpoint so that a non-finite loss is
    # caught before its state could be saved.
    _log_train_metrics(config, ckpt, writer, timer, pending, pending_from,
                       step)
    pending, pending_from = [], step + 1
    if do_eval and config.input.eval_split:
      result = _evaluate_split(setup, config, ts_step, config.input.eval_split)
      eval_metrics = {f'eval/{k}': v for k, v in result.items()}
      writer.log(f'step {step}: ' + ', '.join(
          f'{k} {v:.4f}' for k, v in eval_metrics.items()))
      writer.write_scalars(step, eval_metrics)
    if do_ckpt:
      if jax.process_count() > 1:
        # Every process says where a relaunch would resume: a process that
        # the coordination service ends (a lost peer while it waits in a
        # checkpoint barrier) may not reach report_stopped.
        last = distributed.last_checkpoint(ckpt.directory)
        logging.info('Saving step %d; last checkpoint: %s.', step,
                     f'step {last[0]} at {last[1]}' if last else 'none yet')
      metrics_for_best = (
          {config.best_metric: eval_metrics[config.best_metric]}
          if do_eval and config.best_metric in eval_metrics else None)
      ckpt.save(step, _to_checkpoint(runner.to_canonical(ts_step)),
                metrics=metrics_for_best)
    timer.lap(step, 0)  # do not count eval/checkpoint time as training

  ckpt.wait()
  final = _final_evals(config, workdir, setup, writer, ts_step, eval_metrics)
  writer.close()
  ckpt.close()
  return final


def _initial_state(config, setup: _Setup, ckpt: checkpoint.Checkpointer,
                   writer: metric_writer.MetricWriter) -> TrainState:
  """The state the run starts from. Resume order:
    1. the newest intact checkpoint in this workdir (a restarted or
       preempted run; damaged newer steps are moved aside, with a warning);
    2. config.init_from (our checkpoint or a release pickle; a parameter
       subset and a rename map for fine-tuning), at step 0;
    3. from scratch, seeded by config.seed.
  """
  runner = setup.runner
  latest, tree = ckpt.restore_latest_intact(
      _to_checkpoint(setup.abstract),
      warn=logging.warning if jax.process_index() == 0 else lambda m: None)
  if latest is not None:
    writer.log(f'Resumed from {ckpt.directory}/{latest}.')
    return _from_checkpoint(tree)
  init = jax.jit(setup.init_fn, out_shardings=runner.replicated)
  ts = init(jax.random.PRNGKey(config.seed))
  if not config.init_from.path:
    return ts
  params, state, message = checkpoint.warm_start(
      jax.device_get(ts.params), jax.device_get(ts.state),
      config.init_from.path, include=tuple(config.init_from.include),
      rename=tuple(tuple(r) for r in config.init_from.rename))
  writer.log(message)
  return ts._replace(
      params=jax.device_put(params, runner.replicated),
      state=jax.device_put(state, runner.replicated),
      opt_state=jax.jit(setup.tx.init, out_shardings=runner.replicated)(
          params))


def _log_train_metrics(config, ckpt: checkpoint.Checkpointer,
                       writer: metric_writer.MetricWriter,
                       timer: metric_writer.Timer, pending: list[Any],
                       first: int, step: int) -> None:
  """Fetches the metrics of steps first..step in one transfer, stops on a
  non-finite loss (naming the step and the last good checkpoint), and logs
  their means."""
  fetched = jax.device_get(pending)
  if config.parallelism == 'pmap':
    fetched = jax.tree.map(lambda x: x[0], fetched)
  losses = np.asarray([m['loss'] for m in fetched], np.float64)
  if not np.all(np.isfinite(losses)):
    bad = first + int(np.argmax(~np.isfinite(losses)))
    ckpt.wait()
    good = ckpt.latest_step()
    where = (f'the last good checkpoint is step {good} in '
             f'{ckpt.directory}' if good is not None else
             'no checkpoint was saved before it')
    raise FloatingPointError(
        f'Non-finite loss ({losses[bad - first]}) at step {bad}, '
        f'first bad step in steps {first}-{step}. Training stopped; '
        f'{where}. Lower config.schedule.base_lr or set '
        'config.optimizer.clip_global_norm.')
  scalars = {f'train/{k}': float(np.mean([m[k] for m in fetched]))
             for k in fetched[0] if k != 'lr'}  # the task's + grad_norm
  scalars['train/lr'] = float(fetched[-1]['lr'])
  scalars.update(timer.lap(step, config.input.global_batch_size))
  writer.log_train(step, scalars)
  writer.write_scalars(step, {k: v for k, v in scalars.items()
                              if k != 'eta_seconds'})


def _final_evals(config, workdir, setup: _Setup,
                 writer: metric_writer.MetricWriter, ts_step,
                 eval_metrics: dict[str, float]) -> dict[str, float]:
  """The last eval's metrics plus the test split's; written (by process 0)
  to <workdir>/metrics.json."""
  final = dict(eval_metrics)
  if config.input.test_split:
    result = _evaluate_split(setup, config, ts_step, config.input.test_split)
    final.update({f'test/{k}': v for k, v in result.items()})
    writer.log('test: ' + ', '.join(f'{k} {v:.4f}' for k, v in
                                     final.items() if k.startswith('test/')))
    writer.write_scalars(config.num_train_steps,
                         {k: v for k, v in final.items()
                          if k.startswith('test/')})
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'metrics.json'), 'w') as f:
      json.dump(final, f, indent=2, sort_keys=True)
  return final


def restore_state(config: ml_collections.ConfigDict, workdir: str, *,
                  step: str = 'latest',
                  devices: Optional[Sequence[jax.Device]] = None
                  ) -> tuple[TrainState, int]:
  """The TrainState of a checkpoint of the run in `workdir`."""
  ts, which, _ = _restore(config, workdir, step, devices)
  return ts, which


def _restore(config, workdir, step, devices):
  """(TrainState, step, setup): the step is resolved before the model is
  built, so that a wrong --step or workdir fails at once."""
  with _checkpointer(config, workdir, read_only=True) as ckpt:
    which = checkpoint.resolve_step(ckpt, step)
    setup = _setup(config, workdir, devices)
    ts = _from_checkpoint(ckpt.restore(which, _to_checkpoint(setup.abstract)))
  return ts, which, setup


def evaluate(config: ml_collections.ConfigDict, workdir: str, *,
             step: str = 'latest', split: str = '',
             devices: Optional[Sequence[jax.Device]] = None
             ) -> dict[str, float]:
  """Evaluates a checkpoint ('latest', 'best' or a step number) of the run in
  `workdir` on `split` (default config.input.test_split)."""
  ts, which, setup = _restore(config, workdir, step, devices)
  split = split or config.input.test_split or config.input.eval_split
  result = _evaluate_split(setup, config, setup.runner.to_step(ts), split)
  result['step'] = which
  logging.info('%s step %d on %s: %s', workdir, which, split, result)
  return result


def export(config: ml_collections.ConfigDict, workdir: str, output: str, *,
           step: str = 'latest') -> str:
  """Writes a checkpoint's params (and Haiku state) in the release's pickle
  format: `.pickle` (params only) or `.pystate` ({'params', 'state'})."""
  checkpoint_io.check_extension(output)
  params, state = checkpoint.read_params(
      os.path.join(workdir, 'checkpoints'), step=step, layout='release',
      best_metric=config.best_metric, best_mode=config.best_mode)
  if output.endswith('.pickle') and state:
    raise ValueError(
        f'{output}: this model has Haiku state (BatchNorm statistics) that a '
        '.pickle cannot hold; export to a .pystate file instead.')
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    checkpoint_io.save_params(output, params, state or None)
  return output
