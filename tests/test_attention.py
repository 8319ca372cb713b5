"""Chunked (memory-efficient) attention equals the release's dense attention."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import attention
from perceiver import perceiver
from tests import golden


def _qkv(seed, b=2, t=37, s=53, h=4, d=8, v=5):
  keys = jax.random.split(jax.random.PRNGKey(seed), 4)
  q = jax.random.normal(keys[0], (b, t, h, d))
  k = jax.random.normal(keys[1], (b, s, h, d))
  vv = jax.random.normal(keys[2], (b, s, h, v))
  mask = jax.random.bernoulli(keys[3], 0.7, (b, t, s))
  mask = mask.at[0, 3].set(False)  # a fully masked query row
  return q, k, vv, mask


@pytest.mark.slow
@pytest.mark.parametrize('q_chunk,kv_chunk', [(8, None), (None, 16), (8, 16),
                                               (37, 53), (5, 7), (1, 1)])
@pytest.mark.parametrize('masked', [False, True])
def test_chunked_equals_dense(q_chunk, kv_chunk, masked):
  q, k, v, mask = _qkv(0)
  mask = mask if masked else None
  dense = perceiver.attend(q, k, v, attention_mask=mask)
  chunked = perceiver.attend(q, k, v, attention_mask=mask,
                             q_chunk_size=q_chunk, kv_chunk_size=kv_chunk)
  np.testing.assert_allclose(chunked, dense, rtol=1e-5, atol=1e-6)
  if masked:
    np.testing.assert_array_equal(chunked[0, 3], 0.0)


def test_a_single_chunk_each_way_is_the_dense_computation():
  """Chunk sizes that cover both axes (an encoder's cross-attention chunks on
  its short latent self-attention) run the dense kernel, bit for bit."""
  q, k, v, mask = _qkv(0)
  dense = perceiver.attend(q, k, v, attention_mask=mask)
  one = perceiver.attend(q, k, v, attention_mask=mask, q_chunk_size=64,
                         kv_chunk_size=53)
  np.testing.assert_array_equal(one, dense)
  jaxpr = str(jax.make_jaxpr(lambda *a: perceiver.attend(
      *a, kv_chunk_size=64))(q, k, v))
  assert 'scan' not in jaxpr and 'while' not in jaxpr


@pytest.mark.parametrize('sizes', [dict(q_chunk_size=0), dict(kv_chunk_size=-4)])
def test_chunk_sizes_must_be_positive(sizes):
  q, k, v, _ = _qkv(0)
  with pytest.raises(ValueError, match='must be positive'):
    perceiver.attend(q, k, v, **sizes)


@pytest.mark.slow
def test_chunked_gradients_equal_dense():
  q, k, v, mask = _qkv(1)
  def loss(fn_kwargs, q, k, v):
    return jnp.sum(jnp.sin(perceiver.attend(q, k, v, attention_mask=mask,
                                            **fn_kwargs)))
  dense = jax.grad(lambda *a: loss({}, *a), argnums=(0, 1, 2))(q, k, v)
  chunked = jax.grad(lambda *a: loss(dict(q_chunk_size=8, kv_chunk_size=16),
                                     *a), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(chunked, dense):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_chunked_attention_runs_inside_shard_map():
  """The trainer's step runs under jax.shard_map over a batch mesh: the
  chunk loops' carries must vary over it like their inputs (a constant
  initial carry is a scan type error there)."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top,g-multiple-import
  mesh = Mesh(np.asarray(jax.devices()[:2]), ('batch',))
  q, k, v, mask = _qkv(3)
  args = [jax.device_put(x, NamedSharding(mesh, P('batch')))
          for x in (q, k, v, mask)]

  def grads(q, k, v, mask, **chunks):
    loss = lambda *a: jnp.sum(perceiver.attend(*a, attention_mask=mask,
                                               **chunks) ** 2)
    return jax.grad(loss, argnums=(0, 1, 2))(q, k, v)

  sharded = jax.jit(jax.shard_map(
      lambda *a: grads(*a, q_chunk_size=8, kv_chunk_size=16), mesh=mesh,
      in_specs=P('batch'), out_specs=P('batch')))(*args)
  for got, want in zip(sharded, grads(q, k, v, mask)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_chunked_attention_does_not_build_the_full_matrix():
  """The compiled chunked kernel needs far less temporary memory."""
  q = jnp.zeros((1, 4096, 1, 16))
  k = jnp.zeros((1, 4096, 1, 16))
  v = jnp.zeros((1, 4096, 1, 16))
  def temp_bytes(**kw):
    fn = jax.jit(lambda q, k, v: perceiver.attend(q, k, v, **kw))
    return fn.lower(q, k, v).compile().memory_analysis().temp_size_in_bytes
  dense = temp_bytes()
  chunked = temp_bytes(q_chunk_size=256, kv_chunk_size=512)
  assert dense >= 4096 * 4096 * 4  # the [T, S] float32 logits
  assert chunked * 8 < dense, (chunked, dense)


@pytest.mark.slow
def test_model_with_chunking_matches_golden():
  """Chunking selected per model reproduces the released outputs."""
  spec = golden.load_json('language_mlm_tiny')
  params, state, inputs, outputs = golden.load_npz('language_mlm_tiny')
  spec['decoder'] = dict(spec['decoder'], q_chunk_size=16, kv_chunk_size=8)
  model, names = golden.build(spec, q_chunk_size=8, kv_chunk_size=16)
  out, _ = model.apply(params, state, None, *[inputs[n] for n in names],
                       is_training=False)
  np.testing.assert_allclose(out, outputs['out'], rtol=1e-4, atol=1e-5)


def test_attention_module_is_not_mutated_by_calls():
  """The release's Attention writes its resolved channels onto itself."""
  snapshots = []

  def config(module):
    return {k: v for k, v in vars(module).items()
            if isinstance(v, (int, float, type(None)))}

  def f(x):
    attn = perceiver.Attention(num_heads=2)
    before = config(attn)
    out = attn(x, x)
    snapshots.append((before, config(attn)))
    return out

  model = hk.transform(f)
  x = jnp.ones((1, 3, 4))
  model.init(jax.random.PRNGKey(0), x)
  before, after = snapshots[0]
  assert before['_qk_channels'] is None
  assert before == after


@pytest.mark.parametrize('length,requested,want', [
    (182528, 8192, 7936),  # 368 x 496 flow inputs: 23 even chunks
    (50176, 2048, 1792),  # 224 x 224 ImageNet inputs: 28 even chunks
    (48, 10, 8),
    (53, 7, 7),  # prime: no even split, the last chunk is padded
    (16, 64, 16)])
def test_even_chunk(length, requested, want):
  assert attention.even_chunk(length, requested) == want


def test_padded_keys_are_hidden_without_a_mask():
  """S = 53 keys in chunks of 7 (no even split): the padded keys of the
  last chunk get no weight, although no mask is given."""
  q, k, v, _ = _qkv(3)
  dense = perceiver.attend(q, k, v)
  chunked = perceiver.attend(q, k, v, kv_chunk_size=7)
  np.testing.assert_allclose(chunked, dense, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('length,requested,want', [
    (52097, 8192, (7443, 7)),  # video autoencoding: 53 x 983, no even split
    (182528, 8192, (7936, 23)),
    (53, 16, (14, 4)),  # 4 x 14 = 56: the last chunk overlaps by 3
    (16, 64, (16, 1))])
def test_kv_chunking(length, requested, want):
  assert attention.kv_chunking(length, requested) == want


def _cross_attention(kv_chunk_size, q_chunk_size=None, heads=2):
  """A cross-attention block whose keys/values come from C = 6 inputs."""
  def f(x_q, x_kv, mask=None):
    return perceiver.CrossAttention(
        num_heads=heads, qk_channels=8, v_channels=10,
        kv_chunk_size=kv_chunk_size, q_chunk_size=q_chunk_size)(
            x_q, x_kv, attention_mask=mask, is_training=False)
  return hk.transform(f)


def _cross_inputs(seed, b=2, t=11, s=53):
  keys = jax.random.split(jax.random.PRNGKey(seed), 3)
  x_q = jax.random.normal(keys[0], (b, t, 12))
  x_kv = jax.random.normal(keys[1], (b, s, 6)) * 3 + 1
  mask = jax.random.bernoulli(keys[2], 0.7, (b, t, s)).at[1, 4].set(False)
  return x_q, x_kv, mask


@pytest.mark.slow
@pytest.mark.parametrize('kv_chunk', [16, 7, 1, 53])
@pytest.mark.parametrize('masked', [False, True])
def test_projected_chunks_equal_the_whole_block(kv_chunk, masked):
  """Keys/values normalised and projected a chunk at a time (the last
  chunk overlapping when no size divides S): the same parameters, drawn
  from the same seed, and the same outputs and gradients."""
  x_q, x_kv, mask = _cross_inputs(0)
  mask = mask if masked else None
  whole, chunked = _cross_attention(None), _cross_attention(kv_chunk)
  params = whole.init(jax.random.PRNGKey(4), x_q, x_kv, mask)
  chunked_params = chunked.init(jax.random.PRNGKey(4), x_q, x_kv, mask)
  jax.tree.map(np.testing.assert_array_equal, chunked_params, params)

  def loss(model, params, x_q, x_kv):
    return jnp.sum(jnp.sin(model.apply(params, None, x_q, x_kv, mask)))
  for argnums in (0, 2):  # parameters; the key/value inputs
    want = jax.grad(lambda *a: loss(whole, *a), argnums)(params, x_q, x_kv)
    got = jax.grad(lambda *a: loss(chunked, *a), argnums)(params, x_q, x_kv)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a, b, rtol=1e-4, atol=1e-5), got, want)
  out = chunked.apply(params, None, x_q, x_kv, mask)
  np.testing.assert_allclose(out, whole.apply(params, None, x_q, x_kv, mask),
                             rtol=1e-5, atol=1e-5)
  if kv_chunk < 53:
    jaxpr = str(jax.make_jaxpr(lambda p: chunked.apply(
        p, None, x_q, x_kv, mask))(params))
    assert 'scan' in jaxpr


@pytest.mark.slow
def test_projected_chunks_hold_no_whole_projection():
  """The gradient of a block over S = 16384 inputs: with the projections
  made per chunk, XLA plans a fraction of the temporaries of attention
  chunked on projections made whole (queries chunked too, which keeps
  that path)."""
  x_q, x_kv = jnp.zeros((1, 16, 12)), jnp.zeros((1, 16384, 64))
  def temp_bytes(model):
    params = model.init(jax.random.PRNGKey(0), x_q, x_kv)
    grad = jax.jit(jax.grad(
        lambda p, x: jnp.sum(model.apply(p, None, x_q, x)), argnums=(0, 1)))
    return grad.lower(params, x_kv).compile().memory_analysis(
    ).temp_size_in_bytes
  projected = temp_bytes(_cross_attention(1024))
  whole = temp_bytes(_cross_attention(1024, q_chunk_size=8))
  one_array = 16384 * 64 * 4
  assert whole >= 4 * one_array, whole
  assert projected * 2 < whole, (projected, whole)


@pytest.mark.slow
def test_projected_chunks_run_inside_shard_map():
  """As test_chunked_attention_runs_inside_shard_map, with the chunks'
  projections inside the loop."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top,g-multiple-import
  mesh = Mesh(np.asarray(jax.devices()[:2]), ('batch',))
  x_q, x_kv, mask = _cross_inputs(5)
  model = _cross_attention(16)
  params = model.init(jax.random.PRNGKey(1), x_q, x_kv, mask)

  def grads(x_q, x_kv, mask):
    return jax.grad(lambda p: jnp.sum(
        model.apply(p, None, x_q, x_kv, mask) ** 2))(params)

  # The parameters are replicated, so their gradient is summed over the
  # mesh by shard_map's transpose: the whole batch's gradient.
  sharded = jax.jit(jax.shard_map(grads, mesh=mesh,
      in_specs=P('batch'), out_specs=P()))(
          *[jax.device_put(x, NamedSharding(mesh, P('batch')))
            for x in (x_q, x_kv, mask)])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=1e-4, atol=1e-5), sharded, grads(x_q, x_kv, mask))


def test_model_with_projected_chunks_matches_golden():
  """Encoder key/value chunks alone (the latents in one query chunk): the
  per-chunk projections reproduce the released outputs."""
  spec = golden.load_json('language_mlm_tiny')
  params, state, inputs, outputs = golden.load_npz('language_mlm_tiny')
  model, names = golden.build(spec, kv_chunk_size=16)
  out, _ = model.apply(params, state, None, *[inputs[n] for n in names],
                       is_training=False)
  np.testing.assert_allclose(out, outputs['out'], rtol=1e-4, atol=1e-5)
