"""Pre- and post-processors that map modalities to and from Perceiver arrays.

Glossary of shapes:
  B: batch.  T: frames.  H, W: height and width.  C: channels.
  M: flattened input elements.  O: flattened outputs.  P: samples per patch.

[P] §3, Tables 5-6 and App. H/I; names and keyword arguments follow [code]
io_processors.py so that the parameter tree is the release's. Preprocessors
return (inputs [B, M, C], modality_sizes or None, inputs_without_pos).
"""
import functools
import math
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from perceiver import checks
from perceiver import kernels
from perceiver import position_encoding

ModalitySizeT = Mapping[str, int]
PreprocessorOutputT = Tuple[jax.Array, Optional[ModalitySizeT], Any]
PreprocessorT = Callable[..., PreprocessorOutputT]
PostprocessorT = Callable[..., Any]

CONCAT_OR_ADD = ('concat', 'add')


def _check_rank(inputs, ranks, what, layout):
  if inputs.ndim not in ranks:
    raise ValueError(f'{what} expects inputs of rank {" or ".join(map(str, ranks))}'
                     f' ({layout}); got shape {tuple(inputs.shape)}.')


def space_to_depth(frames, temporal_block_size=1, spatial_block_size=1):
  """Folds blocks into channels.

  [B, H, W, C] -> [B, H/s, W/s, s*s*C], or
  [B, T, H, W, C] -> [B, T/t, H/s, W/s, t*s*s*C]; the channel order is
  (dt, dh, dw, c), the release's.
  """
  _check_rank(frames, (4, 5), 'space_to_depth', '[B, H, W, C] or [B, T, H, W, C]')
  s, t = spatial_block_size, temporal_block_size
  if frames.ndim == 4:
    b, h, w, c = frames.shape
    _check_divisible({'H': (h, s), 'W': (w, s)}, 'spatial_block_size')
    x = frames.reshape(b, h // s, s, w // s, s, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // s, w // s, s * s * c)
  b, n, h, w, c = frames.shape
  _check_divisible({'T': (n, t)}, 'temporal_block_size')
  _check_divisible({'H': (h, s), 'W': (w, s)}, 'spatial_block_size')
  x = frames.reshape(b, n // t, t, h // s, s, w // s, s, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
  return x.reshape(b, n // t, h // s, w // s, t * s * s * c)


def reverse_space_to_depth(frames, temporal_block_size=1, spatial_block_size=1):
  """Inverse of space_to_depth."""
  _check_rank(frames, (4, 5), 'reverse_space_to_depth',
              '[B, H, W, C] or [B, T, H, W, C]')
  s, t = spatial_block_size, temporal_block_size
  if frames.ndim == 4:
    b, h, w, c = frames.shape
    _check_divisible({'C': (c, s * s)}, 'spatial_block_size**2')
    x = frames.reshape(b, h, w, s, s, c // (s * s))
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, c // (s * s))
  b, n, h, w, c = frames.shape
  _check_divisible({'C': (c, t * s * s)}, 'temporal_block_size*spatial_block_size**2')
  x = frames.reshape(b, n, h, w, t, s, s, c // (t * s * s))
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(b, n * t, h * s, w * s, c // (t * s * s))


def _check_divisible(dims, what):
  for name, (size, block) in dims.items():
    if size % block:
      raise ValueError(f'{name}={size} is not divisible by {what}={block}; '
                       'crop or pad the input to a multiple of it.')


def extract_patches(images, sizes, strides, rates, padding='VALID'):
  """tf.image.extract_patches for [B, H, W, C]: -> [B, h, w, ph*pw*C].

  Patches are laid out (ph, pw, c), as TensorFlow does. Built from strided
  slices, so it is exact on every backend (a convolution-based version is
  not under reduced-precision matmuls).
  """
  _check_rank(images, (4,), 'extract_patches', '[B, H, W, C]')
  for arg, value in (('sizes', sizes), ('strides', strides), ('rates', rates)):
    if len(value) != 4 or value[0] != 1 or value[3] != 1:
      raise ValueError(f'{arg} must be [1, rows, cols, 1]; got {value}.')
  if padding != 'VALID':
    raise ValueError(f"extract_patches supports padding='VALID' only; got "
                     f'{padding!r}. Pad the images yourself first.')
  _, height, width, _ = images.shape
  (ph, pw), (sh, sw), (rh, rw) = sizes[1:3], strides[1:3], rates[1:3]
  out_h = (height - (ph - 1) * rh - 1) // sh + 1
  out_w = (width - (pw - 1) * rw - 1) // sw + 1
  if out_h <= 0 or out_w <= 0:
    raise ValueError(f'Patches of size {sizes} with rates {rates} do not fit '
                     f'images of shape {tuple(images.shape)}.')
  pieces = []
  for i in range(ph):
    for j in range(pw):
      pieces.append(images[:, i * rh: i * rh + (out_h - 1) * sh + 1: sh,
                           j * rw: j * rw + (out_w - 1) * sw + 1: sw, :])
  patches = jnp.stack(pieces, axis=3)  # [B, h, w, ph*pw, C]
  return patches.reshape(patches.shape[:3] + (-1,))


def patches_for_flow(inputs):
  """[B, T, H, W, C] frames -> [B, T, H, W, 9*C] zero-padded 3x3 patches."""
  _check_rank(inputs, (5,), 'patches_for_flow', '[B, T, H, W, C]')

  def pad_and_extract(frames):
    padded = jnp.pad(frames, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return extract_patches(padded, sizes=[1, 3, 3, 1], strides=[1, 1, 1, 1],
                           rates=[1, 1, 1, 1], padding='VALID')

  return jax.vmap(pad_and_extract, in_axes=1, out_axes=1)(inputs)


#  ------------------------------------------------------------
#  -------------------  Up/down-sampling  ---------------------
#  ------------------------------------------------------------


class Conv2DDownsample(hk.Module):
  """Downsamples 4x per layer: 7x7 conv (stride 2), BatchNorm, ReLU, maxpool.

  [P] App. A "conv" ImageNet variant: 64 channels, BatchNorm (0.9, 1e-5).
  """

  @checks.keyword_arguments
  def __init__(self, num_layers: int = 1, num_channels: int = 64,
               use_batchnorm: bool = True,
               bn_config: Optional[Mapping[str, float]] = None,
               name: Optional[str] = None):
    super().__init__(name=name)
    bn_config = dict(bn_config or {})
    bn_config.setdefault('decay_rate', 0.9)
    bn_config.setdefault('eps', 1e-5)
    bn_config.setdefault('create_scale', True)
    bn_config.setdefault('create_offset', True)
    self.layers = []
    for _ in range(num_layers):
      conv = hk.Conv2D(output_channels=num_channels, kernel_shape=7, stride=2,
                       with_bias=False, padding='SAME', name='conv')
      batchnorm = (hk.BatchNorm(name='batchnorm', **bn_config)
                   if use_batchnorm else None)
      self.layers.append(dict(conv=conv, batchnorm=batchnorm))

  def __call__(self, inputs, *, is_training: bool,
               test_local_stats: bool = False):
    """[B, H, W, C] -> [B, H/4, W/4, num_channels] per layer."""
    out = inputs
    for layer in self.layers:
      out = layer['conv'](out)
      if layer['batchnorm'] is not None:
        out = layer['batchnorm'](out, is_training, test_local_stats)
      out = jax.nn.relu(out)
      out = hk.max_pool(out, window_shape=(1, 3, 3, 1), strides=(1, 2, 2, 1),
                        padding='SAME')
    return out


class FlowConvStem(hk.Module):
  """Per-pixel features that compare the two frames: dilated 3x3 convolutions.

  DEVIATION (not in [P] or the release; `builders.optical_flow(conv_stem=)`,
  off by default): the release's flow input is each pixel's 3x3 patches of
  both frames, so it sees motions of at most about one pixel before the
  attention pools the pixels. This stem stacks both frames' channels and
  applies `len(rates)` 3x3 convolutions with those dilation rates (ReLU),
  a receptive field of 1 + 2 * sum(rates) pixels, and its features are
  concatenated to the preprocessed inputs (so also to the decoder's
  queries). benchmarks/repro/FLOW.md measures it.
  """

  @checks.keyword_arguments
  def __init__(self, num_channels: int = 48,
               rates: Sequence[int] = (1, 2, 4, 8),
               name: str = 'flow_conv_stem'):
    super().__init__(name=name)
    checks.positive('FlowConvStem', num_channels=num_channels)
    if not rates or any(int(r) < 1 for r in rates):
      raise ValueError(f'FlowConvStem: rates={tuple(rates)} must be a '
                       'non-empty list of dilation rates >= 1.')
    self._num_channels = num_channels
    self._rates = tuple(int(r) for r in rates)

  def __call__(self, frames):
    """[B, 2, H, W, C] frame pair -> [B, H, W, num_channels]."""
    _check_rank(frames, (5,), 'FlowConvStem', '[B, 2, H, W, C]')
    x = jnp.concatenate([frames[:, 0], frames[:, 1]], axis=-1)
    for i, rate in enumerate(self._rates):
      x = jax.nn.relu(hk.Conv2D(self._num_channels, 3, rate=rate,
                                name=f'conv_{i}')(x))
    return x


class Conv2DUpsample(hk.Module):
  """Upsamples 4x with two stride-2 transposed convolutions."""

  @checks.keyword_arguments
  def __init__(self, n_outputs: int, name: Optional[str] = None):
    super().__init__(name=name)
    self.transp_conv1 = hk.Conv2DTranspose(
        output_channels=n_outputs * 2, kernel_shape=4, stride=2,
        with_bias=True, padding='SAME', name='transp_conv_1')
    self.transp_conv2 = hk.Conv2DTranspose(
        output_channels=n_outputs, kernel_shape=4, stride=2,
        with_bias=True, padding='SAME', name='transp_conv_2')

  def __call__(self, inputs, *, is_training: bool,
               test_local_stats: bool = False):
    out = jax.nn.relu(self.transp_conv1(inputs))
    return self.transp_conv2(out)


class Conv3DUpsample(hk.Module):
  """Upsamples video 2x per step in time and/or space (transposed 3D convs)."""

  @checks.keyword_arguments
  def __init__(self, n_outputs: int, n_time_upsamples: int = 2,
               n_space_upsamples: int = 4, name: Optional[str] = None):
    super().__init__(name=name)
    self._n_outputs = n_outputs
    self._n_time_upsamples = n_time_upsamples
    self._n_space_upsamples = n_space_upsamples

  def __call__(self, x, *, is_training: bool):
    n_upsamples = max(self._n_time_upsamples, self._n_space_upsamples)
    for i in range(n_upsamples):
      time_stride = 2 if i < self._n_time_upsamples else 1
      space_stride = 2 if i < self._n_space_upsamples else 1
      channels = self._n_outputs * pow(2, n_upsamples - 1 - i)
      x = hk.Conv3DTranspose(output_channels=channels,
                             stride=[time_stride, space_stride, space_stride],
                             kernel_shape=[4, 4, 4],
                             name=f'conv3d_transpose_{i}')(x)
      if i != n_upsamples - 1:
        x = jax.nn.relu(x)
    return x


#  ------------------------------------------------------------
#  ----------------------  Images  ----------------------------
#  ------------------------------------------------------------

IMAGE_PREP_TYPES = ('conv', 'patches', 'pixels', 'conv1x1')


def _check_concat_or_add(value):
  if value not in CONCAT_OR_ADD:
    raise ValueError(f'Invalid concat_or_add_pos {value!r}; expected one of '
                     f'{CONCAT_OR_ADD}.')


def _extra_pos_mlp(num_layers, pos_enc):
  """`n_extra_pos_mlp` residual Linear layers on the position features."""
  for i in range(num_layers):
    pos_enc += hk.Linear(pos_enc.shape[-1])(pos_enc)
    if i < num_layers - 1:
      pos_enc = jax.nn.relu(pos_enc)
  return pos_enc


def _combine(concat_or_add, inputs, pos_enc):
  if concat_or_add == 'concat':
    if kernels.enabled():
      return kernels.concat_channels(inputs, pos_enc)
    return jnp.concatenate([inputs, pos_enc.astype(inputs.dtype)], axis=-1)
  if inputs.shape[-1] != pos_enc.shape[-1]:
    raise ValueError(
        f"concat_or_add_pos='add' needs position features with the inputs' "
        f'{inputs.shape[-1]} channels; got {pos_enc.shape[-1]}. Set '
        'project_pos_dim to the input channels or use concat.')
  return inputs + pos_enc.astype(inputs.dtype)


class ImagePreprocessor(hk.Module):
  """Image/video preprocessing: featurise, then add position features.

  prep_type:
    'pixels': raw pixels (optionally strided); [P] ImageNet "2D FF".
    'conv1x1': a 1x1 conv to `num_channels`; [P] "learned pos".
    'conv': Conv2DDownsample (4x per layer); [P] "conv".
    'patches': space_to_depth, optionally a Linear (`conv_after_patching`);
      optical flow and video autoencoding.
  """

  @checks.keyword_arguments(
      forwards_to=position_encoding.build_position_encoding,
      bound=('position_encoding_type', 'index_dims'))
  def __init__(
      self,
      prep_type='conv',
      spatial_downsample: int = 4,
      temporal_downsample: int = 1,
      position_encoding_type: str = 'fourier',
      n_extra_pos_mlp: int = 0,
      num_channels: int = 64,
      conv_after_patching: bool = False,
      conv2d_use_batchnorm: bool = True,
      concat_or_add_pos: str = 'concat',
      name: Optional[str] = None,
      **position_encoding_kwargs):
    super().__init__(name=name)
    if prep_type not in IMAGE_PREP_TYPES:
      raise ValueError(f'Invalid prep_type {prep_type!r}; expected one of '
                       f'{IMAGE_PREP_TYPES}.')
    _check_concat_or_add(concat_or_add_pos)
    checks.positive('ImagePreprocessor', spatial_downsample=spatial_downsample,
                    temporal_downsample=temporal_downsample,
                    num_channels=num_channels)
    if position_encoding_type not in position_encoding.POSITION_ENCODING_TYPES:
      raise ValueError(
          f'Unknown position_encoding_type {position_encoding_type!r}; '
          f'expected one of {position_encoding.POSITION_ENCODING_TYPES}.')
    self._prep_type = prep_type
    self._spatial_downsample = spatial_downsample
    self._temporal_downsample = temporal_downsample
    self._concat_or_add_pos = concat_or_add_pos
    self._conv_after_patching = conv_after_patching
    self._num_channels = num_channels

    if prep_type == 'conv':
      num_layers = math.log(spatial_downsample, 4)
      if num_layers != round(num_layers) or temporal_downsample != 1:
        raise ValueError(
            "prep_type='conv' downsamples by powers of 4 in space and not in "
            f'time; got spatial_downsample={spatial_downsample}, '
            f'temporal_downsample={temporal_downsample}.')
      self.convnet = Conv2DDownsample(num_layers=int(round(num_layers)),
                                      num_channels=num_channels,
                                      use_batchnorm=conv2d_use_batchnorm)
    elif prep_type == 'conv1x1':
      if temporal_downsample != 1:
        raise ValueError("prep_type='conv1x1' does not downsample in time; "
                         'set temporal_downsample=1.')
      self.convnet_1x1 = hk.Conv2D(
          num_channels, kernel_shape=[1, 1],
          # spatial_downsample is unconstrained for 1x1 convolutions.
          stride=[spatial_downsample, spatial_downsample])

    # Built once the input size is known (in _build_network_inputs).
    self._positional_encoding_ctor = functools.partial(
        position_encoding.build_position_encoding,
        position_encoding_type=position_encoding_type,
        **position_encoding_kwargs)
    self._n_extra_pos_mlp = n_extra_pos_mlp

  def _build_network_inputs(self, inputs, pos, network_input_is_1d=True):
    """Adds position features; returns (with_pos, without_pos)."""
    batch_size = inputs.shape[0]
    index_dims = inputs.shape[1:-1]
    if inputs.ndim > 3 and network_input_is_1d:
      inputs = jnp.reshape(inputs, [batch_size, int(np.prod(index_dims)), -1])
    pos_enc = self._positional_encoding_ctor(index_dims=index_dims)(
        batch_size=batch_size, pos=pos)
    pos_enc = _extra_pos_mlp(self._n_extra_pos_mlp, pos_enc)
    if not network_input_is_1d:
      pos_enc = jnp.reshape(pos_enc, list(inputs.shape)[:-1] + [-1])
    return _combine(self._concat_or_add_pos, inputs, pos_enc), inputs

  def __call__(self, inputs, *, is_training: bool, pos=None,
               network_input_is_1d: bool = True) -> PreprocessorOutputT:
    """[B, H, W, C] or [B, T, H, W, C] -> ([B, M, C'], None, without_pos)."""
    _check_rank(inputs, (4, 5), f'ImagePreprocessor({self._prep_type!r})',
                '[B, H, W, C] or [B, T, H, W, C]')
    if self._prep_type == 'conv':
      conv = self.convnet
      if inputs.ndim == 5:
        conv = hk.BatchApply(conv)
      inputs = conv(inputs, is_training=is_training)
    elif self._prep_type == 'conv1x1':
      conv = self.convnet_1x1
      if inputs.ndim == 5:
        conv = hk.BatchApply(conv)
      inputs = conv(inputs)
    elif self._prep_type == 'patches':
      inputs = space_to_depth(inputs,
                              temporal_block_size=self._temporal_downsample,
                              spatial_block_size=self._spatial_downsample)
      if inputs.ndim == 5 and inputs.shape[1] == 1:
        inputs = jnp.squeeze(inputs, axis=1)  # Flow: both frames merged.
      if self._conv_after_patching:
        inputs = hk.Linear(self._num_channels, name='patches_linear')(inputs)
    else:  # pixels; downsamples in the crudest way if requested.
      s, t = self._spatial_downsample, self._temporal_downsample
      if inputs.ndim == 4:
        inputs = inputs[:, ::s, ::s]
      else:
        inputs = inputs[:, ::t, ::s, ::s]
    inputs, inputs_without_pos = self._build_network_inputs(
        inputs, pos, network_input_is_1d)
    return inputs, None, inputs_without_pos


IMAGE_POSTPROC_TYPES = ('conv', 'patches', 'pixels', 'raft', 'conv1x1')


class ImagePostprocessor(hk.Module):
  """Image postprocessing.

  'raft' is the paper's RAFT-style convex upsampling ([P] App. H, "conv+RAFT"
  flow variant), which the release declares but never builds. From each
  coarse feature vector it predicts the coarse output (Linear -> n_outputs)
  and, for each of the s*s fine pixels it covers, softmax weights over its
  3x3 coarse neighbourhood; a fine pixel is the weighted average of the
  neighbours' coarse outputs times s (flow is measured in pixels, so it
  scales with resolution). DEVIATION: RAFT predicts the weights with a
  3x3-conv head; here both heads are position-wise Linears, since the
  Perceiver decoder output already mixes spatial context.
  """

  @checks.keyword_arguments
  def __init__(self, postproc_type: str = 'pixels', spatial_upsample: int = 1,
               temporal_upsample: int = 1, n_outputs: int = -1,
               input_reshape_size: Optional[Sequence[int]] = None,
               name: Optional[str] = None):
    super().__init__(name=name)
    if postproc_type not in IMAGE_POSTPROC_TYPES:
      raise ValueError(f'Invalid postproc_type {postproc_type!r}; expected one '
                       f'of {IMAGE_POSTPROC_TYPES}.')
    self._postproc_type = postproc_type
    self._temporal_upsample = temporal_upsample
    self._spatial_upsample = spatial_upsample
    self._input_reshape_size = input_reshape_size
    self._n_outputs = n_outputs
    if postproc_type in ('conv1x1', 'conv', 'raft') and n_outputs == -1:
      raise ValueError(f'postproc_type={postproc_type!r} needs n_outputs.')
    if postproc_type == 'pixels':
      if temporal_upsample != 1 or spatial_upsample != 1:
        raise ValueError('Pixels postprocessing should not upsample.')
    elif postproc_type == 'conv1x1':
      if temporal_upsample != 1:
        raise ValueError('conv1x1 does not upsample in time.')
      self.conv1x1 = hk.Conv2D(
          n_outputs, kernel_shape=[1, 1],
          stride=[spatial_upsample, spatial_upsample])
    elif postproc_type == 'conv':
      if temporal_upsample != 1:
        def int_log2(x):
          return int(np.round(np.log(x) / np.log(2)))
        self.convnet = Conv3DUpsample(n_outputs, int_log2(temporal_upsample),
                                      int_log2(spatial_upsample))
      else:
        self.convnet = Conv2DUpsample(n_outputs)
    elif postproc_type == 'raft' and temporal_upsample != 1:
      raise ValueError("postproc_type='raft' upsamples in space only.")

  def __call__(self, inputs, *, is_training: bool, pos=None,
               modality_sizes: Optional[ModalitySizeT] = None):
    if self._input_reshape_size is not None:
      inputs = jnp.reshape(inputs, [inputs.shape[0]] +
                           list(self._input_reshape_size) + [inputs.shape[-1]])
    if self._postproc_type == 'conv':
      conv = self.convnet
      if inputs.ndim == 5 and self._temporal_upsample == 1:
        conv = hk.BatchApply(conv)
      inputs = conv(inputs, is_training=is_training)
    elif self._postproc_type == 'raft':
      inputs = self._convex_upsample(inputs)
    elif self._postproc_type == 'conv1x1':
      inputs = self.conv1x1(inputs)
    elif self._postproc_type == 'patches':
      inputs = reverse_space_to_depth(inputs, self._temporal_upsample,
                                      self._spatial_upsample)
    return inputs

  @hk.transparent
  def _convex_upsample(self, features):
    """[B, h, w, C] coarse features -> [B, h*s, w*s, n_outputs]."""
    _check_rank(features, (4,), "ImagePostprocessor('raft')", '[B, h, w, C]')
    b, h, w, _ = features.shape
    s = self._spatial_upsample
    coarse = hk.Linear(self._n_outputs, name='coarse_linear')(features)
    logits = hk.Linear(s * s * 9, name='mask_linear')(features)
    weights = jax.nn.softmax(
        logits.astype(jnp.float32).reshape(b, h, w, s, s, 9), axis=-1)
    # The 3x3 neighbourhood of every coarse pixel, zero-padded at the border.
    padded = jnp.pad(coarse * s, [[0, 0], [1, 1], [1, 1], [0, 0]])
    neighbours = extract_patches(padded, [1, 3, 3, 1], [1, 1, 1, 1],
                                 [1, 1, 1, 1]).reshape(b, h, w, 9, -1)
    fine = jnp.einsum('bhwijk,bhwkc->bhiwjc', weights.astype(coarse.dtype),
                      neighbours)
    return fine.reshape(b, h * s, w * s, self._n_outputs)


#  ------------------------------------------------------------
#  -------------------  Audio, labels  ------------------------
#  ------------------------------------------------------------


class OneHotPreprocessor(hk.Module):
  """[B, num_classes] one-hot labels -> a single input element [B, 1, C]."""

  @checks.keyword_arguments
  def __init__(self, name: Optional[str] = None):
    super().__init__(name=name)

  def __call__(self, inputs, *, is_training: bool, pos=None,
               network_input_is_1d: bool = True) -> PreprocessorOutputT:
    _check_rank(inputs, (2,), 'OneHotPreprocessor', '[B, num_classes]')
    inputs = inputs[:, None, :]
    # No position features, so inputs and inputs_without_pos are the same.
    return inputs, None, inputs


class AudioPreprocessor(hk.Module):
  """Raw audio -> patches of `samples_per_patch` samples + position features."""

  @checks.keyword_arguments(
      forwards_to=position_encoding.build_position_encoding,
      bound=('position_encoding_type', 'index_dims'))
  def __init__(self, prep_type: str = 'patches', samples_per_patch: int = 96,
               position_encoding_type: str = 'fourier',
               n_extra_pos_mlp: int = 0, concat_or_add_pos: str = 'concat',
               name: Optional[str] = None, **position_encoding_kwargs):
    super().__init__(name=name)
    if prep_type not in ('patches',):
      raise ValueError(f"Invalid prep_type {prep_type!r}; expected 'patches'.")
    _check_concat_or_add(concat_or_add_pos)
    checks.positive('AudioPreprocessor', samples_per_patch=samples_per_patch)
    self._samples_per_patch = samples_per_patch
    self._concat_or_add_pos = concat_or_add_pos
    self._positional_encoding_ctor = functools.partial(
        position_encoding.build_position_encoding,
        position_encoding_type=position_encoding_type,
        **position_encoding_kwargs)
    self._n_extra_pos_mlp = n_extra_pos_mlp

  def _build_network_inputs(self, inputs, pos):
    batch_size = inputs.shape[0]
    index_dims = inputs.shape[1:-1]
    pos_enc = self._positional_encoding_ctor(index_dims=index_dims)(
        batch_size=batch_size, pos=pos)
    pos_enc = _extra_pos_mlp(self._n_extra_pos_mlp, pos_enc)
    return _combine(self._concat_or_add_pos, inputs, pos_enc), inputs

  def __call__(self, inputs, *, is_training: bool, pos=None,
               network_input_is_1d: bool = True) -> PreprocessorOutputT:
    """[B, N] or [B, N, 1] mono samples -> ([B, N/P, P + pos], None, ...)."""
    _check_rank(inputs, (2, 3), 'AudioPreprocessor', '[B, N] or [B, N, 1]')
    if inputs.ndim == 3 and inputs.shape[-1] != 1:
      raise ValueError(
          f'AudioPreprocessor expects mono audio [B, N, 1]; got '
          f'{inputs.shape[-1]} channels. Select one channel, e.g. audio[..., 0:1].')
    if inputs.shape[1] % self._samples_per_patch:
      raise ValueError(
          f'The number of audio samples ({inputs.shape[1]}) must be divisible '
          f'by samples_per_patch ({self._samples_per_patch}).')
    inputs = jnp.reshape(inputs, [inputs.shape[0], -1, self._samples_per_patch])
    inputs, inputs_without_pos = self._build_network_inputs(inputs, pos)
    return inputs, None, inputs_without_pos


class AudioPostprocessor(hk.Module):
  """[B, O, C] -> [B, O * samples_per_patch] samples (Linear per patch)."""

  @checks.keyword_arguments
  def __init__(self, postproc_type: str = 'patches',
               samples_per_patch: int = 96, name: Optional[str] = None):
    super().__init__(name=name)
    if postproc_type not in ('patches',):
      raise ValueError(
          f"Invalid postproc_type {postproc_type!r}; expected 'patches'.")
    self._samples_per_patch = samples_per_patch
    self._postproc_type = postproc_type

  def __call__(self, inputs, *, is_training: bool, pos=None,
               modality_sizes: Optional[ModalitySizeT] = None):
    out = hk.Linear(self._samples_per_patch)(inputs)
    return jnp.reshape(out, [inputs.shape[0], -1])


class IdentityPostprocessor(hk.Module):
  """Passes its inputs through unchanged."""

  @checks.keyword_arguments
  def __init__(self, name: Optional[str] = None):
    super().__init__(name=name)

  def __call__(self, inputs, *, is_training: bool, pos=None,
               modality_sizes: Optional[ModalitySizeT] = None):
    return inputs


#  ------------------------------------------------------------
#  ---------------------  Multimodal  -------------------------
#  ------------------------------------------------------------


def restructure(modality_sizes: ModalitySizeT, inputs):
  """Splits [B, M, C] into {modality: [B, M_modality, C]}, sorted by name."""
  total = sum(modality_sizes.values())
  if inputs.shape[1] != total:
    raise ValueError(f'restructure: modality sizes {dict(modality_sizes)} sum '
                     f'to {total} but the inputs have {inputs.shape[1]} '
                     'elements.')
  outputs, index = {}, 0
  for modality in sorted(modality_sizes):
    size = modality_sizes[modality]
    outputs[modality] = inputs[:, index:index + size]
    index += size
  return outputs


class MultimodalPreprocessor(hk.Module):
  """Preprocesses each modality, pads them to one width, concatenates.

  [P] §4.3: each modality is padded with a learned per-modality vector to
  max channels + `min_padding_size`; with `mask_probs`, each element of a
  modality is replaced by a learned mask token with that probability.
  `masks` ({modality: [B, M_modality] bool}, beyond the release) gives the
  masked elements explicitly instead of drawing them, so that a training
  loop can draw them from its data stream (for instance per example,
  independently of how the batch is split over devices).
  """

  @checks.keyword_arguments
  def __init__(self, modalities: Mapping[str, PreprocessorT],
               mask_probs: Optional[Mapping[str, float]] = None,
               min_padding_size: int = 2, name: Optional[str] = None):
    super().__init__(name=name)
    self._modalities = modalities
    self._min_padding_size = min_padding_size
    self._mask_probs = mask_probs
    if mask_probs is not None and set(mask_probs) != set(modalities):
      raise ValueError(f'mask_probs keys {sorted(mask_probs)} must match the '
                       f'modalities {sorted(modalities)}.')

  def __call__(self, inputs, *, is_training: bool, pos=None,
               network_input_is_1d: bool = True,
               masks: Optional[Mapping[str, jax.Array]] = None
               ) -> PreprocessorOutputT:
    if not isinstance(inputs, Mapping) or set(inputs) != set(self._modalities):
      got = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs)
      raise ValueError(f'MultimodalPreprocessor expects a dict with keys '
                       f'{sorted(self._modalities)}; got {got}.')
    masks = dict(masks or {})
    if masks and (self._mask_probs is None or set(masks) - set(inputs)):
      raise ValueError(
          f'masks for {sorted(masks)} need mask_probs (the mask tokens) and '
          f'modalities among {sorted(self._modalities)}.')
    outputs, inputs_without_pos = {}, {}
    for modality, preprocessor in self._modalities.items():
      outputs[modality], _, inputs_without_pos[modality] = preprocessor(
          inputs[modality], is_training=is_training, pos=pos,
          network_input_is_1d=network_input_is_1d)
    batch_sizes = {o.shape[0] for o in outputs.values()}
    if len(batch_sizes) != 1:
      raise ValueError(f'All modalities must share the batch size; got '
                       f'{ {m: o.shape[0] for m, o in outputs.items()} }.')
    common_channels = (max(o.shape[2] for o in outputs.values())
                       + self._min_padding_size)
    padded, modality_sizes = {}, {}
    for modality, output in outputs.items():
      pad_enc = position_encoding.TrainablePositionEncoding(
          1, num_channels=common_channels - output.shape[2], init_scale=0.02,
          name=f'{modality}_padding')
      padding = jnp.broadcast_to(
          pad_enc(batch_size=output.shape[0]),
          [output.shape[0], output.shape[1], common_channels - output.shape[2]])
      output_padded = jnp.concatenate(
          [output, padding.astype(output.dtype)], axis=2)
      if self._mask_probs is not None:
        mask_token = position_encoding.TrainablePositionEncoding(
            1, num_channels=output_padded.shape[2], init_scale=0.02,
            name=f'{modality}_mask_token')(output.shape[0])
        shape = (output.shape[0], output.shape[1])
        if modality in masks:
          # The key the release draws for this mask, drawn and unused, so
          # that every later draw (initializers) gets the release's key.
          hk.maybe_next_rng_key()
          mask = masks[modality]
          if tuple(mask.shape) != shape:
            raise ValueError(f'masks[{modality!r}] must be [B, M] = {shape} '
                             f'bool; got shape {tuple(mask.shape)}.')
        else:
          mask = _bernoulli_mask(self._mask_probs[modality], shape)
        mask = jnp.expand_dims(mask, axis=2).astype(output_padded.dtype)
        output_padded = (1 - mask) * output_padded + mask * mask_token
      padded[modality] = output_padded
      modality_sizes[modality] = output_padded.shape[1]
    concatenated = jnp.concatenate([padded[k] for k in sorted(padded)], axis=1)
    return concatenated, modality_sizes, inputs_without_pos


def _bernoulli_mask(prob, shape):
  """Bernoulli(prob) mask, drawing a key whenever an RNG is available.

  The release draws `hk.next_rng_key()` here for every modality, so the same
  draw keeps the key sequence (and every initializer after it) the
  release's. p = 0 and p = 1 give the release's (deterministic) mask without
  computing it, and need no RNG: evaluation may pass rng=None.
  """
  key = hk.maybe_next_rng_key()
  if prob == 0:
    return jnp.zeros(shape, dtype=bool)
  if prob == 1:
    return jnp.ones(shape, dtype=bool)
  if key is None:
    raise ValueError(
        f'Masking with probability {prob} needs an RNG: pass rng to apply, '
        'or use mask probabilities of 0 or 1.')
  return jax.random.bernoulli(key, prob, shape=shape)


class MultimodalPostprocessor(hk.Module):
  """Applies one postprocessor per modality to its slice of the output."""

  @checks.keyword_arguments
  def __init__(self, modalities: Mapping[str, PostprocessorT],
               input_is_dict: bool = False, name: Optional[str] = None):
    super().__init__(name=name)
    self._modalities = modalities
    self._input_is_dict = input_is_dict

  def __call__(self, inputs, *, is_training: bool, pos=None,
               modality_sizes: Optional[ModalitySizeT] = None):
    if not self._input_is_dict:
      if modality_sizes is None:
        raise ValueError('MultimodalPostprocessor needs modality_sizes to '
                         'split its input (or input_is_dict=True).')
      inputs = restructure(modality_sizes=modality_sizes, inputs=inputs)
    return {modality: postprocessor(inputs[modality], is_training=is_training,
                                    pos=pos, modality_sizes=None)
            for modality, postprocessor in self._modalities.items()}


class ClassificationPostprocessor(hk.Module):
  """[B, 1, C] -> [B, num_classes] logits."""

  @checks.keyword_arguments
  def __init__(self, num_classes: int, name: Optional[str] = None):
    super().__init__(name=name)
    checks.positive('ClassificationPostprocessor', num_classes=num_classes)
    self._num_classes = num_classes

  def __call__(self, inputs, *, is_training: bool, pos=None,
               modality_sizes: Optional[ModalitySizeT] = None):
    logits = hk.Linear(self._num_classes)(inputs)
    return logits[:, 0, :]


class ProjectionPostprocessor(hk.Module):
  """[B, O, C] -> [B, O, num_outputs] with a Linear."""

  @checks.keyword_arguments
  def __init__(self, num_outputs: int, name: Optional[str] = None):
    super().__init__(name=name)
    self._num_outputs = num_outputs

  def __call__(self, inputs, *, is_training: bool, pos=None,
               modality_sizes: Optional[ModalitySizeT] = None):
    return hk.Linear(self._num_outputs)(inputs)


class EmbeddingDecoder(hk.Module):
  """Logits from the tied input embedding: x . E^T + bias ([code] MLM)."""

  @checks.keyword_arguments
  def __init__(self, embedding_matrix, name='embedding_decoder'):
    super().__init__(name=name)
    self._embedding_matrix = embedding_matrix  # [vocab, d_model]
    self._vocab_size, self._d_model = embedding_matrix.shape

  def __call__(self, embeddings):
    """[B, T, d_model] -> [B, T, vocab]."""
    batch_size, seq_len, _ = embeddings.shape
    # The fast kernels' product accumulates bfloat16 in float32; in
    # float32 it is the release's.
    matmul = kernels.matmul if kernels.enabled() else jnp.matmul
    output = matmul(embeddings.reshape([-1, self._d_model]),
                    jnp.transpose(self._embedding_matrix))
    bias = hk.get_parameter('bias', shape=[self._vocab_size], init=jnp.zeros)
    output = output + bias
    return output.reshape([batch_size, seq_len, self._vocab_size])
