"""Parity with DeepMind's released implementation (tests/golden_data).

Same parameter tree (module paths, names, shapes) and the same outputs
within rtol 1e-4 / atol 1e-5, for every released family; and the full-size
architectures' trees and parameter totals under jax.eval_shape.
"""
import haiku as hk
import jax
import numpy as np
import pytest

from tests import golden


@pytest.mark.parametrize('family', golden.TINY_FAMILIES)
def test_tiny_model_matches_release(family):
  spec = golden.load_json(family + '_tiny')
  params, state, inputs, outputs = golden.load_npz(family + '_tiny')
  model, arg_names = golden.build(spec)
  args = [inputs[name] for name in arg_names]

  init_params, init_state = model.init(jax.random.PRNGKey(0), *args,
                                       is_training=True)
  assert golden.manifest(init_params) == spec['param_manifest']
  assert golden.manifest(params) == spec['param_manifest']
  assert golden.manifest(init_state) == spec['state_manifest']

  out, _ = jax.jit(lambda p, s, *a: model.apply(p, s, None, *a,
                                                is_training=False))(
                                                    params, state, *args)
  if isinstance(out, dict):
    assert sorted(out) == sorted(outputs)
    for key in outputs:
      np.testing.assert_allclose(out[key], outputs[key], rtol=1e-4, atol=1e-5)
  else:
    np.testing.assert_allclose(out, outputs['out'], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('family', golden.FULL_FAMILIES)
def test_full_size_architecture_tree_and_total(family):
  spec = golden.load_json('full_' + family)
  model, _ = golden.build(spec)
  args = golden.example_inputs(spec)
  params, state = jax.eval_shape(
      lambda *a: model.init(jax.random.PRNGKey(0), *a, is_training=True), *args)
  assert golden.manifest(params) == spec['param_manifest']
  total = hk.data_structures.tree_size(params)
  assert total == spec['total_params']
