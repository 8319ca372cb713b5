"""Primitives against the release (tests/golden_data/primitives.npz)."""
import os

import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import bytes_tokenizer
from perceiver import io_processors
from perceiver import perceiver
from perceiver import position_encoding
from tests import golden

TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope='module')
def prims():
  return np.load(os.path.join(golden.GOLDEN_DIR, 'primitives.npz'))


def test_fourier_features(prims):
  pos = prims['input:pos']
  out = position_encoding.generate_fourier_features(
      pos, num_bands=5, max_resolution=(16, 12))
  np.testing.assert_allclose(out, prims['output:fourier_concat'], **TOL)
  out = position_encoding.generate_fourier_features(
      pos, num_bands=5, max_resolution=(16, 12), concat_pos=False,
      sine_only=True)
  np.testing.assert_allclose(out, prims['output:fourier_sine_only'], **TOL)
  assert position_encoding.num_fourier_channels(2, 5) == 22
  assert position_encoding.num_fourier_channels(2, 64) == 258  # [P] App. G


def test_linear_positions(prims):
  np.testing.assert_allclose(position_encoding.build_linear_positions((3, 4)),
                             prims['output:linear_positions_3x4'], **TOL)


def test_space_to_depth_and_inverse(prims):
  image, video = prims['input:image'], prims['input:video']
  out = io_processors.space_to_depth(image, spatial_block_size=2)
  np.testing.assert_array_equal(out, prims['output:space_to_depth_2'])
  out_v = io_processors.space_to_depth(video, temporal_block_size=2,
                                       spatial_block_size=2)
  np.testing.assert_array_equal(out_v, prims['output:space_to_depth_t2_s2'])
  np.testing.assert_array_equal(
      io_processors.reverse_space_to_depth(out, spatial_block_size=2), image)
  np.testing.assert_array_equal(
      io_processors.reverse_space_to_depth(out_v, 2, 2), video)


def test_patches_for_flow(prims):
  expected = prims['output:patches_for_flow']  # [2, 2, 6, 7, 27]
  # The frames were not stored; the centre of each 3x3 patch (position 4 in
  # the (ph, pw, c) layout) is the pixel itself, so they can be recovered.
  images = expected[..., 12:15]
  out = io_processors.patches_for_flow(jnp.asarray(images))
  np.testing.assert_array_equal(out, expected)
  # The border is zero-padded: the top-left neighbour of pixel (0, 0).
  np.testing.assert_array_equal(out[:, :, 0, 0, 0:3], 0.0)


def test_masked_attend(prims):
  out = perceiver.attend(prims['input:q'], prims['input:k'], prims['input:v'],
                         attention_mask=prims['input:attention_mask'])
  np.testing.assert_allclose(out, prims['output:attend_masked'], **TOL)


def test_bytes_tokenizer(prims):
  tok = bytes_tokenizer.BytesTokenizer()
  ids = tok.to_int('Perceiver IO \u2713 bytes')
  np.testing.assert_array_equal(ids, prims['output:bytes_tokens'])
  assert ids.dtype == np.int32
  assert tok.vocab_size == 262
  assert tok.to_string(np.concatenate([[tok.cls_token], ids, [tok.pad_token]])
                       ) == 'Perceiver IO \u2713 bytes'
