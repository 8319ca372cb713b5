"""The fast kernels (perceiver.kernels) compute the release's functions.

Each kernel against the release's graph, values and gradients, to float
tolerance; the whole golden models traced inside the scope: the same
parameter tree, the same seeded initial weights, the golden outputs and the
release's gradients.
"""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import attention
from perceiver import kernels
from perceiver import mixed_precision
from perceiver import perceiver
from perceiver import position_encoding
from tests import golden


def test_the_scope_is_off_by_default_and_restored():
  assert not kernels.enabled()
  with kernels.fast_kernels():
    assert kernels.enabled()
    with kernels.fast_kernels(False):
      assert not kernels.enabled()
    assert kernels.enabled()
  assert not kernels.enabled()


def _qkv(seed, b=2, t=37, s=53, h=4, d=8, v=5):
  keys = jax.random.split(jax.random.PRNGKey(seed), 4)
  q = jax.random.normal(keys[0], (b, t, h, d)) * 2
  k = jax.random.normal(keys[1], (b, s, h, d)) * 2
  vv = jax.random.normal(keys[2], (b, s, h, v))
  mask = jax.random.bernoulli(keys[3], 0.7, (b, t, s))
  mask = mask.at[0, 3].set(False)  # a fully masked query row
  return q, k, vv, mask


def _attend(fast, **kwargs):
  def fn(q, k, v):
    with kernels.fast_kernels(fast):
      return attention.attend(q, k, v, **kwargs)
  return fn


@pytest.mark.slow
@pytest.mark.parametrize('masked', [False, True])
def test_fast_attention_equals_the_release(masked):
  q, k, v, mask = _qkv(0)
  mask = mask if masked else None
  want = _attend(False, attention_mask=mask)(q, k, v)
  got = _attend(True, attention_mask=mask)(q, k, v)
  assert not np.array_equal(got, want)  # a different computation ...
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # same maths
  if masked:
    np.testing.assert_array_equal(got[0, 3], 0.0)

  def loss(fn):
    return lambda *a: jnp.sum(jnp.sin(3 * fn(*a)))
  g_want = jax.grad(loss(_attend(False, attention_mask=mask)),
                    argnums=(0, 1, 2))(q, k, v)
  g_got = jax.grad(loss(_attend(True, attention_mask=mask)),
                   argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(g_got, g_want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_fast_attention_keeps_float32_statistics_in_bfloat16():
  q, k, v, mask = _qkv(1)
  want = _attend(False, attention_mask=mask)(q, k, v)
  bf16 = [x.astype(jnp.bfloat16) for x in (q, k, v)]
  got = _attend(True, attention_mask=mask)(*bf16)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=5e-2)
  jaxpr = str(jax.make_jaxpr(_attend(True, attention_mask=mask))(*bf16))
  assert 'exp' in jaxpr and 'bf16' in jaxpr
  for line in jaxpr.splitlines():  # softmax statistics stay float32
    if ' exp ' in line or 'reduce_max' in line:
      assert 'f32[' in line and 'bf16[' not in line.split('=')[0], line


def test_attention_dropout_keeps_the_release_kernel():
  """Dropout acts on the normalised weights, which the fast kernel never
  forms: with dropout the release's kernel runs, same draws, same output."""
  q, k, v, _ = _qkv(2)
  def run(fast):
    def fn(q, k, v):
      with kernels.fast_kernels(fast):
        return attention.attend(q, k, v, dropout_prob=0.3)
    return hk.transform(fn).apply({}, jax.random.PRNGKey(3), q, k, v)
  np.testing.assert_array_equal(run(True), run(False))


def _layer_norm(fast):
  def fn(x):
    with kernels.fast_kernels(fast):
      return perceiver.layer_norm(perceiver.layer_norm(x) * 3.0)
  return hk.without_apply_rng(hk.transform(fn))


@pytest.mark.slow
def test_fast_layer_norm_equals_hk_layer_norm():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 16)) * 4 + 1
  release, fast = _layer_norm(False), _layer_norm(True)
  params = release.init(None, x)
  assert golden.manifest(fast.init(None, x)) == golden.manifest(params)
  golden.assert_params_identical(fast.init(None, x), params)
  # Trained-looking parameters, so scale and offset matter.
  params = jax.tree.map(
      lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(p.size),
                                            p.shape), params)
  np.testing.assert_allclose(fast.apply(params, x), release.apply(params, x),
                             rtol=1e-5, atol=1e-5)

  def loss(model):
    return lambda p, x: jnp.sum(jnp.cos(model.apply(p, x)) * x)
  g_want = jax.grad(loss(release), argnums=(0, 1))(params, x)
  g_got = jax.grad(loss(fast), argnums=(0, 1))(params, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-4),
               g_got, g_want)


def test_fourier_features_once_per_grid_are_bit_identical():
  def fn(fast):
    def features():
      with kernels.fast_kernels(fast):
        return position_encoding.FourierPositionEncoding(
            index_dims=(6, 9), num_bands=5, max_resolution=(6, 9))(
                batch_size=3)
    return hk.transform(features).apply({}, None)
  want = fn(False)
  assert want.shape == (3, 54, 2 + 2 * 2 * 5)
  np.testing.assert_array_equal(jax.jit(lambda: fn(True))(),
                                jax.jit(lambda: fn(False))())


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_batch_broadcast_sums_its_gradient_over_the_batch(dtype):
  """A learned table broadcast over the batch: the same values, and the
  gradient of the table is the sum over the batch of the output's."""
  def fn(fast):
    def table():
      with kernels.fast_kernels(fast):
        return position_encoding.TrainablePositionEncoding(
            index_dim=5, num_channels=3)(batch_size=4)
    return hk.without_apply_rng(hk.transform(table))
  params = fn(False).init(jax.random.PRNGKey(0))
  params = jax.tree.map(lambda p: p.astype(dtype), params)
  weights = jax.random.normal(jax.random.PRNGKey(1), (4, 5, 3)).astype(dtype)

  def grad(fast):
    return jax.grad(lambda p: jnp.sum(
        fn(fast).apply(p).astype(jnp.float32) * weights))(params)
  np.testing.assert_array_equal(fn(True).apply(params), fn(False).apply(params))
  got, want = grad(True), grad(False)
  assert got['trainable_position_encoding']['pos_embs'].dtype == dtype
  np.testing.assert_allclose(
      got['trainable_position_encoding']['pos_embs'].astype(jnp.float32),
      np.sum(np.asarray(weights, np.float32), axis=0),
      rtol=1e-2 if dtype == jnp.bfloat16 else 1e-6, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a.astype(jnp.float32), b.astype(jnp.float32), rtol=1e-2, atol=1e-2),
               got, want)


def _golden_model(family, fast):
  spec = golden.load_json(family + '_tiny')
  params, state, inputs, outputs = golden.load_npz(family + '_tiny')
  model, names = golden.build(spec)
  args = [inputs[n] for n in names]

  def init(rng):
    with kernels.fast_kernels(fast):
      return model.init(rng, *args, is_training=True)

  def apply(p, is_training=False, rng=None):
    with kernels.fast_kernels(fast):
      return model.apply(p, state, rng, *args, is_training=is_training)[0]
  return params, outputs, init, apply


# Fourier inputs and a 1-head cross-attention; bytes, masks and 8 heads.
@pytest.mark.slow
@pytest.mark.parametrize('family', ['imagenet_fourier', 'language_mlm'])
def test_golden_models_with_fast_kernels(family):
  """The same parameter tree and seeded init; the golden outputs and the
  release's gradients to float tolerance."""
  params, outputs, init, apply = _golden_model(family, True)
  _, _, release_init, release_apply = _golden_model(family, False)
  golden.assert_params_identical(init(jax.random.PRNGKey(0))[0],
                                 golden.load_init(family))
  assert golden.manifest(release_init(jax.random.PRNGKey(0))[0]) == (
      golden.manifest(params))
  out = apply(params)
  # Rounding differs op by op: the tolerance is relative to the outputs'
  # scale (up to about 12 for the MLM logits).
  size = float(np.abs(outputs['out']).max())
  np.testing.assert_allclose(out, outputs['out'], rtol=1e-4,
                             atol=1e-5 * max(size, 1.0))

  def loss(fn):
    def value(p):
      tree = fn(p)
      return sum(jnp.sum(jnp.sin(x)) for x in jax.tree.leaves(tree))
    return value
  g_got = jax.grad(loss(apply))(params)
  g_want = jax.grad(loss(release_apply))(params)
  scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g_want))
  assert scale > 0
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=1e-3, atol=1e-4 * scale), g_got, g_want)


@pytest.mark.slow
def test_bf16_with_fast_kernels_stays_near_float32():
  params, outputs, _, apply = _golden_model('imagenet_fourier', True)
  with mixed_precision.bf16_policy():
    out = apply(params)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, outputs['out'], atol=0.1 * float(
      np.abs(outputs['out']).max()))


@pytest.mark.parametrize('with_bias', [True, False])
def test_linear_is_hk_linear_in_float32_and_accumulates_bf16_in_float32(
    with_bias):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 7, 40)), jnp.float32)
  b_init = hk.initializers.RandomNormal()  # a bias that is not zero

  def apply(cls):
    model = hk.transform(
        lambda v: cls(24, with_bias=with_bias, b_init=b_init)(v))
    params = model.init(jax.random.PRNGKey(1), x)
    # hk.Linear's parameters under hk.Linear's name, drawn alike.
    return params, model.apply(params, None, x)

  params, want = apply(hk.Linear)
  params_fast, got = apply(kernels.Linear)
  assert list(params) == ['linear']
  jax.tree.map(np.testing.assert_array_equal, params_fast, params)
  np.testing.assert_array_equal(got, want)  # float32: the same graph

  # bfloat16 operands (as perceiver.mixed_precision casts them): one
  # float32 product (and bias), rounded once.
  model = hk.transform(lambda v: kernels.Linear(24, with_bias=with_bias)(v))
  params16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
  x16 = x.astype(jnp.bfloat16)
  got16 = model.apply(params16, None, x16)
  assert got16.dtype == jnp.bfloat16
  exact = (x16.astype(jnp.float32)
           @ params16['linear']['w'].astype(jnp.float32))
  if with_bias:
    exact += params16['linear']['b'].astype(jnp.float32)
  np.testing.assert_allclose(got16.astype(jnp.float32), exact,
                             rtol=2.0 ** -8, atol=1e-6)
  jaxpr = jax.make_jaxpr(lambda v: model.apply(params16, None, v))(x16)
  dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == 'dot_general']
  assert len(dots) == 1
  assert dots[0].params['preferred_element_type'] == jnp.float32


@pytest.mark.slow
def test_bf16_fast_kernels_accumulate_every_projection_in_float32():
  params, _, _, apply = _golden_model('language_mlm', True)
  with mixed_precision.bf16_policy():
    jaxpr = jax.make_jaxpr(apply)(params)
  eqns = []
  stack = [jaxpr.jaxpr]
  while stack:
    for e in stack.pop().eqns:
      eqns.append(e)
      stack.extend(jax.extend.core.jaxprs_in_params(e.params))
  dots = [e for e in eqns if e.primitive.name == 'dot_general'
          and e.invars[0].aval.dtype == jnp.bfloat16]
  assert dots
  assert all(e.outvars[0].aval.dtype == jnp.float32 for e in dots), [
      str(e) for e in dots if e.outvars[0].aval.dtype != jnp.float32]


def _attention_with_biases(fast, chunk, heads=2, q_chunk=None):
  """A cross-attention whose key/value biases are non-zero (the seeded init
  makes them zero, which would hide a misplaced bias), with a mask that
  hides some keys of every query and every key of query 0."""
  rng = np.random.default_rng(3)
  q_in = jnp.asarray(rng.normal(size=(2, 5, 12)), jnp.float32)
  kv_in = jnp.asarray(rng.normal(size=(2, 23, 10)), jnp.float32)
  mask = rng.random((2, 5, 23)) > 0.3
  mask[:, 0] = False
  mask = jnp.asarray(mask, jnp.int32)

  def forward(q, kv):
    return perceiver.Attention(num_heads=heads, qk_channels=8, v_channels=6,
                               output_channels=7, kv_chunk_size=chunk,
                               q_chunk_size=q_chunk)(
                                   q, kv, attention_mask=mask)

  model = hk.without_apply_rng(hk.transform(forward))
  params = model.init(jax.random.PRNGKey(0), q_in, kv_in)
  params = jax.tree.map(
      lambda p: p + jnp.asarray(rng.normal(size=p.shape), p.dtype), params)

  def apply(p):
    with kernels.fast_kernels(fast):
      return model.apply(p, q_in, kv_in)
  return params, apply


# 2 heads: keys and values projected (attention.attend or attend_projected
# with a key chunk); 1 head: factored (attention.attend_factored), whole,
# normalised a key chunk at a time, or in key and query chunks.
@pytest.mark.slow
@pytest.mark.parametrize('heads,chunk,q_chunk', [
    (2, None, None), (2, 8, None), (1, None, None), (1, 8, None),
    (1, 8, 2)])
def test_deferred_key_value_biases_equal_the_release(heads, chunk, q_chunk,
                                                     monkeypatch):
  """Without the key bias and with the value bias added after the softmax,
  the attention (whole or a key chunk at a time; projected, or for one
  head factored) gives the release's outputs and gradients; the key bias
  gets a zero gradient, which is its exact gradient."""
  factored = []
  real = perceiver.attend_factored
  monkeypatch.setattr(perceiver, 'attend_factored',
                      lambda *a, **k: factored.append(k) or real(*a, **k))
  params, fast = _attention_with_biases(True, chunk, heads, q_chunk)
  _, release = _attention_with_biases(False, chunk, heads, q_chunk)
  fast(params)
  # S = 23 keys, T = 5 queries, C = 10 channels: 3000 multiply-adds
  # factored against 4830 projected, so one head is factored.
  assert kernels.factored_attention_pays(23, 5, 10, 8, 6)
  assert len(factored) == (heads == 1)
  if factored:
    assert factored[0]['chunk_projections'] == bool(chunk and not q_chunk)
  np.testing.assert_allclose(fast(params), release(params), rtol=1e-5,
                             atol=1e-5)
  # Query 0 attends to nothing: its output is the final bias alone.
  np.testing.assert_allclose(fast(params)[:, 0],
                             np.broadcast_to(params['attention/linear_3']['b'],
                                             (2, 7)), rtol=1e-6)

  def loss(fn):
    return lambda p: jnp.sum(jnp.sin(fn(p)))
  g_fast = jax.grad(loss(fast))(params)
  g_release = jax.grad(loss(release))(params)
  assert float(jnp.abs(g_fast['attention/linear_1']['b']).max()) == 0.0
  assert float(jnp.abs(g_release['attention/linear_1']['b']).max()) < 1e-4
  assert float(jnp.abs(g_fast['attention/linear_2']['b']).max()) > 1e-2
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-4),
               g_fast, g_release)


def test_factored_attention_only_where_it_is_less_work():
  pays = kernels.factored_attention_pays  # (S, T, C, D, V)
  # ImageNet's encoder: 50,176 pixels onto 512 latents, C = D = V = 261.
  assert pays(50_176, 512, 261, 261, 261)
  # Its decoder: one class query over the 512 latents, C = D = V = 1024.
  assert pays(512, 1, 1024, 1024, 1024)
  # A flow-like decoder: 182,528 queries over 2,048 latents of 512.
  assert not pays(2_048, 182_528, 512, 512, 512)
  # One-head self-attention (T = S, C = D = V): the same work either way.
  assert not pays(1_024, 1_024, 256, 256, 256)


def test_concat_channels_equals_concatenate():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 7, 4)), jnp.float32)
  pos = jnp.broadcast_to(
      jnp.asarray(rng.normal(size=(7, 5)), jnp.bfloat16)[None], (3, 7, 5))
  got = kernels.concat_channels(x, pos)
  want = jnp.concatenate([x, pos.astype(x.dtype)], axis=-1)
  assert got.dtype == want.dtype
  np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError, match='leading shapes differ'):
    kernels.concat_channels(x, pos[:, :6])
