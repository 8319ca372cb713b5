"""Language tasks for the one training loop (perceiver.train.trainer).

Shapes: B batch (per device inside the step), T sequence length, V
vocabulary, L labels of a task.

A task is a module found by import path, `config.task` (no registry):
  * 'perceiver.language.tasks.mlm':  masked language modelling ([P] §4.1);
  * 'perceiver.language.tasks.glue': GLUE fine-tuning, single task or
    multitask, and the embedded SST-2-like sentiment task ([P] §4.1, F.4).
The image classification task is 'perceiver.train.tasks' (the default).

Every task module provides the interface the trainer calls:
  make_model(config) -> hk.TransformedWithState
  example_batch(config, batch_size) -> {name: np.ndarray}  (init shapes)
  model_args(batch, compute_dtype) -> tuple  (positional model inputs)
  loss_and_metrics(outputs, batch, config) -> (loss [], {name: []})
      per-device means; 'loss' is required, every metric is logged
  eval_sums(outputs, batch, config) -> {name: array}  summed over the batch
      (padding examples have batch['mask'] 0), so devices and batches add
  finalize_eval(sums, config) -> {name: float}
  train_iterator(config, *, data_dir, seed, start_step, process_index,
                 process_count) -> iterator of this process's batches
  eval_iterator(config, split, *, data_dir, process_index, process_count)
      -> (batches with 'mask', number of batches)
  init_from(params, state, config) -> (params, state, message)
      warm start from config.init_from (fine-tuning), step 0

This file holds what the language tasks share: the MLM trunk's kwargs from
`config.model` and the warm start, which uses
`models.init_from_release` so that its report of what was loaded and what
was newly initialised reaches the training log.
"""
import copy
import re
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from perceiver import perceiver as perceiver_lib
from perceiver.language import models

# Keys of `config.model` that are not `builders.mlm` kwargs.
HEAD_KEYS = ('multitask',)


def mlm_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.model` as `models.mlm_config` output, with the loop's switches
  (remat, scan_layers) added to the encoder kwargs when on."""
  kwargs = copy.deepcopy(config.model.to_dict())
  for key in HEAD_KEYS:
    kwargs.pop(key, None)
  if config.remat:
    kwargs['encoder']['remat'] = True
  if config.scan_layers:
    kwargs['encoder']['scan_layers'] = True
  if config.input.sequence_length > kwargs['max_seq_len']:
    raise ValueError(
        f'config.input.sequence_length={config.input.sequence_length} exceeds '
        f'the model\'s position table (config.model.max_seq_len='
        f'{kwargs["max_seq_len"]}).')
  return kwargs


def example_batch(config: ml_collections.ConfigDict, batch_size: int
                  ) -> dict[str, np.ndarray]:
  t = config.input.sequence_length
  return {'inputs': np.zeros((batch_size, t), np.int32),
          'input_mask': np.ones((batch_size, t), np.int32)}


def model_args(batch: dict[str, Any], compute_dtype) -> tuple:
  del compute_dtype  # token ids stay integers; params are cast by the loop
  return (batch['inputs'],  # [B, T] int32
          batch['input_mask'])  # [B, T] 1 valid, 0 padding


def _flat(tree) -> dict[str, Any]:
  return {f'{m}/{n}': v for m, leaves in tree.items() for n, v in
          leaves.items()}


def _unflat(flat) -> dict[str, dict[str, Any]]:
  out: dict[str, dict[str, Any]] = {}
  for key, value in flat.items():
    module, name = key.rsplit('/', 1)
    out.setdefault(module, {})[name] = value
  return out


def init_from(params, state, config: ml_collections.ConfigDict):
  """Warm start from config.init_from.path: our MLM run (its checkpoints/
  directory, a step directory) or a release-format .pickle/.pystate.

  Source names ('module/param') are filtered by config.init_from.include
  (regexes; () = all) and rewritten by config.init_from.rename ((regex,
  replacement) pairs, e.g. models.WARM_START_DECODER as
  (('^basic_decoder/cross_attention', 'glue_decoder/cross_attention'),)),
  then `models.init_from_release` copies every entry the model has and
  reports what it newly initialised (the task heads, the new decoder).
  """
  from perceiver.train import checkpoint  # pylint: disable=g-import-not-at-top
  source, _ = checkpoint.load_source(config.init_from.path)
  patterns = [re.compile(p) for p in config.init_from.include]
  flat = {}
  if any(f'/{perceiver_lib.SCAN_NAME}/' in m for m in source):
    source = perceiver_lib.to_release_layout(source)  # names as released
  for key, value in _flat(source).items():
    if patterns and not any(p.search(key) for p in patterns):
      continue
    for pattern, replacement in config.init_from.rename:
      key = re.sub(pattern, replacement, key)
    flat[key] = value
  new_params, report = models.init_from_release(
      params, _unflat(flat))
  new_params = {m: {n: jnp.asarray(v) for n, v in leaves.items()}
                for m, leaves in new_params.items()}
  message = f'init_from {config.init_from.path}: {report}'
  return new_params, state, message
