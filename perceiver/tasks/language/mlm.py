"""Masked language modelling: model, loss and metrics ([P] §4.1, F.3).

Shapes: B batch (per device inside the step), T sequence length (= M = O,
the decoder queries every input position), V vocabulary.

[P] §4.1, App. F.3: softmax cross-entropy against the original
input; the decoder has one learned query per input position. Which
positions enter the loss the paper does not say; it follows
`config.input.loss_on_masked_only` (masking.MlmConfig, default True: masked
positions only, as BERT) through the batch's `loss_weights`. Accuracy is
always on the masked positions (`target_mask`): the masked-token (for
bytes: masked-byte) accuracy.

DEVIATION: the loss is normalised by the loss weight of each device's
micro-batch and the means are averaged over devices (and accumulation
steps); the paper does not say, and the per-batch masked count varies by a
few percent only.
"""
import copy
from typing import Any, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from perceiver.data import pipeline
from perceiver.tasks import common
from perceiver.tasks.language import data
from perceiver.tasks.language import models

# Keys of `config.model` that are not `builders.mlm` kwargs.
HEAD_KEYS = ('multitask',)


# --- Configuration (shared with the GLUE task) ------------------------------


def default_task_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict()


def default_input_config(config: ml_collections.ConfigDict
                         ) -> ml_collections.ConfigDict:
  """The stream keys of perceiver.data.pipeline and the language input keys
  (perceiver/tasks/language/data.py)."""
  del config
  keys = pipeline.default_input_config()
  keys.update(data.default_input_config())
  return keys


def trunk_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.model` as `builders.mlm` kwargs (the trunk every language model
  shares), with the loop's switches (remat, scan_layers) added to the
  encoder kwargs when on."""
  kwargs = copy.deepcopy(config.model.to_dict())
  for key in HEAD_KEYS:
    kwargs.pop(key, None)
  kwargs['encoder'] = common.with_layer_switches(kwargs['encoder'], config)
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


def prepare_data(config: ml_collections.ConfigDict, workdir: str
                 ) -> Optional[str]:
  """Builds an embedded corpus in the workdir; C4, Wikipedia and GLUE are
  read from config.input.data_dir (their errors say how to prepare them)."""
  pipeline.hide_accelerators_from_tf()
  data_dir = pipeline.resolve_data_dir(
      config.input, workdir, build_in_workdir=config.input.name in data.EMBEDDED)
  data.get_builder(config.input.name, data_dir)
  return data_dir


# --- Input -----------------------------------------------------------------------


def train_iterator(config, **kwargs):
  """This process's MLM batches [B_p, T] (see tasks.data)."""
  return data.mlm_train_iterator(config.input, **kwargs)


def eval_iterator(config, split: str, **kwargs):
  """Every MLM example of `split`, masked the same way at every eval."""
  return data.mlm_eval_iterator(config.input, split, **kwargs)


# --- Model, loss and metrics ----------------------------------------------------


def make_model(config: ml_collections.ConfigDict) -> hk.TransformedWithState:
  """forward(batch, *, is_training) -> logits [B, T, V]: models.mlm of
  config.model on batch['inputs'] [B, T] and batch['input_mask'] [B, T]."""
  kwargs = trunk_kwargs(config)
  if config.input.sequence_length != kwargs['max_seq_len']:
    raise ValueError(
        'The MLM decodes every input position: config.input.sequence_length '
        f'({config.input.sequence_length}) must equal config.model.'
        f'max_seq_len ({kwargs["max_seq_len"]}).')
  mlm = models.mlm(kwargs)

  def forward(batch, *, is_training):
    return mlm(batch['inputs'], batch['input_mask'], is_training=is_training)

  return hk.transform_with_state(forward)


def _nll_and_correct(logits: jax.Array,  # [B, T, V]
                     targets: jax.Array,  # [B, T] int32
                     ) -> tuple[jax.Array, jax.Array]:
  logits = logits.astype(jnp.float32)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return nll, correct  # [B, T] each


def loss_and_metrics(outputs: jax.Array,  # [B, T, V]
                     batch: dict[str, jax.Array],
                     config: ml_collections.ConfigDict
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Weighted mean cross-entropy; accuracy on the masked positions."""
  del config
  nll, correct = _nll_and_correct(outputs, batch['targets'])
  weights = batch['loss_weights'].astype(jnp.float32)  # [B, T]
  masked = batch['target_mask'].astype(jnp.float32)  # [B, T]
  loss = jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1.0)
  accuracy = jnp.sum(correct * masked) / jnp.maximum(jnp.sum(masked), 1.0)
  return loss, {'loss': loss, 'accuracy': accuracy,
                'masked_fraction': jnp.mean(masked)}


def eval_sums(outputs: jax.Array,  # [B, T, V]
              batch: dict[str, jax.Array],
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Sums over the masked positions of the real (mask 1) examples."""
  del config
  nll, correct = _nll_and_correct(outputs, batch['targets'])
  masked = batch['target_mask'].astype(jnp.float32) * batch['mask'][:, None]
  return {'nll_sum': jnp.sum(nll * masked),
          'correct': jnp.sum(correct * masked),
          'masked_tokens': jnp.sum(masked),
          'count': jnp.sum(batch['mask'])}


def finalize_eval(sums: dict[str, Any], config: ml_collections.ConfigDict
                  ) -> dict[str, float]:
  """'accuracy' is the masked-token accuracy; 'loss' the masked-token NLL."""
  del config
  tokens = max(float(sums['masked_tokens']), 1.0)
  return {'accuracy': float(sums['correct']) / tokens,
          'loss': float(sums['nll_sum']) / tokens,
          'masked_tokens': float(sums['masked_tokens']),
          'num_examples': float(sums['count'])}
