"""Video autoencoder: full-output decoding in one call, with bounded memory."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import builders
from tests import golden


def _tiny():
  spec = golden.load_json('video_autoencoding_tiny')
  params, state, inputs, outputs = golden.load_npz('video_autoencoding_tiny')
  fwd = builders.video_autoencoder(
      **{k: spec[k] for k in builders.VIDEO_KEYS})
  return spec, fwd, params, state, inputs, outputs


@pytest.mark.slow
def test_full_decode_matches_release_and_single_pass():
  spec, fwd, params, state, inputs, outputs = _tiny()
  images, audio = inputs['images'], inputs['audio']
  full = hk.transform_with_state(
      lambda i, a: fwd(i, a, is_training=False, full_outputs=True, chunks=4))
  out, _ = jax.jit(full.apply)(params, state, None, images, audio)
  assert out['image'].shape == images.shape
  assert out['audio'].shape == audio.shape[:2]
  # The release's outputs at its subsampled points.
  pix = np.asarray(spec['subsampling_image'])
  np.testing.assert_allclose(out['image'].reshape(2, -1, 3)[:, pix],
                             outputs['image'], rtol=1e-4, atol=1e-5)
  patch = spec['samples_per_patch']
  aud = np.asarray(spec['subsampling_audio'])
  samples = (aud[:, None] * patch + np.arange(patch)).ravel()
  np.testing.assert_allclose(out['audio'][:, samples], outputs['audio'],
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out['label'], outputs['label'], rtol=1e-4,
                             atol=1e-5)
  # And every output equals one unchunked pass over all the queries.
  every = {'image': np.arange(images[0, ..., 0].size),
           'audio': np.arange(audio.shape[1] // patch)}
  single = hk.transform_with_state(
      lambda i, a: fwd(i, a, every, is_training=False))
  ref, _ = single.apply(params, state, None, images, audio)
  np.testing.assert_allclose(out['image'].reshape(2, -1, 3), ref['image'],
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out['audio'], ref['audio'], rtol=1e-4, atol=1e-5)


def _full_size_abstract(fwd):
  images = jax.ShapeDtypeStruct((1, 16, 224, 224, 3), jnp.float32)
  audio = jax.ShapeDtypeStruct((1, 30720, 1), jnp.float32)
  sub = {'image': np.arange(512), 'audio': np.arange(15)}
  init = hk.transform_with_state(
      lambda i, a: fwd(i, a, sub, is_training=True))
  params, state = jax.eval_shape(
      lambda i, a: init.init(jax.random.PRNGKey(0), i, a), images, audio)
  return params, state, images, audio


@pytest.mark.slow
def test_full_size_decode_memory_is_bounded():
  """The released geometry: 802,816 + 1,920 + 1 queries, 1026 channels.

  Compiled (not run): one pass over all queries needs ~10 GB of temporaries;
  128 chunks need ~0.5 GB, dominated by the encoder.
  """
  fwd = builders.video_autoencoder()
  params, state, images, audio = _full_size_abstract(fwd)
  temp = {}
  for chunks in (1, 128):
    model = hk.transform_with_state(lambda i, a, c=chunks: fwd(
        i, a, is_training=False, full_outputs=True, chunks=c))
    compiled = jax.jit(model.apply).lower(params, state, None, images,
                                          audio).compile()
    temp[chunks] = compiled.memory_analysis().temp_size_in_bytes
  assert temp[128] < 1e9, temp
  assert temp[128] * 10 < temp[1], temp


@pytest.mark.slow
def test_full_size_geometry_runs_in_one_call():
  """Real 16x224x224 video and 30,720 samples through a narrow model."""
  fwd = builders.video_autoencoder(
      z_index_dim=16, num_z_channels=16, num_self_attends_per_block=1,
      decoder_channels=16, audio_num_bands=4, image_num_bands=4)
  rng = np.random.RandomState(0)
  images = rng.uniform(0, 1, (1, 16, 224, 224, 3)).astype(np.float32)
  audio = rng.uniform(-1, 1, (1, 30720, 1)).astype(np.float32)
  sub = {'image': np.arange(6272 * 5, 6272 * 6), 'audio': np.arange(75, 90)}
  model = hk.transform_with_state(
      lambda i, a, s: fwd(i, a, s, is_training=False))
  params, state = jax.jit(model.init)(jax.random.PRNGKey(1), images, audio,
                                      sub)
  full = hk.transform_with_state(lambda i, a: fwd(
      i, a, is_training=False, full_outputs=True, chunks=128))
  out, _ = jax.jit(full.apply)(params, state, None, images, audio)
  assert out['image'].shape == (1, 16, 224, 224, 3)
  assert out['audio'].shape == (1, 30720)
  assert out['label'].shape == (1, 700)
  assert np.isfinite(out['image']).all() and np.isfinite(out['audio']).all()
  # Chunk 5 of 128, decoded on its own as the colab does, is the same.
  ref, _ = jax.jit(model.apply)(params, state, None, images, audio, sub)
  np.testing.assert_allclose(out['image'].reshape(1, -1, 3)[:, sub['image']],
                             ref['image'], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out['audio'][:, 75 * 16:90 * 16], ref['audio'],
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out['label'], ref['label'], rtol=1e-4, atol=1e-5)
