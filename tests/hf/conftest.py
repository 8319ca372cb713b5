"""Fixtures for the transformers export tests: one tiny model per family.

Each tiny model keeps what transformers' class hard-wires (Fourier bands and
resolutions, 256-channel learned inputs, the MLM decoder's 8 heads and 256
qk channels) and shrinks everything else: N = 4 latents of D = 32 channels,
8x8 images, 12 tokens, 6x8 flow frames, 2 frames of 8x8 video. Parameters
are random (normal, Linear weights scaled by 1/sqrt(fan_in) so activations
stay O(1); no zero-initialised layer), built from `jax.eval_shape` of the
model's init: the real init would compile dozens of tiny programs.
"""
import copy
import dataclasses
import functools
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver.hf import parity
from perceiver.hf import specs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

_ENC = dict(num_self_attends_per_block=2, num_blocks=2, z_index_dim=4,
            num_z_channels=32, num_cross_attend_heads=1,
            num_self_attend_heads=4, cross_attend_widening_factor=1,
            self_attend_widening_factor=1, use_query_residual=True,
            cross_attention_shape_for_attn='kv')
_CLASS_DEC = dict(num_z_channels=32, position_encoding_type='trainable',
                  trainable_position_encoding_kwargs=dict(init_scale=0.02,
                                                          num_channels=32),
                  use_query_residual=True)


def _fourier(res):
  return dict(concat_pos=True, max_resolution=list(res), num_bands=64,
              sine_only=False)


TINY = {
    'language_mlm': dict(
        builder='mlm', vocab_size=262, d_model=16, max_seq_len=12,
        encoder=dict(_ENC, num_blocks=1, num_cross_attend_heads=2,
                     qk_channels=16, v_channels=32),
        decoder=dict(output_num_channels=32, position_encoding_type='trainable',
                     output_index_dims=12, num_z_channels=32, qk_channels=256,
                     v_channels=16, num_heads=8, final_project=False,
                     use_query_residual=False,
                     trainable_position_encoding_kwargs=dict(num_channels=16))),
    'imagenet_fourier': dict(
        builder='image_classifier', num_classes=5, config=dict(
            input_preprocessor=dict(prep_type='pixels', spatial_downsample=1,
                                    position_encoding_type='fourier',
                                    fourier_position_encoding_kwargs=_fourier(
                                        (224, 224))),
            encoder=_ENC, decoder=_CLASS_DEC)),
    'imagenet_learned': dict(
        builder='image_classifier', num_classes=5, config=dict(
            input_preprocessor=dict(
                prep_type='conv1x1', spatial_downsample=1, num_channels=256,
                position_encoding_type='trainable', project_pos_dim=256,
                concat_or_add_pos='concat',
                trainable_position_encoding_kwargs=dict(init_scale=0.02,
                                                        num_channels=256)),
            encoder=_ENC, decoder=_CLASS_DEC)),
    'imagenet_conv': dict(
        builder='image_classifier', num_classes=5, config=dict(
            input_preprocessor=dict(prep_type='conv',
                                    position_encoding_type='fourier',
                                    fourier_position_encoding_kwargs=_fourier(
                                        (56, 56))),
            encoder=_ENC, decoder=_CLASS_DEC)),
    'optical_flow': dict(
        builder='optical_flow', flow_scale_factor=20,
        input_preprocessor=dict(
            prep_type='patches', spatial_downsample=1, temporal_downsample=2,
            conv_after_patching=True, position_encoding_type='fourier',
            n_extra_pos_mlp=0, fourier_position_encoding_kwargs=_fourier(
                (6, 8))),
        encoder=dict(_ENC, num_blocks=1),
        decoder=dict(output_image_shape=[6, 8], rescale_factor=100.0,
                     use_query_residual=False, output_num_channels=2,
                     output_w_init='zeros', position_encoding_type='fourier',
                     fourier_position_encoding_kwargs=_fourier((6, 8)))),
    'video_autoencoding': dict(
        builder='video_autoencoder', num_frames=2, image_size=8,
        fourier_image_resolution=4, audio_samples_per_frame=16,
        samples_per_patch=4, num_classes=5, z_index_dim=4, num_z_channels=32,
        num_self_attends_per_block=1, decoder_channels=16,
        audio_num_bands=192, image_num_bands=32),
}
FAMILIES = tuple(TINY)
EXACT_FAMILIES = tuple(f for f in FAMILIES if f != 'imagenet_conv')
# Images: 16x16 for conv (4x4 features after the 4x downsampling).
IMAGE_SHAPES = {'imagenet_fourier': (8, 8), 'imagenet_learned': (4, 4),
                'imagenet_conv': (16, 16)}


def tiny_spec(family: str) -> dict[str, Any]:
  return copy.deepcopy(TINY[family])


def _random_leaf(rng, name: str, shape, dtype):
  if name == 'counter':
    return np.full(shape, 7, dtype)
  if name == 'scale':  # LayerNorm / BatchNorm scale
    return (1 + 0.1 * rng.standard_normal(shape)).astype(dtype)
  if name == 'w':
    fan_in = math.prod(shape[:-1])
    return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(dtype)
  if name in ('average', 'hidden'):  # BatchNorm moving statistics > 0
    return rng.uniform(0.5, 1.5, shape).astype(dtype)
  return (0.5 * rng.standard_normal(shape)).astype(dtype)


def random_params(spec, inputs, seed: int = 0):
  """(params, state) of `spec`'s model: random numpy, release layout."""
  model, names = specs.build(spec)
  init = functools.partial(model.init, is_training=True)
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0),
                          *[jnp.asarray(inputs[n]) for n in names])
  rng = np.random.default_rng(seed)
  return tuple({m: {n: _random_leaf(rng, n, s.shape, s.dtype)
                    for n, s in leaves.items()}
                for m, leaves in tree.items()} for tree in shapes)


@dataclasses.dataclass
class Case:
  """One tiny family exported to a transformers directory."""
  family: str
  spec: dict[str, Any]
  params: dict
  state: dict
  inputs: dict  # our layout, batch 2
  directory: str
  exported: Any  # perceiver.hf.export.Exported

  @functools.cached_property
  def ours(self) -> dict[str, np.ndarray]:
    """Our model's outputs on `inputs` (computed once)."""
    return parity.run_ours(self.spec, self.params, self.state, self.inputs)


@pytest.fixture(scope='session')
def hf_case(tmp_path_factory):
  """Factory: family -> Case, built and exported once per session."""
  from perceiver.hf import export  # pylint: disable=g-import-not-at-top
  cache = {}

  def get(family: str) -> Case:
    if family not in cache:
      spec = tiny_spec(family)
      inputs = parity.random_inputs(spec, batch=2, seed=1,
                                    image_shape=IMAGE_SHAPES.get(family))
      params, state = random_params(spec, inputs)
      directory = str(tmp_path_factory.mktemp('hf') / family)
      exported = export.export(spec, params, state, directory, verify=False,
                               allow_inexact=family == 'imagenet_conv')
      cache[family] = Case(family, spec, params, state, inputs, directory,
                           exported)
    return cache[family]

  return get
