"""Flow metrics on valid pixels: end-point error and outlier rates.

Glossary of shapes: B batch, H, W image size; flow [..., H, W, 2] (u, v) in
pixels, valid [..., H, W] (1 where the ground truth is defined).

  EPE      mean over valid pixels of ||pred - gt||_2 ([P] §4.2, Table 3
           "average end-point error").
  out{t}px the fraction of valid pixels whose end-point error exceeds t
           pixels, t = 1, 3, 5 (the "1px/3px/5px" accuracies of RAFT and
           AutoFlow's evaluations, here as error rates: lower is better).

Averages are over pixels (all valid pixels of all images count equally), as
RAFT's Sintel evaluation does. The functions take numpy or JAX arrays and
work inside jit; sums over batches and devices add up before `finalize`.
"""
from typing import Mapping

import jax.numpy as jnp

THRESHOLDS = (1, 3, 5)  # pixels


def end_point_error(pred, gt):
  """||pred - gt||_2 per pixel: [..., H, W, 2] x2 -> [..., H, W]."""
  return jnp.sqrt(jnp.sum(jnp.square(jnp.asarray(pred, jnp.float32) -
                                     jnp.asarray(gt, jnp.float32)), -1))


def sums(pred, gt, valid, weight=None) -> dict:
  """Sums over valid pixels: 'epe_sum', 'out{t}px_sum', 'valid_pixels'.

  `weight` [...] (per image, e.g. the eval mask of padded examples) scales
  every pixel of its image.
  """
  valid = jnp.asarray(valid, jnp.float32)
  if weight is not None:
    weight = jnp.asarray(weight, jnp.float32)
    valid = valid * weight.reshape(weight.shape + (1,) * (valid.ndim -
                                                          weight.ndim))
  epe = end_point_error(pred, gt)
  out = {'epe_sum': jnp.sum(epe * valid), 'valid_pixels': jnp.sum(valid)}
  for t in THRESHOLDS:
    out[f'out{t}px_sum'] = jnp.sum((epe > t) * valid)
  return out


def finalize(total: Mapping[str, float]) -> dict[str, float]:
  """{'epe', 'out1px', 'out3px', 'out5px', 'valid_pixels'} from `sums`."""
  n = max(float(total['valid_pixels']), 1.0)
  result = {'epe': float(total['epe_sum']) / n}
  for t in THRESHOLDS:
    result[f'out{t}px'] = float(total[f'out{t}px_sum']) / n
  result['valid_pixels'] = float(total['valid_pixels'])
  return result


def evaluate(pred, gt, valid) -> dict[str, float]:
  """The metrics of one prediction (or a batch of them)."""
  return finalize(sums(pred, gt, valid))
