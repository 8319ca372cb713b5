"""Image classification: the model, the loss and the metrics.

Shapes: B batch (per device inside the step), H, W, C image, K classes.

[P] App. A / [code] train/experiment.py: softmax cross-entropy on (possibly
MixUp/CutMix-mixed) one-hot targets, label smoothing 0.1 on ImageNet.
Label smoothing is applied here, to the mixed targets, so the data
pipeline only ever produces one-hot or mixed targets.
"""
from typing import Any

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import optax


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


def loss_and_metrics(logits: jax.Array,  # [B, K]
                     labels: jax.Array,  # [B, K] one-hot or mixed targets
                     *, label_smoothing: float
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean smoothed cross-entropy and per-batch metrics (means over B)."""
  chex.assert_equal_shape([logits, labels])
  logits = logits.astype(jnp.float32)
  targets = labels
  if label_smoothing:
    targets = optax.smooth_labels(labels, label_smoothing)
  loss = optax.softmax_cross_entropy(logits, targets).mean()
  accuracy = (jnp.argmax(logits, -1) == jnp.argmax(labels, -1)).mean()
  return loss, {'loss': loss, 'accuracy': accuracy}


def eval_sums(logits: jax.Array,  # [B, K]
              labels: jax.Array,  # [B, K]
              mask: jax.Array,  # [B] 1 for real examples, 0 for padding
              ) -> dict[str, jax.Array]:
  """Sums over the batch, so that padded batches and devices add up."""
  logits = logits.astype(jnp.float32)
  nll = optax.softmax_cross_entropy(logits, labels)
  correct = (jnp.argmax(logits, -1) == jnp.argmax(labels, -1))
  return {'loss_sum': jnp.sum(nll * mask),
          'correct': jnp.sum(correct * mask),
          'count': jnp.sum(mask)}


def finalize_eval(sums: dict[str, Any]) -> dict[str, float]:
  count = max(float(sums['count']), 1.0)
  return {'accuracy': float(sums['correct']) / count,
          'loss': float(sums['loss_sum']) / count,
          'num_examples': float(sums['count'])}
