"""Scanned equals unrolled; remat and mixed precision keep the maths."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import mixed_precision
from perceiver import perceiver
from tests import golden


def _run(family, **overrides):
  spec = golden.load_json(family + '_tiny')
  params, state, inputs, outputs = golden.load_npz(family + '_tiny')
  model, names = golden.build(spec, **overrides)
  args = [inputs[n] for n in names]
  return model, params, state, args, outputs


@pytest.mark.slow
@pytest.mark.parametrize('family', ['imagenet_fourier', 'language_mlm'])
@pytest.mark.parametrize('remat', [False, True])
def test_scanned_equals_unrolled(family, remat):
  """imagenet_fourier shares weights across 2 blocks (the second block's
  dropout draws shift the decoder's init); MLM has 1 block."""
  model, params, state, args, outputs = _run(family)
  scanned, *_ = _run(family, scan_layers=True, remat=remat)
  init_scanned, _ = scanned.init(jax.random.PRNGKey(0), *args,
                                 is_training=True)
  converted = perceiver.from_release_layout(params)
  assert golden.manifest(converted) == golden.manifest(init_scanned)
  # The same seed gives the release's (unrolled) initial weights, stacked.
  golden.assert_params_identical(
      init_scanned, perceiver.from_release_layout(golden.load_init(family)))
  # Lossless both ways.
  back = perceiver.to_release_layout(converted)
  assert golden.manifest(back) == golden.manifest(params)
  for m in params:
    for k in params[m]:
      np.testing.assert_array_equal(back[m][k], params[m][k])
  out, _ = scanned.apply(converted, state, None, *args, is_training=False)
  ref, _ = model.apply(params, state, None, *args, is_training=False)
  # Same maths; XLA fuses the scanned body differently (float reassociation).
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out, outputs['out'], rtol=1e-4, atol=1e-5)


def test_scanned_layout_has_one_stack():
  _, params, *_ = _run('imagenet_fourier')
  converted = perceiver.from_release_layout(params)
  stacked = [m for m in converted if '/self_attends/' in m]
  assert stacked and all(converted[m]['w' if 'linear' in m else 'scale'
                                      ].shape[0] == 2 for m in stacked)
  assert not any('self_attention_1' in m for m in converted)


@pytest.mark.slow
def test_remat_gradients_equal():
  model, params, state, args, _ = _run('imagenet_fourier')
  remat, *_ = _run('imagenet_fourier', remat=True)
  def loss(m):
    return lambda p: jnp.sum(m.apply(p, state, None, *args,
                                     is_training=False)[0] ** 2)
  g1 = jax.grad(loss(model))(params)
  g2 = jax.grad(loss(remat))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6), g1, g2)


@pytest.mark.slow
def test_bf16_policy_keeps_softmax_and_layer_norm_in_float32():
  model, params, state, args, outputs = _run('imagenet_fourier')
  with mixed_precision.bf16_policy():
    jaxpr = jax.make_jaxpr(lambda p: model.apply(
        p, state, None, *args, is_training=False))(params)
    out, _ = model.apply(params, state, None, *args, is_training=False)
  text = str(jaxpr)
  assert 'bf16' in text  # the matmuls run in bfloat16 ...
  # ... while every exp (softmax) and rsqrt (layer norm) is float32.
  eqns = _all_eqns(jaxpr.jaxpr)
  exps = [e for e in eqns if e.primitive.name == 'exp']
  rsqrts = [e for e in eqns if e.primitive.name == 'rsqrt']
  assert exps and rsqrts
  assert all(e.outvars[0].aval.dtype == jnp.float32 for e in exps + rsqrts)
  dots = [e for e in eqns if e.primitive.name == 'dot_general']
  assert any(e.invars[0].aval.dtype == jnp.bfloat16 for e in dots)
  assert out.dtype == jnp.float32
  # bf16 has 8 bits of mantissa: agreement to a couple of percent of scale.
  scale = np.abs(outputs['out']).max()
  np.testing.assert_allclose(out, outputs['out'], atol=0.05 * scale)
  # The policy is scoped: outside it, full precision again.
  out32, _ = model.apply(params, state, None, *args, is_training=False)
  np.testing.assert_allclose(out32, outputs['out'], rtol=1e-4, atol=1e-5)


def _all_eqns(jaxpr):
  eqns = []
  for eqn in jaxpr.eqns:
    eqns.append(eqn)
    for sub in _subjaxprs(eqn):
      eqns.extend(_all_eqns(sub))
  return eqns


def _subjaxprs(eqn):
  for value in eqn.params.values():
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
      if hasattr(v, 'jaxpr') and hasattr(v.jaxpr, 'eqns'):
        yield v.jaxpr
      elif hasattr(v, 'eqns'):
        yield v
