"""Image classification: the model, the loss and the metrics.

Shapes: B batch (per device inside the step), H, W, C image, K classes.

[P] App. A / [code] train/experiment.py: softmax cross-entropy on (possibly
MixUp/CutMix-mixed) one-hot targets, label smoothing 0.1 on ImageNet.
Label smoothing is applied here, to the mixed targets, so the data
pipeline only ever produces one-hot or mixed targets.
"""
from typing import Any, Optional

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from perceiver.data import pipeline


def make_model(config: ml_collections.ConfigDict) -> hk.TransformedWithState:
  """hk.transform_with_state of builders.image_classifier(**config.model)."""
  from perceiver import builders  # pylint: disable=g-import-not-at-top
  kwargs = config.model.to_dict()
  encoder = dict(kwargs.pop('encoder'))
  # remat/scan_layers are encoder kwargs; they are passed only when switched
  # on so that the default call is exactly the release's kwargs.
  if config.remat:
    encoder['remat'] = True
  if config.scan_layers:
    encoder['scan_layers'] = True
  if kwargs.get('projection_decoder'):
    kwargs['decoder'] = None
  forward = builders.image_classifier(encoder=encoder, **kwargs)
  return hk.transform_with_state(forward)


def example_batch(config: ml_collections.ConfigDict, batch_size: int
                  ) -> dict[str, np.ndarray]:
  """Zeros of the batch's shapes, for init."""
  shape = pipeline.dataset_module(config.input).image_shape(config.input)
  return {'images': np.zeros((batch_size,) + tuple(shape), np.float32)}


def model_args(batch: dict[str, Any], compute_dtype) -> tuple:
  return (batch['images'].astype(compute_dtype),)  # [B, H, W, C]


def loss_and_metrics(logits: jax.Array,  # [B, K]
                     batch: dict[str, jax.Array],  # labels [B, K] one-hot
                     config: ml_collections.ConfigDict
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean smoothed cross-entropy and per-batch metrics (means over B)."""
  labels = batch['labels']  # [B, K] one-hot or mixed targets
  label_smoothing = config.label_smoothing
  chex.assert_equal_shape([logits, labels])
  logits = logits.astype(jnp.float32)
  targets = labels
  if label_smoothing:
    targets = optax.smooth_labels(labels, label_smoothing)
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


def train_iterator(config: ml_collections.ConfigDict, **kwargs):
  """This process's batches (perceiver.data.pipeline.train_iterator)."""
  return pipeline.train_iterator(config.input, **kwargs)


def eval_iterator(config: ml_collections.ConfigDict, split: str, **kwargs):
  """(batches with 'mask', number of batches) of `split` for this process."""
  return pipeline.eval_iterator(config.input, split, **kwargs)


def init_from(params, state, config: ml_collections.ConfigDict):
  """Warm start from config.init_from (checkpoint.merge_init)."""
  from perceiver.train import checkpoint  # pylint: disable=g-import-not-at-top
  params, state = checkpoint.merge_init(
      params, state, config.init_from.path,
      include=tuple(config.init_from.include),
      rename=tuple(tuple(r) for r in config.init_from.rename))
  return params, state, f'Initialised from {config.init_from.path}.'
