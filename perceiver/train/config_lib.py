"""The base configuration every experiment extends, and its validation.

Experiments (experiments/<name>.py) call a task's recipe
(perceiver/tasks/<name>/recipes.py), which starts from
`base_config(task_module)` and overrides fields; nothing new is added.
`validate(config)` rejects any key that the base, the task's options
(`default_task_config()`, under `config.task`) or the task's input keys
(`default_input_config(config)`, under `config.input`) do not define, naming
the key and the closest known one. Together with `lock_config=True` in
launch/train.py, a typo such as `--config.optimizer.weight_decy=0.1` fails at
once instead of silently training with the default.

`config.model` is the task's model kwargs, passed to a builder in
perceiver/builders.py, which rejects unknown keyword arguments itself.
"""
import importlib
import importlib.util
import numbers
import os
from typing import Any, Optional

import ml_collections

from perceiver import checks
from perceiver.train import task as task_lib

ConfigDict = ml_collections.ConfigDict


def base_config(task_module: str = 'perceiver.tasks.image.task'
                ) -> ConfigDict:
  """Defaults for every training run, for the task `task_module`.

  The task's own keys (its options under `config.task`, its input keys
  under `config.input`) are added by `add_task_defaults` once the recipe has
  chosen what they depend on (e.g. `config.input.module`).
  """
  c = ConfigDict()
  c.seed = 0  # model init and the per-step keys fold_in(rng, step)
  # The task (perceiver/train/task.py), by import path, and its options.
  c.task = ConfigDict()
  c.task.module = task_module

  # --- Input: the keys the loop reads; the task adds its own -------------
  c.input = ConfigDict()
  c.input.name = ''  # the dataset (a TFDS name, or the task's own)
  c.input.data_dir = ''  # '' = <workdir>/tensorflow_datasets (embedded) or
  #                         ~/tensorflow_datasets (manual-download data)
  c.input.train_split = 'train'
  c.input.eval_split = 'validation'  # evaluated every eval_every steps
  c.input.test_split = 'test'  # evaluated once at the end ('' to skip)
  c.input.global_batch_size = 128  # across all devices of all processes
  c.input.eval_batch_size = 1000  # global; the last batch is padded+masked

  # --- Model: the task's builder kwargs (checked by the builder) ----------
  c.model = ConfigDict()
  c.remat = False  # rematerialise self-attention layers (encoder kwarg)
  c.scan_layers = False  # hk.layer_stack over self-attention (encoder kwarg)
  c.fast_kernels = True  # perceiver.kernels: cheaper attention, LayerNorm
  #                         and Fourier features; same function, same params
  c.compute_dtype = 'float32'  # 'bfloat16': perceiver.mixed_precision's
  #                               policy; float32 master weights and loss

  # --- Optimiser (perceiver.train.optim) --------------------------------------
  c.optimizer = ConfigDict()
  c.optimizer.name = 'lamb'  # 'lamb' | 'adamw'
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-6
  c.optimizer.weight_decay = 0.0
  c.optimizer.decay_pos_embeddings = True  # release: position embeddings
  #                                          (and latents) are decayed
  c.optimizer.clip_global_norm = 0.0  # 0 = off
  c.optimizer.grad_accum_steps = 1  # >1 wraps in optax.MultiSteps

  c.schedule = ConfigDict()
  c.schedule.name = 'flat_cosine'  # 'flat_cosine' | 'warmup_cosine' | 'step'
  c.schedule.base_lr = 1e-3
  c.schedule.warmup_steps = 0  # linear warmup from 0 (any schedule)
  c.schedule.flat_steps = 0  # flat_cosine: constant lr before the cosine
  c.schedule.decay_steps = 0  # cosine length; 0 = to the end of training
  c.schedule.end_lr = 0.0  # cosine end value
  c.schedule.boundaries = ()  # step: optimiser steps where lr is multiplied
  c.schedule.decay_factor = 0.1  # step: the multiplier

  # --- Loop -------------------------------------------------------------------
  c.num_train_steps = 1000  # step-function calls (micro-batches)
  c.parallelism = 'shard_map'  # 'shard_map' (jit over a mesh) | 'pmap'
  c.log_every = 50  # metrics are fetched from the devices only this often
  c.eval_every = 0  # 0 = only at the end
  c.checkpoint_every = 500  # 0 = only at the end
  c.keep_checkpoints = 3  # the last K are kept ...
  c.best_metric = 'eval/accuracy'  # ... plus the best by this metric,
  c.best_mode = 'max'  # 'max': higher is better; 'min': lower is better
  c.async_checkpointing = True

  # --- Initialisation when the workdir has no checkpoint ---------------------
  c.init_from = ConfigDict()
  c.init_from.path = ''  # our checkpoint dir/step dir, or a release .pickle
  c.init_from.include = ()  # regexes over 'module/param'; () = all
  c.init_from.rename = ()  # ((regex, replacement), ...) source -> ours
  return c


# The model kwargs of chunked attention (perceiver.attention), on encoders
# and decoders alike.
CHUNK_KEYS = ('q_chunk_size', 'kv_chunk_size')


def release_exact(config: ConfigDict) -> ConfigDict:
  """A copy of `config` on the release-exact path: no scan, no remat, dense
  attention (every `CHUNK_KEYS` entry under `config.model` removed), the
  release's kernels (no `perceiver.kernels`), float32 compute.

  Experiments train on the fast path (scan_layers, chunked attention, remat
  where they pay); the same parameters, converted with
  `perceiver.to_release_layout` (which `trainer.export` does), run in the
  model of this config exactly as in DeepMind's release. Tests and
  benchmarks/speed/bench_paths.py compare the two.
  """
  c = ConfigDict(config.to_dict())
  c.scan_layers = False
  c.remat = False
  c.fast_kernels = False
  c.compute_dtype = 'float32'

  def strip(node):
    for key in list(node.keys()):
      if key in CHUNK_KEYS:
        del node[key]
      elif isinstance(node[key], ConfigDict):
        strip(node[key])
  strip(c.model)
  return c


def load_experiment(path: str, arg: Optional[str] = None) -> ConfigDict:
  """`get_config(arg)` of an experiment file (experiments/<name>.py), as
  ml_collections' config_flags loads `--config=PATH[:ARG]`."""
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'No experiment file {path}; experiments are the files of '
        'experiments/ in the repository, e.g. experiments/mnist.py.')
  name = 'experiment_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg or None)


def load_task(config: ConfigDict):
  """The task module of `config.task.module`, checked against the interface
  of perceiver/train/task.py."""
  module = config.task.module if isinstance(config.task, ConfigDict) else None
  if not isinstance(module, str) or not module:
    raise ValueError(
        'config.task.module must name a task module by import path, e.g. '
        '"perceiver.tasks.image.task"; got config.task = '
        f'{config.get("task")!r}.')
  try:
    task = importlib.import_module(module)
  except ModuleNotFoundError as e:
    raise ValueError(f'config.task.module={module!r} cannot be imported '
                     f'({e}). Task modules live in perceiver/tasks/.') from e
  task_lib.check(task)
  return task


def add_task_defaults(config: ConfigDict) -> ConfigDict:
  """Adds the task's options and input keys that `config` lacks (in place).

  Recipes call it after choosing `config.task.module` and what the task's
  keys depend on (e.g. `config.input.module`), then override values.
  """
  task = load_task(config)
  with config.unlocked():
    for key, value in task.default_task_config().items():
      if key not in config.task:
        config.task[key] = value
    for key, value in task.default_input_config(config).items():
      if key not in config.input:
        config.input[key] = value
  return config


def _check_keys(config: Any, reference: Any, prefix: str,
                skip: frozenset[str]) -> None:
  for key in config.keys():
    name = f'{prefix}{key}'
    if name in skip:
      continue
    if key not in reference:
      close = checks.closest_name(key, reference.keys())
      hint = f' Did you mean "config.{prefix}{close}"?' if close else ''
      raise ValueError(
          f'Unknown config key "config.{name}".{hint} Experiments may only '
          'override '
          'keys defined in perceiver/train/config_lib.base_config(), the '
          'task\'s default_task_config() (under config.task) or its '
          'default_input_config() (under config.input).')
    value, ref = config[key], reference[key]
    if isinstance(ref, ConfigDict) and isinstance(value, ConfigDict):
      _check_keys(value, ref, f'{name}.', skip)


def validate(config: ConfigDict, num_devices: Optional[int] = None) -> None:
  """Raises ValueError for unknown keys and inconsistent values.

  With `num_devices` (the devices of the data-parallel mesh), the global
  train and eval batch sizes must also divide across them.
  """
  task = load_task(config)
  reference = base_config(config.task.module)
  for key, value in task.default_task_config().items():
    reference.task[key] = value
  for key, value in task.default_input_config(config).items():
    reference.input[key] = value
  _check_keys(config, reference, '', frozenset({'model'}))
  if config.parallelism not in ('shard_map', 'pmap'):
    raise ValueError(f'config.parallelism={config.parallelism!r}; use '
                     '"shard_map" (default) or "pmap".')
  if config.compute_dtype not in ('float32', 'bfloat16'):
    raise ValueError(f'config.compute_dtype={config.compute_dtype!r}; use '
                     '"float32" or "bfloat16".')
  if config.best_mode not in ('min', 'max'):
    raise ValueError(f'config.best_mode={config.best_mode!r}; use "min" '
                     '(lower is better) or "max" (higher is better).')
  for name in ('num_train_steps', 'log_every', 'keep_checkpoints'):
    _check_int(f'config.{name}', config[name], minimum=1)
  for name in ('eval_every', 'checkpoint_every'):
    _check_int(f'config.{name}', config[name], minimum=0,
               hint=' (0: only at the end)')
  for name in ('global_batch_size', 'eval_batch_size'):
    _check_int(f'config.input.{name}', config.input[name], minimum=1)
    if num_devices and config.input[name] % num_devices:
      value = config.input[name]
      raise ValueError(
          f'config.input.{name}={value} does not divide across '
          f'{num_devices} devices; use a multiple of {num_devices} (e.g. '
          f'{max(value // num_devices, 1) * num_devices}).')
  _check_int('config.optimizer.grad_accum_steps',
             config.optimizer.grad_accum_steps, minimum=1)


def _check_int(name: str, value: Any, minimum: int, hint: str = '') -> None:
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or value < minimum):
    what = 'a positive integer' if minimum == 1 else f'an integer >= {minimum}'
    raise ValueError(f'{name} must be {what}{hint}, got {value!r}.')


def smoke_loop(c: ConfigDict) -> None:
  """The `smoke` variants' loop: 2 steps, no warmup, eval or checkpoints."""
  c.num_train_steps = 2
  c.schedule.warmup_steps = 0
  c.log_every = 1
  c.eval_every = 0
  c.checkpoint_every = 0
  c.async_checkpointing = False


def positive_variant(args: Any, key: str, default: Any, kind: type = int
                     ) -> Any:
  """The experiment variant `key` (e.g. 'batch' of 'batch=256') as a positive
  `kind`, else `default`; any other value raises a ValueError naming it."""
  value = args.get(key, default)
  try:
    number = kind(value)
  except (TypeError, ValueError):
    number = None
  if number is None or isinstance(value, bool) or not number > 0:
    raise ValueError(f'Variant "{key}={value}": {key} must be a positive '
                     f'{"integer" if kind is int else "number"} (e.g. '
                     f'"{key}={default}").')
  return number


def batch_variants(args: Any, *, batch: int, steps: Any, accum: int = 1
                   ) -> tuple[int, int, int]:
  """(batch, accum, updates) of the variants `batch=B`, `accum=K`, `steps=N`:
  B examples per optimiser update in K accumulated micro-batches, N updates.
  `steps` is the default N, or a function of B that gives it (an epoch
  count). The one parser of these variants for every recipe; `set_batch`
  puts them in a config."""
  batch = positive_variant(args, 'batch', batch)
  accum = positive_variant(args, 'accum', accum)
  if batch % accum:
    raise ValueError(f'batch={batch} must divide into accum={accum}.')
  updates = positive_variant(args, 'steps',
                             steps(batch) if callable(steps) else steps)
  return batch, accum, updates


def set_batch(c: ConfigDict, batch: int, accum: int, updates: int) -> None:
  """B = `batch` per update in `accum` micro-batches, `updates` updates:
  the loop counts micro-batches (num_train_steps = updates * accum)."""
  c.input.global_batch_size = batch // accum
  c.optimizer.grad_accum_steps = accum
  c.num_train_steps = updates * accum


def parse_variants(arg: Any, known: Any, who: str) -> dict[str, Any]:
  """The experiment argument 'a=1,b,c=x' -> {'a': '1', 'b': True, 'c': 'x'}.

  The one parser of every experiment's `get_config(arg)`. `known` names the
  variant keys the experiment accepts; any other key raises a ValueError that
  lists them, so that a typo ('bach=512') never trains silently with the
  default. A key given twice also raises.
  """
  known = set(known)
  out: dict[str, Any] = {}
  for item in filter(None, (arg or '').split(',')):
    key, eq, value = item.strip().partition('=')
    if key in out:
      raise ValueError(f'{who}: variant "{key}" is given twice in "{arg}".')
    out[key] = value if eq else True
  unknown = sorted(set(out) - known)
  if unknown:
    close = {k: checks.closest_name(k, sorted(known)) for k in unknown}
    hints = ''.join(f' ("{k}": did you mean "{c}"?)'
                    for k, c in close.items() if c)
    raise ValueError(
        f'{who}: unknown variant(s) {unknown}{hints}. Valid variants: '
        f'{", ".join(sorted(known))}.')
  return out
