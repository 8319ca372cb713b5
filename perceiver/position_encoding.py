"""Position encodings: Fourier features, learned tables and projections.

Glossary of shapes:
  B: batch size.  M: number of positions (flattened index dims).
  d: number of index dimensions (1 for audio/text, 2 for images, 3 for video).
  K: Fourier bands per dimension.  C: channels of the encoding.

[P] App. G; [code] position_encoding.py. Fourier features use K frequencies
spaced linearly from 1 to the Nyquist frequency res/2 of each dimension, on
positions in [-1, 1], as sin/cos(pi * f * x), plus the raw position. With
K=64 on a 2D grid that is 2 + 2*2*64 = 258 channels.
"""
import abc
import functools
from typing import Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from perceiver import checks
from perceiver import kernels


def generate_fourier_features(
    pos, num_bands, max_resolution=(224, 224), concat_pos=True,
    sine_only=False):
  """Fourier features of `pos`, as in [P] App. G.

  Args:
    pos: [M, d] positions, normally in [-1, 1].
    num_bands: K, the number of frequency bands per dimension.
    max_resolution: d resolutions; band k of dimension i has frequency
      linspace(1, max_resolution[i] / 2, K)[k].
    concat_pos: prepend the raw positions (adds d channels).
    sine_only: use sin only (d*K channels) instead of sin and cos (2*d*K).

  Returns:
    [M, C] features ordered [pos_1..pos_d, sin(all bands of dim 1), ...,
    sin(dim d), cos(dim 1), ..., cos(dim d)], the release's order.
  """
  pos = jnp.asarray(pos)
  if pos.ndim != 2 or pos.shape[-1] != len(max_resolution):
    raise ValueError(
        f'generate_fourier_features: pos must be [M, d] with d = '
        f'len(max_resolution) = {len(max_resolution)}; got shape {pos.shape}.')
  freq_bands = jnp.stack([
      jnp.linspace(1.0, res / 2, num=num_bands, endpoint=True)
      for res in max_resolution], axis=0)  # [d, K]
  per_pos = pos[:, :, None] * freq_bands[None, :, :]  # [M, d, K]
  per_pos = jnp.reshape(per_pos, [-1, int(np.prod(per_pos.shape[1:]))])
  if sine_only:
    features = jnp.sin(jnp.pi * per_pos)
  else:
    features = jnp.concatenate(
        [jnp.sin(jnp.pi * per_pos), jnp.cos(jnp.pi * per_pos)], axis=-1)
  if concat_pos:
    features = jnp.concatenate([pos, features], axis=-1)
  return features


def build_linear_positions(index_dims, output_range=(-1.0, 1.0)):
  """Grid of positions: [*index_dims, d], each axis linear over output_range."""
  axes = [jnp.linspace(output_range[0], output_range[1], num=n, endpoint=True,
                       dtype=jnp.float32) for n in index_dims]
  return jnp.stack(jnp.meshgrid(*axes, indexing='ij'), axis=-1)


def num_fourier_channels(num_dims: int, num_bands: int, concat_pos: bool = True,
                         sine_only: bool = False) -> int:
  """Channels produced by generate_fourier_features."""
  return num_dims * num_bands * (1 if sine_only else 2) + (
      num_dims if concat_pos else 0)


class AbstractPositionEncoding(hk.Module, metaclass=abc.ABCMeta):
  """A position encoding: `__call__(batch_size, pos)` -> [B, M, C]."""

  @abc.abstractmethod
  def __call__(self, batch_size, pos):
    raise NotImplementedError


class TrainablePositionEncoding(AbstractPositionEncoding):
  """A learned [M, C] table (truncated normal init), broadcast over batch."""

  @checks.keyword_arguments
  def __init__(self, index_dim, num_channels=128, init_scale=0.02, name=None):
    super().__init__(name=name)
    checks.positive('TrainablePositionEncoding', index_dim=index_dim,
                    num_channels=num_channels)
    self._index_dim = index_dim
    self._num_channels = num_channels
    self._init_scale = init_scale

  def __call__(self, batch_size, pos=None):
    del pos  # A learned table has no use for positions.
    pos_embs = hk.get_parameter(
        'pos_embs', [self._index_dim, self._num_channels],
        init=hk.initializers.TruncatedNormal(stddev=self._init_scale))
    if batch_size is not None:
      if kernels.enabled():
        return kernels.broadcast_batch(pos_embs, batch_size)
      pos_embs = jnp.broadcast_to(
          pos_embs[None, :, :], (batch_size,) + pos_embs.shape)
    return pos_embs


def _check_or_build_spatial_positions(pos, index_dims, batch_size):
  """Returns [B, M, d] positions: a linear grid, or the given `pos` checked."""
  if pos is None:
    pos = build_linear_positions(index_dims)
    pos = jnp.broadcast_to(pos[None], (batch_size,) + pos.shape)
    return jnp.reshape(pos, [batch_size, int(np.prod(index_dims)), -1])
  if pos.shape[-1] != len(index_dims):
    raise ValueError(
        f'pos has {pos.shape[-1]} coordinates per point but the encoding has '
        f'{len(index_dims)} index dims {tuple(index_dims)}; pass pos of shape '
        f'[B, M, {len(index_dims)}].')
  return pos


class FourierPositionEncoding(AbstractPositionEncoding):
  """Fourier features on a grid of `index_dims` (or at given positions)."""

  @checks.keyword_arguments
  def __init__(self, index_dims, num_bands, concat_pos=True,
               max_resolution=None, sine_only=False, name=None):
    super().__init__(name=name)
    checks.positive('FourierPositionEncoding', num_bands=num_bands)
    checks.positive_dims('FourierPositionEncoding', 'index_dims', index_dims)
    self._num_bands = num_bands
    self._concat_pos = concat_pos
    self._sine_only = sine_only
    self._index_dims = index_dims
    # Use the index dims as the maximum resolution if it's not provided.
    self._max_resolution = max_resolution or index_dims

  def __call__(self, batch_size, pos=None):
    build_ff = functools.partial(
        generate_fourier_features,
        num_bands=self._num_bands,
        max_resolution=self._max_resolution,
        concat_pos=self._concat_pos,
        sine_only=self._sine_only)
    if pos is None and kernels.enabled():
      # The grid is the same for every example: one [M, C] computation.
      grid = jnp.reshape(build_linear_positions(self._index_dims),
                         [int(np.prod(self._index_dims)), -1])
      features = build_ff(grid)
      return jnp.broadcast_to(features[None], (batch_size,) + features.shape)
    pos = _check_or_build_spatial_positions(pos, self._index_dims, batch_size)
    return jax.vmap(build_ff, 0, 0)(pos)


class PositionEncodingProjector(AbstractPositionEncoding):
  """Projects a base position encoding to `output_size` channels (Linear)."""

  @checks.keyword_arguments
  def __init__(self, output_size, base_position_encoding, name=None):
    super().__init__(name=name)
    self._output_size = output_size
    self._base_position_encoding = base_position_encoding

  def __call__(self, batch_size, pos=None):
    base_pos = self._base_position_encoding(batch_size, pos)
    return hk.Linear(output_size=self._output_size)(base_pos)


POSITION_ENCODING_TYPES = ('trainable', 'fourier')


@checks.keyword_arguments
def build_position_encoding(
    position_encoding_type: str,
    index_dims: Optional[Sequence[int]],
    project_pos_dim: int = -1,
    trainable_position_encoding_kwargs=None,
    fourier_position_encoding_kwargs=None,
    name=None):
  """Builds a 'trainable' or 'fourier' encoding, optionally projected."""
  if position_encoding_type == 'trainable':
    if trainable_position_encoding_kwargs is None:
      raise ValueError(
          "position_encoding_type='trainable' needs "
          'trainable_position_encoding_kwargs, e.g. dict(num_channels=256).')
    encoding = TrainablePositionEncoding(
        index_dim=int(np.prod(index_dims)), name=name,
        **trainable_position_encoding_kwargs)
  elif position_encoding_type == 'fourier':
    if fourier_position_encoding_kwargs is None:
      raise ValueError(
          "position_encoding_type='fourier' needs "
          'fourier_position_encoding_kwargs, e.g. dict(num_bands=64).')
    encoding = FourierPositionEncoding(
        index_dims=index_dims, name=name, **fourier_position_encoding_kwargs)
  else:
    raise ValueError(
        f'Unknown position_encoding_type {position_encoding_type!r}; expected '
        f'one of {POSITION_ENCODING_TYPES}.')
  if project_pos_dim > 0:
    encoding = PositionEncodingProjector(
        output_size=project_pos_dim, base_position_encoding=encoding)
  return encoding
