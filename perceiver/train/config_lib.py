"""The base configuration every experiment extends, and its validation.

Experiments (experiments/<name>.py) start from `base_config()` and override
fields; they never add new ones. `validate(config)` rejects any key that the
base (or, for `config.input`, the dataset module) does not define, naming the
key and the closest known one. Together with `lock_config=True` in
launch/train.py, a typo such as `--config.optimizer.weight_decy=0.1` fails at
once instead of silently training with the default.

`config.model` is passed verbatim to `perceiver.builders.image_classifier`,
which rejects unknown keyword arguments itself.
"""
import difflib
import importlib
from typing import Any

import ml_collections

ConfigDict = ml_collections.ConfigDict


def base_config() -> ConfigDict:
  """Defaults for every training run (the MNIST-sized scale)."""
  c = ConfigDict()
  c.seed = 0  # model init and the per-step keys fold_in(rng, step)
  # The task module, by import path: model, loss, metrics, input iterators
  # and warm start (interface: perceiver/language/tasks/__init__.py).
  c.task = 'perceiver.train.tasks'  # image classification

  # --- Input (perceiver.data.pipeline) -------------------------------------
  c.input = ConfigDict()
  c.input.module = 'perceiver.data.mnist'  # dataset module, by import path
  c.input.name = 'embedded_mnist'  # TFDS name
  c.input.data_dir = ''  # '' = <workdir>/tensorflow_datasets (embedded) or
  #                         ~/tensorflow_datasets (manual-download data)
  c.input.train_split = 'train'
  c.input.eval_split = 'validation'  # evaluated every eval_every steps
  c.input.test_split = 'test'  # evaluated once at the end ('' to skip)
  c.input.global_batch_size = 128  # across all devices of all processes
  c.input.eval_batch_size = 1000  # global; the last batch is padded+masked
  c.input.shuffle_buffer = 50_000
  c.input.num_shards = 0  # data shards; 0 = one per process. Fixing it makes
  #                          the global batch independent of the process count
  c.input.cache = True  # cache decoded examples in memory (small data only)
  c.input.prefetch = 2  # batches
  c.input.num_train_examples = 0  # 0 = read from the TFDS split info

  # --- Model (perceiver.builders.image_classifier kwargs) ------------------
  c.model = ConfigDict()
  c.model.num_classes = 10
  c.model.input_channels = 1
  c.model.input_preprocessor = ConfigDict()
  c.model.encoder = ConfigDict()
  c.model.decoder = ConfigDict()
  c.model.projection_decoder = False
  c.remat = False  # rematerialise self-attention layers (encoder kwarg)
  c.scan_layers = False  # hk.layer_stack over self-attention (encoder kwarg)
  c.compute_dtype = 'float32'  # 'bfloat16': params/activations cast in the
  #                               step; float32 master weights and loss

  # --- Loss ------------------------------------------------------------------
  c.label_smoothing = 0.0

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
  c.best_metric = 'eval/accuracy'  # ... plus the best by this (higher=better)
  c.async_checkpointing = True

  # --- Initialisation when the workdir has no checkpoint ---------------------
  c.init_from = ConfigDict()
  c.init_from.path = ''  # our checkpoint dir/step dir, or a release .pickle
  c.init_from.include = ()  # regexes over 'module/param'; () = all
  c.init_from.rename = ()  # ((regex, replacement), ...) source -> ours
  return c


def _check_keys(config: Any, reference: Any, prefix: str,
                skip: frozenset[str]) -> None:
  for key in config.keys():
    name = f'{prefix}{key}'
    if name in skip:
      continue
    if key not in reference:
      close = difflib.get_close_matches(key, list(reference.keys()), n=1)
      hint = f' Did you mean "{prefix}{close[0]}"?' if close else ''
      raise ValueError(
          f'Unknown config key "{name}".{hint} Experiments may only override '
          'keys defined in perceiver/train/config_lib.base_config() (or, '
          'under config.input, the dataset module\'s default_input_config()).')
    value, ref = config[key], reference[key]
    if isinstance(ref, ConfigDict) and isinstance(value, ConfigDict):
      _check_keys(value, ref, f'{name}.', skip)


def validate(config: ConfigDict) -> None:
  """Raises ValueError for unknown keys and inconsistent values."""
  reference = base_config()
  dataset = importlib.import_module(config.input.module)
  for key, value in dataset.default_input_config().items():
    reference.input[key] = value
  _check_keys(config, reference, '', frozenset({'model'}))
  if config.parallelism not in ('shard_map', 'pmap'):
    raise ValueError(f'config.parallelism={config.parallelism!r}; use '
                     '"shard_map" (default) or "pmap".')
  if config.compute_dtype not in ('float32', 'bfloat16'):
    raise ValueError(f'config.compute_dtype={config.compute_dtype!r}; use '
                     '"float32" or "bfloat16".')
  for name in ('num_train_steps', 'log_every'):
    if config[name] <= 0:
      raise ValueError(f'config.{name} must be positive, got {config[name]}.')
  if config.optimizer.grad_accum_steps < 1:
    raise ValueError('config.optimizer.grad_accum_steps must be >= 1.')


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
    close = {k: difflib.get_close_matches(k, sorted(known), n=1)
             for k in unknown}
    hints = ''.join(f' ("{k}": did you mean "{c[0]}"?)'
                    for k, c in close.items() if c)
    raise ValueError(
        f'{who}: unknown variant(s) {unknown}{hints}. Valid variants: '
        f'{", ".join(sorted(known))}.')
  return out


def dataset_defaults(config: ConfigDict) -> None:
  """Adds the dataset module's input keys to `config.input` (in place)."""
  dataset = importlib.import_module(config.input.module)
  with config.unlocked():
    for key, value in dataset.default_input_config().items():
      if key not in config.input:
        config.input[key] = value


def load_sibling_experiment(experiment_file: str, name: str):
  """Imports experiments/<name>.py next to `experiment_file` (pass __file__).

  Experiment files are loaded by path (config_flags), not as a package, so a
  variant that reuses another experiment's recipe imports it this way.
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(os.path.abspath(experiment_file)),
                      f'{name}.py')
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
