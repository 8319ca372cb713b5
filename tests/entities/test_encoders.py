"""The entity encoders and heads: AlphaStar's interface, masking (masked slots
never influence a real entity's outputs; masked equals padded), scanned
equals unrolled, the full-size parameter count, and clear errors."""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import perceiver
from perceiver.tasks.entities import battle
from perceiver.tasks.entities import encoders
from perceiver.tasks.entities import models

F = battle.NUM_FEATURES
ENCODERS = sorted(encoders.ENCODERS)
# Full-width encoders (256 channels) at a dozen entity slots, two layers
# (not three) to keep compilation short.
KWARGS = {'transformer': {'num_layers': 2},
          'perceiver': {'num_latents': 8, 'num_self_attends': 2}}


@functools.lru_cache(maxsize=None)
def _models(name):
  """Full models with `name`'s encoder, scanned and unrolled, compiled once
  each: (scanned params, unrolled params, apply_scanned, apply_unrolled).
  The unrolled params are the scanned ones in the release's layout."""
  applies = []
  for scan in (True, False):
    model = hk.transform_with_state(models.make_forward(
        name, dict(KWARGS[name], scan_layers=scan)))
    if scan:
      params, state = jax.jit(functools.partial(model.init, is_training=False))(
          jax.random.PRNGKey(0), _batch(12, np.ones(12, bool)))
    applies.append(jax.jit(functools.partial(
        model.apply, state=state, rng=None, is_training=False)))
  return (params, perceiver.to_release_layout(params),
          lambda p, b: applies[0](p, batch=b)[0],
          lambda p, b: applies[1](p, batch=b)[0])


def _model(name):
  """(params, jitted apply) of the unrolled model."""
  _, params, _, apply = _models(name)
  return params, apply


def _batch(num_slots, mask, seed=0):
  rng = np.random.default_rng(seed)
  entities = rng.standard_normal((2, num_slots, F)).astype(np.float32)
  return {'entities': entities,
          'entity_mask': np.broadcast_to(mask, (2, num_slots)).copy()}


@pytest.mark.slow
@pytest.mark.parametrize('name', ENCODERS)
def test_outputs_have_alphastars_shapes_and_zero_padding(name):
  params, apply = _model(name)
  mask = np.arange(12) < 7
  out = apply(params, _batch(12, mask))
  assert out['entity_embeddings'].shape == (2, 12, 256)
  assert out['embedded_entity'].shape == (2, 256)
  assert out['pointer_logits'].shape == (2, 12, 12)
  assert out['win_logits'].shape == (2,)
  assert (np.asarray(out['embedded_entity']) >= 0).all()  # ReLU
  assert not np.asarray(out['entity_embeddings'])[:, 7:].any()
  assert np.asarray(out['entity_embeddings'])[:, :7].std() > 0


@pytest.mark.parametrize('name', ENCODERS)
def test_masked_slots_never_influence_valid_outputs(name):
  params, apply = _model(name)
  mask = np.arange(12) % 3 != 1  # masked slots scattered among real ones
  b = _batch(12, mask)
  garbage = dict(b)
  noise = np.random.default_rng(9).normal(0, 50, b['entities'].shape)
  garbage['entities'] = np.where(mask[None, :, None], b['entities'],
                                 noise).astype(np.float32)
  out, out_g = apply(params, b), apply(params, garbage)
  valid = np.flatnonzero(mask)
  ptr, ptr_g = (np.asarray(o['pointer_logits'])[:, valid][:, :, valid]
                for o in (out, out_g))
  np.testing.assert_allclose(ptr, ptr_g, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out['win_logits'], out_g['win_logits'],
                             rtol=1e-5, atol=1e-5)
  # ... and the masked slots themselves are never pointed at.
  ptr_all = np.asarray(out_g['pointer_logits'])
  assert (ptr_all[:, :, ~mask] == models.MASKED_LOGIT).all()
  # The check is not vacuous: garbage in a real slot does change the outputs.
  changed = dict(b)
  changed['entities'] = b['entities'].copy()
  changed['entities'][:, 0] += 1.0
  assert not np.allclose(apply(params, changed)['win_logits'],
                         out['win_logits'], atol=1e-4)


@pytest.mark.parametrize('name', ENCODERS)
def test_masked_equals_padded_in_any_slot_order(name):
  """The same 8 entities, scattered among 12 slots or packed first in another
  order, give the same outputs: the encoders are permutation-equivariant set
  functions and padding is invisible wherever it sits."""
  params, apply = _model(name)
  mask = np.arange(12) % 3 != 1
  b = _batch(12, mask)
  valid = np.flatnonzero(mask)
  order = np.random.default_rng(3).permutation(valid.size)
  packed = _batch(12, np.arange(12) < valid.size, seed=5)  # other padding
  packed['entities'][:, :valid.size] = b['entities'][:, valid[order]]
  out, out_p = apply(params, b), apply(params, packed)
  ptr = np.asarray(out['pointer_logits'])[:, valid][:, :, valid]
  ptr = ptr[:, order][:, :, order]
  ptr_p = np.asarray(out_p['pointer_logits'])[:, :valid.size, :valid.size]
  np.testing.assert_allclose(ptr, ptr_p, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out['win_logits'], out_p['win_logits'],
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      np.asarray(out['entity_embeddings'])[:, valid[order]],
      np.asarray(out_p['entity_embeddings'])[:, :valid.size],
      rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('name', ENCODERS)
def test_scanned_layers_equal_unrolled(name):
  params, release, apply_scanned, apply = _models(name)
  assert any('layer_stack' in k for k in params)
  assert not any('layer_stack' in k for k in release)
  assert f'{name}_entity_encoder' in ' '.join(release)
  b = _batch(12, np.arange(12) < 9)
  out_s, out_u = apply_scanned(params, b), apply(release, b)
  for key in out_s:
    np.testing.assert_allclose(out_s[key], out_u[key], rtol=1e-5, atol=1e-5)


def _num_params(name, **kwargs):
  def f(entities, mask):
    return encoders.ENCODERS[name](**kwargs)(entities, mask, is_training=False)
  shapes = jax.eval_shape(
      hk.transform(f).init, jax.random.PRNGKey(0),
      jax.ShapeDtypeStruct((1, 512, F), jnp.float32),
      jax.ShapeDtypeStruct((1, 512), jnp.bool_))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


def test_full_size_transformer_has_alphastars_layers():
  c, hidden = 256, 1024
  layer = (4 * (c * c + c)  # q, k, v, output projections (2 heads x 128)
           + (c * hidden + hidden) + (hidden * c + c)  # MLP 256-1024-256
           + 2 * 2 * c)  # two LayerNorms
  outputs = (F * c + c) + 2 * (c * c + c)  # embed; Conv1D 256; Linear 256
  assert _num_params('transformer') == 3 * layer + outputs


def test_perceiver_cost_does_not_grow_with_more_latents_per_entity():
  # 64 latents add 32 x 128 latent parameters only.
  assert (_num_params('perceiver', num_latents=64) -
          _num_params('perceiver', num_latents=32)) == 32 * 128


@pytest.mark.parametrize('name', ENCODERS)
def test_bad_mask_shape_is_a_clear_error(name):
  params, apply = _model(name)
  b = _batch(12, np.ones(12, bool))
  b['entity_mask'] = b['entity_mask'][:, :11]
  with pytest.raises(ValueError, match=r'entity_mask has shape \(2, 11\)'):
    apply(params, b)
  with pytest.raises(ValueError, match='Unknown entity encoder'):
    models.make_forward('lstm', {})
