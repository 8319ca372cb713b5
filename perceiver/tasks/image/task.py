"""Image classification: the task of perceiver/train/task.py.

Shapes: B batch (per device inside the step), H, W, C image, K classes.

[P] App. A / [code] train/experiment.py: softmax cross-entropy on (possibly
MixUp/CutMix-mixed) one-hot targets, label smoothing 0.1 on ImageNet
(`config.task.label_smoothing`). Label smoothing is applied here, to the
mixed targets, so the data pipeline only ever produces one-hot or mixed
targets.

Inputs: the input module of `config.input.module` (perceiver/tasks/image/
mnist.py or imagenet.py) read through perceiver.data.pipeline.
"""
from typing import Any, Optional

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from perceiver import builders
from perceiver.data import pipeline
from perceiver.tasks import common

DEFAULT_INPUT_MODULE = 'perceiver.tasks.image.mnist'


# --- Configuration ----------------------------------------------------------


def default_task_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      label_smoothing=0.0,  # [code] 0.1 on ImageNet; [P] silent
  ))


def default_input_config(config: ml_collections.ConfigDict
                         ) -> ml_collections.ConfigDict:
  """`module` (the input module), the stream keys of perceiver.data.pipeline
  and the input module's own keys."""
  return pipeline.task_input_config(config, DEFAULT_INPUT_MODULE)


# --- Model, loss and metrics --------------------------------------------------


def make_model(config: ml_collections.ConfigDict) -> hk.TransformedWithState:
  """forward(batch, *, is_training) -> logits [B, K]: the classifier of
  builders.image_classifier(**config.model) on batch['images']."""
  kwargs = config.model.to_dict()
  encoder = common.with_layer_switches(kwargs.pop('encoder'), config)
  if kwargs.get('projection_decoder'):
    kwargs['decoder'] = None
  classifier = builders.image_classifier(encoder=encoder, **kwargs)

  def forward(batch, *, is_training):
    return classifier(batch['images'], is_training=is_training)  # [B, H, W, C]

  return hk.transform_with_state(forward)


def example_batch(config: ml_collections.ConfigDict, batch_size: int
                  ) -> dict[str, np.ndarray]:
  """Zeros of the batch's shapes, for init."""
  shape = pipeline.dataset_module(config.input).image_shape(config.input)
  return {'images': np.zeros((batch_size,) + tuple(shape), np.float32)}


def loss_and_metrics(logits: jax.Array,  # [B, K]
                     batch: dict[str, jax.Array],  # labels [B, K] one-hot
                     config: ml_collections.ConfigDict
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean smoothed cross-entropy and per-batch metrics (means over B).

  `batch['labels']` are one-hot or already-mixed targets [B, K]. A batch
  may instead carry the release's MixUp/CutMix form: one-hot `labels` and
  `mix_labels` [B, K] and `ratio` [B], mixed here as
  ratio * labels + (1 - ratio) * mix_labels; accuracy is then measured
  against `labels`, as in the release.
  """
  labels = batch['labels']  # [B, K] one-hot or mixed targets
  label_smoothing = config.task.label_smoothing
  chex.assert_equal_shape([logits, labels])
  logits = logits.astype(jnp.float32)
  targets = labels
  if 'mix_labels' in batch:
    # [code] train/experiment.py: a batch may carry the second one-hot
    # labels of MixUp/CutMix, mix_labels [B, K], and each example's share
    # of its own labels, ratio [B]; the targets are mixed here, in the
    # release's order of operations.
    ratio = batch['ratio'][:, None]  # [B, 1]
    targets = ratio * labels + (1. - ratio) * batch['mix_labels']
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  loss = optax.softmax_cross_entropy(logits, targets).mean()
  accuracy = (jnp.argmax(logits, -1) == jnp.argmax(labels, -1)).mean()
  return loss, {'loss': loss, 'accuracy': accuracy}


def eval_sums(logits: jax.Array,  # [B, K]
              batch: dict[str, jax.Array],
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Sums over the batch, so that padded batches and devices add up."""
  del config
  labels = batch['labels']  # [B, K]
  mask = batch['mask']  # [B] 1 for real examples, 0 for padding
  logits = logits.astype(jnp.float32)
  nll = optax.softmax_cross_entropy(logits, labels)
  correct = (jnp.argmax(logits, -1) == jnp.argmax(labels, -1))
  return {'loss_sum': jnp.sum(nll * mask),
          'correct': jnp.sum(correct * mask),
          'count': jnp.sum(mask)}


def finalize_eval(sums: dict[str, Any],
                  config: Optional[ml_collections.ConfigDict] = None
                  ) -> dict[str, float]:
  del config
  count = max(float(sums['count']), 1.0)
  return {'accuracy': float(sums['correct']) / count,
          'loss': float(sums['loss_sum']) / count,
          'num_examples': float(sums['count'])}


# --- Input ----------------------------------------------------------------------


def prepare_data(config: ml_collections.ConfigDict, workdir: str
                 ) -> Optional[str]:
  """Builds the embedded dataset (MNIST) in the workdir; ImageNet must have
  been prepared under config.input.data_dir (its error says how)."""
  pipeline.hide_accelerators_from_tf()
  module = pipeline.dataset_module(config.input)
  data_dir = pipeline.resolve_data_dir(
      config.input, workdir,
      build_in_workdir=getattr(module, 'BUILD_IN_WORKDIR', False))
  module.get_builder(config.input.name, data_dir)
  return data_dir


def train_iterator(config: ml_collections.ConfigDict, **kwargs):
  """This process's batches (perceiver.data.pipeline.train_iterator)."""
  return pipeline.train_iterator(config.input, **kwargs)


def eval_iterator(config: ml_collections.ConfigDict, split: str, **kwargs):
  """(batches with 'mask', number of batches) of `split` for this process."""
  return pipeline.eval_iterator(config.input, split, **kwargs)
