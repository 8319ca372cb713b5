"""Optical flow: tiled inference and the RAFT convex-upsampling postprocessor."""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import builders
from perceiver import io_processors
from tests import golden


def test_tile_weights_are_edge_distance_plus_one():
  np.testing.assert_array_equal(
      builders.tile_weights((3, 5)),
      [[1, 1, 1, 1, 1], [1, 2, 2, 2, 1], [1, 1, 1, 1, 1]])


def test_tile_origins_cover_the_image_like_the_colab():
  # Sintel frames, 436 x 1024, with 368 x 496 tiles: 2 x 3 tiles.
  origins = builders.flow_tile_origins((436, 1024), (368, 496), 20)
  assert origins == [(0, 0), (0, 476), (0, 528), (68, 0), (68, 476),
                     (68, 528)]


def test_tiled_flow_stitches_tiles_in_place():
  """A 'model' that returns its tile's own pixels must give the image back."""
  rng = np.random.RandomState(0)
  images = rng.uniform(-1, 1, (2, 2, 29, 41, 3)).astype(np.float32)
  out = builders.tiled_flow(lambda tile: tile[:, 0, :, :, :2], images,
                            patch_size=(12, 16), min_overlap=5)
  np.testing.assert_allclose(out, images[:, 0, :, :, :2], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_tiled_flow_with_the_tiny_release_model():
  spec = golden.load_json('optical_flow_tiny')
  params, state, inputs, outputs = golden.load_npz('optical_flow_tiny')
  model, _ = golden.build(spec)
  apply = jax.jit(functools.partial(model.apply, params, state, None,
                                    is_training=False))
  def flow(tile):
    return apply(tile)[0]
  # A frame exactly the network's size is one tile: the release's output.
  np.testing.assert_allclose(
      builders.tiled_flow(flow, inputs['images'], patch_size=(12, 16),
                          min_overlap=4),
      outputs['out'], rtol=1e-4, atol=1e-5)
  # A larger frame: every pixel is a weighted mean of the tiles covering it.
  rng = np.random.RandomState(1)
  big = rng.uniform(-1, 1, (1, 2, 20, 30, 3)).astype(np.float32)
  out = builders.tiled_flow(flow, big, patch_size=(12, 16), min_overlap=4)
  assert out.shape == (1, 20, 30, 2)
  origins = builders.flow_tile_origins((20, 30), (12, 16), 4)
  y, x = 11, 14  # covered by several tiles
  num, den = 0.0, 0.0
  for oy, ox in origins:
    if oy <= y < oy + 12 and ox <= x < ox + 16:
      w = builders.tile_weights((12, 16))[y - oy, x - ox]
      num += w * np.asarray(flow(big[:, :, oy:oy + 12, ox:ox + 16]))[0, y - oy,
                                                                      x - ox]
      den += w
  np.testing.assert_allclose(out[0, y, x], num / den, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='smaller than the network input'):
    builders.tiled_flow(flow, big[:, :, :10], patch_size=(12, 16),
                        min_overlap=4)


def _raft(features, s, params_fn=None):
  def f(x):
    return io_processors.ImagePostprocessor(
        postproc_type='raft', spatial_upsample=s, n_outputs=2)(
            x, is_training=False)
  model = hk.transform(f)
  params = model.init(jax.random.PRNGKey(0), features)
  if params_fn:
    params = params_fn(params)
  return model.apply(params, None, features), params


@pytest.mark.slow
def test_raft_upsampling_shapes_and_names():
  feats = jnp.ones((2, 3, 5, 8))
  out, params = _raft(feats, 4)
  assert out.shape == (2, 12, 20, 2)
  assert sorted(params) == ['image_postprocessor/coarse_linear',
                            'image_postprocessor/mask_linear']
  assert params['image_postprocessor/mask_linear']['w'].shape == (8, 9 * 16)


@pytest.mark.slow
def test_raft_with_centre_weights_is_nearest_upsampling_times_scale():
  feats = jax.random.normal(jax.random.PRNGKey(3), (1, 3, 4, 8))
  def centre_only(params):
    p = dict(params)
    bias = np.full((4, 4, 9), -1e4, np.float32)
    bias[..., 4] = 0  # all weight on the coarse pixel itself
    p['image_postprocessor/mask_linear'] = dict(
        w=jnp.zeros_like(params['image_postprocessor/mask_linear']['w']),
        b=jnp.asarray(bias.ravel()))
    return p
  out, params = _raft(feats, 4, centre_only)
  lin = params['image_postprocessor/coarse_linear']
  coarse = feats @ lin['w'] + lin['b']
  expected = 4 * jnp.repeat(jnp.repeat(coarse, 4, axis=1), 4, axis=2)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_raft_is_a_convex_combination_of_neighbours():
  """A constant coarse flow stays constant (x scale) away from the border."""
  feats = jax.random.normal(jax.random.PRNGKey(4), (1, 5, 6, 8))
  def constant_flow(params):
    p = dict(params)
    p['image_postprocessor/coarse_linear'] = dict(
        w=jnp.zeros((8, 2)), b=jnp.array([1.5, -2.0]))
    return p
  out, _ = _raft(feats, 2, constant_flow)
  np.testing.assert_allclose(out[0, 2:-2, 2:-2], np.broadcast_to(
      [3.0, -4.0], out[0, 2:-2, 2:-2].shape), rtol=1e-5)
