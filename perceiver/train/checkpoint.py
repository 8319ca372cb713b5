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

Restoring checks first that the stored arrays have the shapes the model of
the current config asks for (`ConfigMismatchError` names every entry that
differs, and the way out). `restore_latest_intact` is how a run resumes: a
step that cannot be read (truncated array file, truncated metadata, an empty
step folder, ...) is logged with its reason and moved to
`<workdir>/checkpoints_damaged/<step>` (never deleted), and the next older
step is tried; only when no step is intact does it fail, with one message.

Orbax and TensorStore do not notice changed bytes in an array's data files
(a flipped bit in a compressed chunk restores as different numbers, with no
error), so each save also records a SHA-256 of every array (its dtype, shape
and bytes), computed from the values being saved: process 0 writes
`<step>/perceiver_checksums.json` once Orbax has committed the step. A
restore recomputes them and treats a difference as damage
(DamagedCheckpointError: resuming falls back to the previous intact step).
Steps written without the file (older runs) restore unchecked.

`init_from` loads parameters (and Haiku state) from our own checkpoint or a
release `.pickle`/`.pystate` file into a freshly initialised model, with an
optional subset (regexes over 'module/param') and rename map, for
fine-tuning. It never restores the optimiser or the step.
"""
import hashlib
import dataclasses
import json
import os
import re
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocp_managers

from perceiver import checkpoint_io
from perceiver import perceiver

_ITEM = 'default'  # the item folder of a step (StandardSave's only item)
CHECKSUMS = 'perceiver_checksums.json'  # <step>/CHECKSUMS: array digests
DAMAGED_SUFFIX = '_damaged'  # <workdir>/checkpoints_damaged/<step>


class DamagedCheckpointError(RuntimeError):
  """A checkpoint step that exists but cannot be restored."""

  def __init__(self, directory: str, step: int, reason: str):
    self.directory, self.step, self.reason = directory, step, reason
    super().__init__(f'Checkpoint step {step} in {directory} cannot be '
                     f'restored: {reason}')


class NoIntactCheckpointError(RuntimeError):
  """Every step of a workdir is damaged (they were moved aside)."""


class ConfigMismatchError(ValueError):
  """The stored arrays do not have the shapes the current config asks for.

  Attributes:
    mismatched: [(path, stored shape, requested shape)]; a shape is None for
      an entry that only one side has.
  """

  def __init__(self, message: str, mismatched):
    self.mismatched = mismatched
    super().__init__(message)


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
    if read_only and not os.path.isdir(self.directory):
      raise FileNotFoundError(
          f'No checkpoints directory {self.directory}. Train first '
          '(launch/train.py --workdir=...) or point --workdir at a training '
          'run.')
    self._closed = False
    # step -> array digests of a save not yet written beside it (process 0).
    self._pending: dict[int, dict[str, str]] = {}
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def best_step(self) -> Optional[int]:
    return self.manager.best_step()

  def all_steps(self) -> Sequence[int]:
    return self.manager.all_steps()

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, tree: Any,
           metrics: Optional[Mapping[str, float]] = None) -> None:
    """Starts saving `tree` as `step` (in the background when async); the
    array digests are written beside it once the step is committed (at the
    next save, wait or close)."""
    self._write_checksums()
    if jax.process_index() == 0:
      # Before Orbax returns: the caller may donate the arrays right after.
      self._pending[step] = array_digests(tree)
    self.manager.save(step, args=ocp.args.StandardSave(tree),
                      metrics=dict(metrics) if metrics else None)

  def _write_checksums(self, final: bool = False) -> None:
    """Writes the digests of every pending step that Orbax has committed
    (its folder has its final name); `final`: forgets the others (removed
    by the keep policy before they committed, or never committed)."""
    for step in sorted(self._pending):
      step_dir = self.step_dir(step)
      if os.path.isdir(step_dir):
        _write_json_atomically(
            os.path.join(step_dir, CHECKSUMS),
            {'format': 1, 'step': step, 'sha256': self._pending.pop(step)})
      elif final:
        del self._pending[step]

  def restore(self, step: int, abstract_tree: Any = None) -> Any:
    """Restores `step`; `abstract_tree` (jax.ShapeDtypeStruct leaves with
    shardings) places the arrays, or None for host numpy arrays.

    Raises:
      FileNotFoundError: no such step.
      ConfigMismatchError: the stored shapes are not those of
        `abstract_tree` (another model config); names every entry.
      DamagedCheckpointError: the step exists but cannot be read.
    """
    if step not in self.manager.all_steps():
      raise FileNotFoundError(
          f'No checkpoint for step {step} in {self.directory}; available: '
          f'{list(self.manager.all_steps())}.')
    meta = self._item_metadata(step)
    if abstract_tree is None:
      # Host arrays on one local device, whatever layout the run was saved
      # with (Orbax refuses a target-less restore across topologies).
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      abstract_tree = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
          meta)
    else:
      _check_shapes(meta, abstract_tree, self.directory, step)
    args = ocp.args.StandardRestore(abstract_tree)
    try:
      tree = self.manager.restore(step, args=args)
    except Exception as e:  # pylint: disable=broad-exception-caught
      if _is_resource_error(e):
        raise  # out of memory: not the checkpoint's fault
      raise DamagedCheckpointError(self.directory, step, _reason(e)) from e
    self._verify(step, tree)
    return tree

  def _verify(self, step: int, tree: Any) -> None:
    """Raises DamagedCheckpointError when a restored array differs from
    the digest recorded when `step` was saved (none recorded: unchecked)."""
    path = os.path.join(self.step_dir(step), CHECKSUMS)
    if not os.path.exists(path):
      logging.info('%s has no %s; restored without an integrity check.',
                   self.step_dir(step), CHECKSUMS)
      return
    try:
      with open(path) as f:
        recorded = json.load(f)['sha256']
    except (ValueError, KeyError, TypeError) as e:
      raise DamagedCheckpointError(
          self.directory, step, f'its checksum file {path} is truncated or '
          f'garbled ({type(e).__name__}: {e})') from e
    restored = array_digests(tree)
    changed = sorted(name for name, digest in restored.items()
                     if name in recorded and recorded[name] != digest)
    if changed:
      listed = ', '.join(changed[:5]) + (
          f' and {len(changed) - 5} more' if len(changed) > 5 else '')
      raise DamagedCheckpointError(
          self.directory, step, f'{len(changed)} array(s) differ from the '
          f'SHA-256 recorded at save time in {path}: {listed} (their data '
          'files were changed after the save)')

  def _item_metadata(self, step: int) -> Any:
    """The stored tree of ArrayMetadata (shape, dtype) of `step`."""
    step_dir = self.step_dir(step)
    if not os.listdir(step_dir):
      raise DamagedCheckpointError(self.directory, step,
                                   'the step folder is empty')
    item = os.path.join(step_dir, _ITEM)
    problem = _metadata_problem(item)
    if problem:
      raise DamagedCheckpointError(self.directory, step, problem)
    # The handler itself, not StandardCheckpointer: the latter logs a
    # generic warning and returns None where the handler names the file.
    handler = ocp.StandardCheckpointHandler()
    try:
      return handler.metadata(epath.Path(item))
    except Exception as e:  # pylint: disable=broad-exception-caught
      raise DamagedCheckpointError(
          self.directory, step, 'its array index cannot be read: '
          f'{_reason(e)}') from e
    finally:
      handler.close()

  def restore_latest_intact(
      self, abstract_tree: Any,
      warn: Callable[[str], None] = logging.warning
  ) -> tuple[Optional[int], Any]:
    """(step, tree) of the newest step that restores, or (None, None) when
    the directory has no step at all.

    Each newer step that cannot be read is reported through `warn` (step and
    reason), moved to `<directory>_damaged/<step>` by process 0 (never
    deleted), and the next older step is tried. A ConfigMismatchError is
    raised at once: the steps are intact, the config is not theirs.

    Raises:
      NoIntactCheckpointError: steps existed but none could be restored.
    """
    moved = []
    while True:
      steps = sorted(self.manager.all_steps(), reverse=True)
      if not steps:
        break
      step = steps[0]
      try:
        tree, error = self.restore(step, abstract_tree), None
      except DamagedCheckpointError as e:
        tree, error = None, e
      # Every process must have read the step (a multi-host run may have
      # damage in one process's files only).
      if not _all_processes(error is None):
        if error is None:
          error = DamagedCheckpointError(self.directory, step,
                                         'another process could not read it')
        destination = self.move_aside(step)
        moved.append((step, error.reason, destination))
        warn(f'{error} Moved it to {destination} (nothing is deleted); '
             'trying the next older step.')
        continue
      return step, tree
    if moved:
      listing = '\n'.join(f'  step {s}: {r}\n    now in {d}'
                           for s, r, d in moved)
      raise NoIntactCheckpointError(
          f'No intact checkpoint in {self.directory}; every step was '
          f'damaged and has been moved aside:\n{listing}\nRunning the same '
          'command again trains from step 0 (or from config.init_from); to '
          'resume instead, put a good copy of a step back into '
          f'{self.directory}/<step>.')
    return None, None

  def move_aside(self, step: int) -> str:
    """Moves a damaged step folder to <directory>_damaged/<step>[.n]."""
    base = os.path.join(self.directory + DAMAGED_SUFFIX, str(step))
    destination, n = base, 0
    while os.path.exists(destination):
      n += 1
      destination = f'{base}.{n}'
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(destination), exist_ok=True)
      os.rename(self.step_dir(step), destination)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'checkpoint_moved_aside_{step}')
    self.manager.reload()
    return destination

  def wait(self) -> None:
    self.manager.wait_until_finished()
    self._write_checksums(final=True)

  def close(self) -> None:
    """Waits for a save in flight, then stops Orbax's background threads.
    Safe to call twice."""
    if not self._closed:
      self._closed = True
      self.manager.close()
      self._write_checksums(final=True)

  def __enter__(self) -> 'Checkpointer':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def array_digests(tree: Any) -> dict[str, str]:
  """{'params/module/name': SHA-256 of dtype, shape and bytes} of the
  arrays of `tree` that this process holds whole (replicated or local);
  others are left out."""
  digests = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if isinstance(leaf, jax.Array):
      if not (leaf.is_fully_replicated or leaf.is_fully_addressable):
        continue
      value = np.asarray(leaf.addressable_data(0))
    else:
      value = np.asarray(leaf)
    digest = hashlib.sha256(f'{value.dtype.name}{value.shape}'.encode())
    digest.update(np.ascontiguousarray(value).tobytes())
    digests[_path_name(path)] = digest.hexdigest()
  return digests


def _write_json_atomically(path: str, payload: Any) -> None:
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(payload, f, indent=1, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def check_step_name(which: str) -> str:
  """'latest' | 'best' | a non-negative step number, else a ValueError that
  says so (the launchers check --step with it before building anything)."""
  if which in ('latest', 'best') or (which.isdigit() and which.isascii()):
    return which
  raise ValueError(f"--step={which!r}: give 'latest', 'best' or a step "
                   'number such as 1000.')


def resolve_step(ckpt: Checkpointer, which: str) -> int:
  """'latest' | 'best' | '<int>' -> a step present in `ckpt`."""
  check_step_name(which)
  steps = sorted(ckpt.all_steps())
  if not steps:
    raise FileNotFoundError(
        f'No checkpoint in {ckpt.directory}. Train first (launch/train.py '
        '--workdir=...) or point --workdir at a training run.')
  if which == 'latest':
    return ckpt.latest_step()
  if which == 'best':
    step = ckpt.best_step()
    if step is None:
      raise FileNotFoundError(
          f'--step=best: no checkpoint in {ckpt.directory} carries the '
          f'metric {ckpt.best_metric!r} (steps {steps} exist, saved without '
          'it: the run had no eval split, or config.best_metric names a '
          'metric its evals do not report). Use --step=latest or a step '
          f'number ({steps[-1]}).')
    return step
  step = int(which)
  if step not in steps:
    raise FileNotFoundError(
        f'--step={step}: no such checkpoint in {ckpt.directory}; available '
        f'steps: {steps}.')
  return step


def _path_name(path: tuple) -> str:
  """A jax key path as 'params/module/name' (dict keys, fields, indices)."""
  parts = []
  for key in path:
    for attr in ('key', 'name', 'idx'):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return '/'.join(parts)


def _shapes(tree: Any) -> dict[str, tuple]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {_path_name(path): tuple(leaf.shape) for path, leaf in leaves
          if hasattr(leaf, 'shape')}


_MAX_LISTED = 30


def _check_shapes(meta: Any, abstract_tree: Any, directory: str,
                  step: int) -> None:
  """Raises ConfigMismatchError unless the stored entries and shapes are
  those the current config's model asks for."""
  stored, wanted = _shapes(meta), _shapes(abstract_tree)
  if stored == wanted:
    return
  names = sorted(stored.keys() | wanted.keys())
  bad = [(n, stored.get(n), wanted.get(n)) for n in names
         if stored.get(n) != wanted.get(n)]
  # The model's own entries first; the optimiser's copies of them follow
  # (listed only when nothing else differs).
  own = [b for b in bad if b[0].startswith(('params/', 'state/'))]
  listed = own or bad
  shape = lambda s: '(absent)' if s is None else str(s)
  lines = [f'    {n}  stored {shape(s)}, requested {shape(w)}'
           for n, s, w in listed[:_MAX_LISTED]]
  if len(listed) > _MAX_LISTED:
    lines.append(f'    ... and {len(listed) - _MAX_LISTED} more')
  others = len(bad) - len(listed)
  if others:
    lines.append(f'    (and {others} optimiser-state entries of the same '
                 'parameters)')
  workdir = os.path.dirname(directory)
  raise ConfigMismatchError(
      f'The checkpoint of step {step} in {directory} was written with '
      f'another config than the one given: {len(own)} model entries and '
      f'{len(bad) - len(own)} optimiser (or other) entries differ (path, '
      'stored shape, requested shape):\n' + '\n'.join(lines) +
      f'\nThe workdir {workdir} belongs to that run. To resume or evaluate '
      'it, use the config it was trained with. To train the new config, give '
      'a new --workdir; to start it from this run\'s weights, also set '
      f'--config.init_from.path={directory} (with config.init_from.include '
      'leaving out the entries whose shapes changed).', bad)


def _is_resource_error(error: BaseException) -> bool:
  text = f'{type(error).__name__} {error}'
  return isinstance(error, MemoryError) or 'RESOURCE_EXHAUSTED' in text


def _reason(error: BaseException) -> str:
  """The innermost cause of an Orbax/TensorStore error, on one line: it names
  the file or array (the outer ones are generic)."""
  seen = []
  while error is not None and error not in seen:
    seen.append(error)
    error = error.__cause__ or error.__context__
  for e in reversed(seen):
    text = ' '.join(str(e).split())
    if text:
      if len(text) > 600:
        text = text[:600] + ' ...'
      return f'{type(e).__name__}: {text}'
  return type(seen[-1]).__name__


def _metadata_problem(item: str) -> Optional[str]:
  """What is wrong with the metadata files of a step's item folder, or None
  when they are present and parse."""
  if not os.path.isdir(item):
    return f'it has no {_ITEM}/ folder (the step was never completely written)'
  path = os.path.join(item, '_METADATA')
  if not os.path.exists(path):
    return f'its metadata file {path} is missing'
  try:
    with open(path) as f:
      json.load(f)
  except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
    return f'its metadata file {path} is truncated or garbled ({e})'
  return None


def _all_processes(ok: bool) -> bool:
  """True when `ok` holds on every process."""
  if jax.process_count() == 1:
    return ok
  flags = multihost_utils.process_allgather(np.asarray(int(ok), np.int32))
  return bool(np.all(flags))


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


LAYOUTS = ('release', 'scanned', 'saved')


def _run_directory(path: str) -> tuple[str, Optional[str]]:
  """(checkpoints directory, the step a step directory names, else None)."""
  base, last = os.path.split(path)
  if last.isdigit():  # one step directory: <run>/checkpoints/<step>
    return base, last
  if os.path.isdir(os.path.join(path, 'checkpoints')):  # a workdir
    return os.path.join(path, 'checkpoints'), None
  return path, None


def read_params(path: str, *, step: str = 'latest', layout: str = 'release',
                expected: Optional[Mapping] = None,
                best_metric: str = 'eval/accuracy', best_mode: str = 'max'
                ) -> tuple[dict, dict]:
  """(params, state) as host arrays from any checkpoint the project reads.

  The one reader behind warm starts, exports, the HF export and the CLIs.

  Args:
    path: a release-format `.pickle` / `.pystate` file, a training workdir
      (holding checkpoints/), its checkpoints/ directory, or one step
      directory in it.
    step: for a training run: 'latest', 'best' or a step number. A step
      directory names its own step.
    layout: 'release' (the release's per-layer tree, as its checkpoints
      hold it), 'scanned' (self-attention layers stacked [L, ...], as a
      model with scan_layers=True holds them) or 'saved' (as stored).
    expected: the model's params (arrays or shape structs, e.g. from
      jax.eval_shape of its init); when given, the tree must match it
      (`checkpoint_io.CheckpointMismatchError` names every entry that
      differs).
    best_metric, best_mode: the run's config.best_metric / best_mode, read
      for step='best'.

  Raises a clear error for a missing path, for a step that is not there and
  for weights holding NaN or Inf (naming the file and the first such entry).
  """
  if layout not in LAYOUTS:
    raise ValueError(f'layout={layout!r}; use one of {LAYOUTS}.')
  path = os.fspath(path)
  if path.endswith(('.pickle', '.pystate')):
    params, state = checkpoint_io.load_params(path)
    source = path
  else:
    path = os.path.abspath(path).rstrip('/')
    if not os.path.isdir(path):
      raise FileNotFoundError(
          f'{path}: no such checkpoint. Give a release .pickle/.pystate '
          'file, a training workdir, its checkpoints/ directory or one of '
          'its step directories.')
    directory, named = _run_directory(path)
    with Checkpointer(directory, read_only=True, best_metric=best_metric,
                      best_mode=best_mode) as ckpt:
      which = resolve_step(ckpt, named or str(step))
      tree = ckpt.restore(which)  # host arrays; no model needed
    params, state = tree['params'], tree.get('state') or {}
    source = os.path.join(directory, str(which))
    checkpoint_io.check_finite(params, source, 'params')
    checkpoint_io.check_finite(state, source, 'state')
  scanned = perceiver.is_scanned(params)
  if layout == 'release' and scanned:
    params = perceiver.to_release_layout(params)
  elif layout == 'scanned' and not scanned:
    params = perceiver.from_release_layout(params)
  if expected is not None:
    checkpoint_io.check_tree(params, expected, f'params of {source}')
  return params, state or {}


@dataclasses.dataclass(frozen=True)
class MergeReport:
  """What :func:`merge_params` did, by entry name ``'module/param'``.

  Names are in the release's per-layer layout, whatever the layouts of the
  checkpoint and the model (scanned stacks are converted).
  """

  loaded: tuple[str, ...]  # copied from the checkpoint
  new: tuple[str, ...]  # kept from the model's init (newly initialised)
  unused: tuple[str, ...]  # in the checkpoint, absent from the model
  renamed: tuple[tuple[str, str], ...] = ()  # (checkpoint, model) modules
  num_loaded_params: int = 0
  num_new_params: int = 0

  def __str__(self):
    lines = [
        f'Loaded {len(self.loaded)} entries '
        f'({self.num_loaded_params:,} params); newly initialised '
        f'{len(self.new)} ({self.num_new_params:,} params); '
        f'{len(self.unused)} checkpoint entries unused.'
    ]
    for title, names in (('newly initialised', self.new), ('unused',
                                                           self.unused)):
      if names:
        lines.append(f'  {title}:')
        lines += [f'    {n}' for n in names]
    if self.renamed:
      lines.append('  renamed:')
      lines += [f'    {a} -> {b}' for a, b in self.renamed]
    return '\n'.join(lines)


def _rename_module(module: str, rename: Mapping[str, str]) -> str:
  """Applies the longest matching module-path prefix of ``rename``."""
  for old in sorted(rename, key=len, reverse=True):
    if module == old or module.startswith(old + '/'):
      return rename[old] + module[len(old):]
  return module


def merge_params(params_init: Mapping,
                 checkpoint: Mapping,
                 rename: Mapping[str, str] | None = None,
                 *,
                 what: str = 'params',
                 require_some: bool = True):
  """Copies a pretrained checkpoint's entries into a new model's tree.

  Every checkpoint entry whose (renamed) name exists in the model with the
  same shape is copied, cast to the model's dtype; the rest of the model
  keeps ``params_init`` (e.g. a new classifier when fine-tuning, [P] App.
  A, F.4). Scanned (``scan_layers=True``) and per-layer encoder layouts
  are converted either way, so a release pickle warm-starts a scanned
  model and the other way round.

  Args:
    params_init: the new model's initialised tree ``{module: {name:
      array}}``; ``jax.ShapeDtypeStruct`` leaves (from ``jax.eval_shape``)
      also work, and the new entries then stay shape structs.
    checkpoint: the pretrained tree (e.g. ``read_params(path)[0]``).
    rename: optional ``{checkpoint module prefix: model module prefix}``.
    what: the name of the tree in messages (``'params'`` or ``'state'``).
    require_some: raise if nothing at all was loaded.

  Returns:
    ``(tree with the structure of params_init, MergeReport)``.

  Raises:
    CheckpointMismatchError: an entry present in both has different
      shapes (every one is named), or nothing was loaded.
  """
  rename = dict(rename or {})
  target_scanned = perceiver.is_scanned(params_init)
  target = (
      perceiver.to_release_layout(params_init)
      if target_scanned else params_init)
  ckpt = (
      perceiver.to_release_layout(checkpoint)
      if perceiver.is_scanned(checkpoint) else checkpoint)

  source = {}  # (model module, name) -> (checkpoint name, value)
  renamed = set()
  for module, leaves in ckpt.items():
    new_module = _rename_module(module, rename)
    if new_module != module:
      renamed.add((module, new_module))
    for name, value in leaves.items():
      source[(new_module, name)] = (f'{module}/{name}', value)

  out, loaded, new, mismatched = {}, [], [], []
  num_loaded = num_new = 0
  for module, leaves in target.items():
    out[module] = {}
    for name, init in leaves.items():
      entry = f'{module}/{name}'
      if (module, name) not in source:
        out[module][name] = init
        new.append(entry)
        num_new += int(np.prod(init.shape))
        continue
      ckpt_name, value = source.pop((module, name))
      if tuple(np.shape(value)) != tuple(init.shape):
        mismatched.append(
            (entry if ckpt_name == entry else f'{ckpt_name} -> {entry}',
             tuple(np.shape(value)), tuple(init.shape)))
        continue
      out[module][name] = np.asarray(value).astype(init.dtype)
      loaded.append(entry)
      num_loaded += int(np.prod(init.shape))
  if mismatched:
    raise checkpoint_io.CheckpointMismatchError(
        f'pretrained {what} shared with the new model', [], [],
        sorted(mismatched))
  if require_some and not loaded:
    raise checkpoint_io.CheckpointMismatchError(
        f'pretrained {what} (no entry matched the new model by name)', [],
        sorted((f'{m}/{n}', tuple(np.shape(v[1])))
               for (m, n), v in source.items()), [])
  if target_scanned:
    out = perceiver.from_release_layout(out)
  return out, MergeReport(
      loaded=tuple(sorted(loaded)),
      new=tuple(sorted(new)),
      unused=tuple(sorted(name for name, _ in source.values())),
      renamed=tuple(sorted(renamed)),
      num_loaded_params=num_loaded,
      num_new_params=num_new)


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
  model has is copied (`merge_params`, which converts
  scanned and per-layer layouts either way); the model's other entries keep
  their initial values, e.g. a new classifier for fine-tuning ([P] App. A).

  Returns:
    (params, state, message), the message listing what was loaded, newly
    initialised and left unused.
  """
  try:
    src_params, src_state = read_params(path, layout='saved')
  except checkpoint_io.NonFiniteCheckpointError as e:
    raise checkpoint_io.NonFiniteCheckpointError(
        f'config.init_from.path: {e}') from None
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
    params, report = merge_params(params, select(src_params))
  except checkpoint_io.CheckpointMismatchError as e:
    raise ValueError(
        f'config.init_from.path={path}: {e}\nLeave entries out with '
        'config.init_from.include (e.g. to train a new classifier) or map '
        'them with config.init_from.rename.') from None
  message = f'init_from {path}: {report}'
  if state and src_state:  # Haiku state (BatchNorm statistics)
    state, state_report = merge_params(
        state, select(src_state), what='state', require_some=False)
    message += (f'\n  Haiku state: loaded {len(state_report.loaded)} '
                f'entries, newly initialised {len(state_report.new)}.')
  logging.info('%s', message)
  return params, state, message
