"""Orbax checkpoints for training runs, and initialisation for fine-tuning.

Layout: <workdir>/checkpoints/<step>/... written by one
`orbax.checkpoint.CheckpointManager`:
  * async: the save runs in a background thread while training continues;
  * atomic: Orbax writes to `<step>.orbax-checkpoint-tmp-*` and renames it
    when every file is written; an interrupted save leaves only the tmp
    directory, which is never listed as a step and is removed on the next
    start (cleanup_tmp_directories);
  * keeps the last `keep` steps plus the best one by `best_metric`
    (`best_mode` 'max': higher is better, 'min': lower; only checkpoints
    saved together with an eval carry the metric).

`init_from` loads parameters (and Haiku state) from our own checkpoint or a
release `.pickle`/`.pystate` file into a freshly initialised model, with an
optional subset (regexes over 'module/param') and rename map, for
fine-tuning. It never restores the optimiser or the step.
"""
import os
import re
from typing import Any, Mapping, Optional, Sequence

from absl import logging
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocp_managers


class Checkpointer:
  """A CheckpointManager keeping the last K steps and the best one."""

  def __init__(self, directory: str, *, keep: int = 3,
               best_metric: str = 'eval/accuracy', best_mode: str = 'max',
               async_checkpointing: bool = True, read_only: bool = False):
    if best_mode not in ('min', 'max'):
      raise ValueError(f'best_mode={best_mode!r}; use "min" (lower is '
                       'better) or "max" (higher is better).')
    self.directory = os.path.abspath(directory)
    self.best_metric = best_metric
    metric = lambda metrics: metrics[best_metric]
    if read_only:
      options = ocp.CheckpointManagerOptions(
          read_only=True, best_fn=metric, best_mode=best_mode,
          save_interval_steps=0, create=False)
    else:
      policy = ocp_managers.AnyPreservationPolicy([
          ocp_managers.LatestN(n=keep),
          # BestN keeps the last n of the metrics sorted ascending
          # (reverse=False: the highest) or descending (the lowest).
          ocp_managers.BestN(get_metric_fn=metric,
                             reverse=best_mode == 'min', n=1,
                             keep_checkpoints_without_metrics=False),
      ])
      options = ocp.CheckpointManagerOptions(
          best_fn=metric, best_mode=best_mode, preservation_policy=policy,
          enable_async_checkpointing=async_checkpointing,
          cleanup_tmp_directories=True, create=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def best_step(self) -> Optional[int]:
    return self.manager.best_step()

  def all_steps(self) -> Sequence[int]:
    return self.manager.all_steps()

  def save(self, step: int, tree: Any,
           metrics: Optional[Mapping[str, float]] = None) -> None:
    self.manager.save(step, args=ocp.args.StandardSave(tree),
                      metrics=dict(metrics) if metrics else None)

  def restore(self, step: int, abstract_tree: Any = None) -> Any:
    """Restores `step`; `abstract_tree` (jax.ShapeDtypeStruct leaves with
    shardings) places the arrays, or None for host numpy arrays."""
    if step not in self.manager.all_steps():
      raise FileNotFoundError(
          f'No checkpoint for step {step} in {self.directory}; available: '
          f'{list(self.manager.all_steps())}.')
    if abstract_tree is None:
      # Host arrays on one local device, whatever layout the run was saved
      # with (Orbax refuses a target-less restore across topologies).
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      meta = ocp.StandardCheckpointer().metadata(
          os.path.join(self.directory, str(step), 'default')).item_metadata
      abstract_tree = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
          meta)
    args = ocp.args.StandardRestore(abstract_tree)
    return self.manager.restore(step, args=args)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def resolve_step(ckpt: Checkpointer, which: str) -> int:
  """'latest' | 'best' | '<int>' -> a step present in `ckpt`."""
  if which == 'latest':
    step = ckpt.latest_step()
  elif which == 'best':
    step = ckpt.best_step()
  else:
    step = int(which)
  if step is None:
    raise FileNotFoundError(
        f'No checkpoint in {ckpt.directory}. Train first (launch/train.py '
        '--workdir=...) or point --workdir at a training run.')
  return step


# ---------------------------------------------------------------------------
# init_from: fine-tuning from our checkpoints or release pickles.
# ---------------------------------------------------------------------------


def _flat(tree: Mapping) -> dict[str, Any]:
  return {f'{module}/{name}': value for module, params in tree.items()
          for name, value in params.items()}


def _unflat(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  out: dict[str, dict[str, Any]] = {}
  for key, value in flat.items():
    module, name = key.rsplit('/', 1)
    out.setdefault(module, {})[name] = value
  return out


def load_source(path: str) -> tuple[Mapping, Mapping]:
  """(params, state) as host arrays from a release file or our checkpoint."""
  if path.endswith(('.pickle', '.pystate')):
    from perceiver import checkpoint_io  # pylint: disable=g-import-not-at-top
    return checkpoint_io.load_params(path)
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f'config.init_from.path={path} does not exist. Give a release '
        '.pickle/.pystate file, a checkpoints directory of a training run, '
        'or one of its step directories.')
  base, last = os.path.split(path.rstrip('/'))
  if last.isdigit():  # a step directory
    ckpt, step = Checkpointer(base, read_only=True), int(last)
  else:
    ckpt = Checkpointer(path, read_only=True)
    step = resolve_step(ckpt, 'latest')
  tree = ckpt.restore(step)
  ckpt.close()
  return tree['params'], tree.get('state') or {}


def warm_start(params: Mapping, state: Mapping, path: str, *,
               include: Sequence[str] = (),
               rename: Sequence[Sequence[str]] = ()) -> tuple[Any, Any, str]:
  """Copies a pretrained checkpoint over freshly initialised parameters.

  The one warm-start path of every task (`config.init_from`): `path` is our
  checkpoint (a run's checkpoints/ directory or one step directory) or a
  release-format .pickle/.pystate. Source names ('module/param', in the
  release's per-layer layout whatever the source's layout) are kept when
  they match one of the `include` regexes (all when empty), then rewritten by
  each (regex, replacement) of `rename` in order. Every remaining entry the
  model has is copied (`perceiver.checkpoint_io.merge_params`, which converts
  scanned and per-layer layouts either way); the model's other entries keep
  their initial values, e.g. a new classifier for fine-tuning ([P] App. A).

  Returns:
    (params, state, message), the message listing what was loaded, newly
    initialised and left unused.
  """
  from perceiver import checkpoint_io  # pylint: disable=g-import-not-at-top
  from perceiver import perceiver  # pylint: disable=g-import-not-at-top
  src_params, src_state = load_source(path)
  patterns = [re.compile(p) for p in include]

  def select(tree):
    if perceiver.is_scanned(tree):
      tree = perceiver.to_release_layout(tree)
    flat = {}
    for key, value in _flat(tree).items():
      if patterns and not any(p.search(key) for p in patterns):
        continue
      for pattern, replacement in rename:
        key = re.sub(pattern, replacement, key)
      flat[key] = value
    return _unflat(flat)

  try:
    params, report = checkpoint_io.merge_params(params, select(src_params))
  except checkpoint_io.CheckpointMismatchError as e:
    raise ValueError(
        f'config.init_from.path={path}: {e}\nLeave entries out with '
        'config.init_from.include (e.g. to train a new classifier) or map '
        'them with config.init_from.rename.') from None
  message = f'init_from {path}: {report}'
  if state and src_state:  # Haiku state (BatchNorm statistics)
    state, state_report = checkpoint_io.merge_params(
        state, select(src_state), what='state', require_some=False)
    message += (f'\n  Haiku state: loaded {len(state_report.loaded)} '
                f'entries, newly initialised {len(state_report.new)}.')
  logging.info('%s', message)
  return params, state, message
