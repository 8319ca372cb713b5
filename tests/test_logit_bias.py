"""The attention logit bias and the locality prior built on it.

`logit_bias` [T, S] (or [B, T, S], one per example) is added to every
head's scaled logits. Every form of
the attention (the release's dense one, the fast kernel, query/key chunks,
key/value projections a chunk at a time, the factored single head) must
compute the same function as a softmax written out here.
"""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import attention
from perceiver import kernels
from perceiver import perceiver


def _reference(q, k, v, mask, bias):
  logits = jnp.einsum('bthd,bshd->bhts', q, k) / np.sqrt(q.shape[-1])
  logits = logits + (bias if bias.ndim == 2 else bias[:, None])
  if mask is not None:
    logits = jnp.where(mask[:, None], logits, -1e30)
  out = jnp.einsum('bhts,bshv->bthv', jax.nn.softmax(logits), v)
  out = out.reshape(out.shape[:2] + (-1,))
  if mask is not None:
    out = jnp.where(jnp.all(~mask, axis=2, keepdims=True), 0.0, out)
  return out


def _inputs(b=2, t=11, s=13, h=2, d=4, v=3, batched=False):
  keys = jax.random.split(jax.random.PRNGKey(0), 5)
  q = jax.random.normal(keys[0], (b, t, h, d))
  k = jax.random.normal(keys[1], (b, s, h, d))
  vv = jax.random.normal(keys[2], (b, s, h, v))
  mask = jax.random.bernoulli(keys[3], 0.8, (b, t, s)).at[0, 2].set(False)
  bias = 3.0 * jax.random.normal(keys[4], ((b,) if batched else ()) + (t, s))
  return q, k, vv, mask, bias


@pytest.mark.parametrize('fast', [False, True])
@pytest.mark.parametrize('chunks', [(None, None), (4, None), (None, 5),
                                    (3, 4)])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('batched', [False, True])
def test_attend_adds_the_bias_in_every_form(fast, chunks, masked, batched):
  q, k, v, mask, bias = _inputs(batched=batched)
  mask = mask if masked else None
  want = _reference(q, k, v, mask, bias)
  with kernels.fast_kernels(fast):
    got = attention.attend(q, k, v, attention_mask=mask, logit_bias=bias,
                           q_chunk_size=chunks[0], kv_chunk_size=chunks[1])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # The bias matters: without it the outputs differ.
  plain = attention.attend(q, k, v, attention_mask=mask)
  assert float(jnp.max(jnp.abs(plain - want))) > 0.1


def _cross(kv_chunk, heads):
  def f(x_q, x_kv, bias):
    return perceiver.Attention(num_heads=heads, qk_channels=8, v_channels=6,
                               kv_chunk_size=kv_chunk)(
                                   x_q, x_kv, logit_bias=bias)
  return hk.transform(f)


@pytest.mark.parametrize('kv_chunk,heads', [(None, 2), (5, 2), (None, 1),
                                            (5, 1)])
@pytest.mark.parametrize('batched', [False, True])
def test_attention_module_paths_agree_with_a_bias(kv_chunk, heads, batched):
  """Projected chunks (kv_chunk) and, with one head on inputs narrower than
  the queries' count, the factored form, inside the fast kernels: the same
  outputs as the release's dense path with the same bias."""
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  x_q = jax.random.normal(keys[0], (2, 32, 5))
  x_kv = jax.random.normal(keys[1], (2, 13, 3))
  bias = 3.0 * jax.random.normal(keys[2], ((2,) if batched else ()) + (32, 13))
  dense = _cross(None, heads)
  params = dense.init(jax.random.PRNGKey(2), x_q, x_kv, bias)
  want = dense.apply(params, None, x_q, x_kv, bias)
  with kernels.fast_kernels():
    got = _cross(kv_chunk, heads).apply(params, None, x_q, x_kv, bias)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  if heads == 1:
    assert kernels.factored_attention_pays(13, 32, 3, 8, 6)


def test_a_bias_of_the_wrong_shape_names_the_shape():
  q, k, v, _, bias = _inputs()
  with pytest.raises(ValueError, match=r'logit_bias has shape \(13, 11\)'):
    attention.attend(q, k, v, logit_bias=bias.T)
  with pytest.raises(ValueError,
                     match=r'or \[B, queries, keys\] = \(2, 11, 13\)'):
    attention.attend(q, k, v, logit_bias=jnp.zeros((3, 11, 13)))


def test_tile_centres_and_the_gaussian_prior():
  np.testing.assert_allclose(attention.tile_centres(4, 16),
                             [1.5, 5.5, 9.5, 13.5])
  bias = attention.local_logit_bias(jnp.arange(3), jnp.array([0.0, 2.0]), 2.0)
  np.testing.assert_allclose(bias, [[0, -0.5], [-0.125, -0.125], [-0.5, 0]])
  with pytest.raises(ValueError, match='width must be positive'):
    attention.local_logit_bias(jnp.arange(3), jnp.arange(2), 0.0)
