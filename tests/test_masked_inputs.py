"""Padding cannot leak: what masked positions hold does not matter.

The release (arXiv 2107.14795; DeepMind's perceiver.attend) gives masked
keys attention weight exactly 0, but 0 * NaN is NaN and 1e30 overflows the
LayerNorm, so NaN or huge padding used to reach every output. Now NaN,
+-1e30 or any finite values at positions whose mask is 0 give exactly the
outputs of zero padding, with finite parameter gradients, for the encoder's
cross-attention (input_mask), the decoders (query_mask) and the entity
encoders, on the release's kernels, the fast kernels and chunked attention.
"""
import contextlib

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import kernels
from perceiver import perceiver
from perceiver.tasks.entities import encoders as entity_encoders

B, M, C = 3, 13, 6  # 13 inputs: chunks of 5 need padding
PATHS = {
    'release': (False, {}),
    'fast': (True, {}),
    'chunked': (False, dict(q_chunk_size=2, kv_chunk_size=5)),
    'fast_chunked': (True, dict(q_chunk_size=2, kv_chunk_size=5)),
}
PADDING = {'nan': np.nan, 'big': 1e30, 'minus_big': -1e30}


def _mask():
  """[B, M]: a tail masked, every other slot, all but the first."""
  mask = np.ones((B, M), bool)
  mask[0, -4:] = False
  mask[1, 1::2] = False
  mask[2, 1:] = False
  return mask


def _padded(x, mask, value):
  """x with `value` at the masked positions (value None: x unchanged)."""
  if value is None:
    return x
  return np.where(mask[..., None], x, np.float32(value)).astype(np.float32)


def _check(forward, path, x, mask, *extra, whole=True):
  """forward(x, mask, *extra) traced on `path`: NaN, +-1e30 and random
  finite padding give the outputs of zero padding (all of them if `whole`,
  else those at unmasked positions for finite padding), and finite
  parameter gradients."""
  fast, _ = PATHS[path]
  model = hk.transform(forward)
  scope = kernels.fast_kernels if fast else contextlib.nullcontext
  with scope():
    params = model.init(jax.random.PRNGKey(0), x, mask, *extra)
    apply = jax.jit(model.apply)

    def loss(params, x):
      return sum(jnp.sum(leaf) for leaf in
                 jax.tree.leaves(model.apply(params, None, x, mask, *extra)))
    grad = jax.jit(jax.grad(loss))
    want = jax.device_get(apply(params, None, _padded(x, mask, 0.0), mask,
                                *extra))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(want))
    for name, value in PADDING.items():
      got = jax.device_get(apply(params, None, _padded(x, mask, value), mask,
                                 *extra))
      jax.tree.map(lambda g, w, n=name: np.testing.assert_array_equal(
          g, w, err_msg=n), got, want)
      grads = grad(params, _padded(x, mask, value))
      for leaf in jax.tree.leaves(grads):
        assert np.isfinite(leaf).all(), name
    # Finite padding (the release's case): the same outputs as zeros.
    got = jax.device_get(apply(params, None, x, mask, *extra))
    if whole:
      jax.tree.map(np.testing.assert_array_equal, got, want)
    else:
      np.testing.assert_array_equal(got[mask], want[mask])


@pytest.mark.slow
@pytest.mark.parametrize('heads', [1, 2])
@pytest.mark.parametrize('path', sorted(PATHS))
def test_encoder_input_mask(path, heads):
  chunks = PATHS[path][1]

  def forward(inputs, mask):
    encoder = perceiver.PerceiverEncoder(
        num_self_attends_per_block=1, num_blocks=1, z_index_dim=4,
        num_z_channels=8, num_cross_attend_heads=heads,
        num_self_attend_heads=2, **chunks)
    return encoder(inputs, encoder.latents(inputs), is_training=False,
                   input_mask=mask)

  x = np.random.default_rng(0).normal(size=(B, M, C)).astype(np.float32)
  _check(forward, path, x, _mask())


@pytest.mark.slow
@pytest.mark.parametrize('residual', [True, False])
@pytest.mark.parametrize('path', sorted(PATHS))
def test_decoder_query_mask(path, residual):
  chunks = PATHS[path][1]

  def forward(query, mask, z):
    decoder = perceiver.BasicDecoder(
        output_num_channels=5, position_encoding_type='none',
        num_z_channels=8, use_query_residual=residual, num_heads=2, **chunks)
    return decoder(query, z, is_training=False, query_mask=mask)

  rng = np.random.default_rng(1)
  query = rng.normal(size=(B, M, 8)).astype(np.float32)
  z = rng.normal(size=(B, 4, 8)).astype(np.float32)
  # Masked queries decode as zeros: finite padding gives the release's
  # outputs at the unmasked positions.
  _check(forward, path, query, _mask(), z, whole=False)


@pytest.mark.slow
def test_perceiver_input_mask_end_to_end():
  """The whole model (no preprocessor): NaN padding, finite outputs equal
  to zero padding's, as in the MLM's padded sequences."""
  def forward(inputs, mask):
    model = perceiver.Perceiver(
        encoder=perceiver.PerceiverEncoder(
            num_self_attends_per_block=1, num_blocks=1, z_index_dim=4,
            num_z_channels=8, num_self_attend_heads=2),
        decoder=perceiver.BasicDecoder(
            output_num_channels=3, output_index_dims=(5,),
            num_z_channels=8, position_encoding_type='trainable',
            trainable_position_encoding_kwargs=dict(num_channels=8)))
    return model(inputs, is_training=False, input_mask=mask)

  x = np.random.default_rng(2).normal(size=(B, M, C)).astype(np.float32)
  _check(forward, 'release', x, _mask())


@pytest.mark.slow
@pytest.mark.parametrize('kind', sorted(entity_encoders.ENCODERS))
@pytest.mark.parametrize('path', sorted(PATHS))
def test_entity_encoders(path, kind):
  chunks = PATHS[path][1]
  # The Transformer's width is AlphaStar's 256 (2 heads of 128).
  sizes = {'transformer': dict(num_layers=1, num_heads=2, head_channels=128,
                               widening_factor=1),
           'perceiver': dict(num_latents=4, num_z_channels=8,
                             num_self_attends=1, num_self_attend_heads=2,
                             output_channels=8)}[kind]

  def forward(entities, mask):
    encoder = entity_encoders.ENCODERS[kind](**sizes, **chunks)
    return tuple(encoder(entities, mask, is_training=False))

  x = np.random.default_rng(3).normal(size=(B, M, 5)).astype(np.float32)
  _check(forward, path, x, _mask())


def test_the_padding_used_to_leak():
  """Without zero_masked, NaN padding reaches every latent (the test above
  is not vacuous): the release's cross-attention on NaN keys."""
  def forward(inputs, mask):
    attend = perceiver.CrossAttention(num_heads=1)
    z = jnp.zeros((B, 4, 8))
    return attend(z, inputs, is_training=False,
                  attention_mask=perceiver.make_cross_attention_mask(
                      jnp.ones((B, 4), jnp.int32), mask))

  model = hk.transform(forward)
  x = np.random.default_rng(4).normal(size=(B, M, C)).astype(np.float32)
  mask = _mask()
  params = model.init(jax.random.PRNGKey(0), x, mask)
  out = model.apply(params, None, _padded(x, mask, np.nan), mask)
  assert np.isnan(out).all()
  out = model.apply(params, None, perceiver.zero_masked(
      _padded(x, mask, np.nan), mask), mask)
  assert np.isfinite(out).all()
