"""The model card (perceiver/model_card.py) on the tiny golden configs.

Parameter counts must equal the golden npz totals; FLOPs must be positive,
grow with the number of inputs M, and loops (which XLA's cost analysis counts
once) must be reported.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import model_card as mc
from tests import golden


def _npz_total(tree):
  return sum(int(np.size(leaf)) for leaves in tree.values()
             for leaf in leaves.values())


@pytest.mark.parametrize('family', golden.TINY_FAMILIES)
def test_tiny_card_counts_the_golden_params(family):
  spec = golden.load_json(family + '_tiny')
  params, state, _, _ = golden.load_npz(family + '_tiny')
  card = mc.model_card(family, spec=spec, variants=False)
  assert card['params'] == _npz_total(params)
  assert card['state_params'] == _npz_total(state)
  assert card['gflops'] > 0
  assert card['loops'] == []


def test_flops_grow_with_the_number_of_inputs():
  spec = golden.load_json('imagenet_fourier_tiny')
  flops, params = [], set()
  for size in (16, 32, 64):
    images = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    card = mc.model_card('imagenet_fourier', spec=spec, inputs=(images,))
    flops.append(card['gflops'])
    params.add(card['params'])
  assert len(params) == 1  # The parameters do not depend on M.
  assert flops[0] < flops[1] < flops[2]
  # Doubling the side quadruples M; only the encoder's cross-attention (and
  # the preprocessing) grows, so the increase is at most 4x per step.
  assert flops[2] - flops[1] <= 4.5 * (flops[1] - flops[0])


def test_flops_are_per_example():
  spec = golden.load_json('language_mlm_tiny')
  one = mc.model_card('language_mlm', spec=spec, batch_size=1)
  three = mc.model_card('language_mlm', spec=spec, batch_size=3)
  assert one['params'] == three['params']
  # Batch-independent work (e.g. the learned position table) is tiny.
  np.testing.assert_allclose(one['gflops'], three['gflops'], rtol=1e-3)


def test_video_variants_on_the_tiny_config():
  spec = golden.load_json('video_autoencoding_tiny')
  card = mc.model_card('video_autoencoding', spec=spec)
  labels = [v['label'] for v in card['variants']]
  assert labels == ['[P] train decode', 'full-output decode']
  full = card['variants'][1]
  assert full['params'] == card['params']
  assert full['loops'] == []  # One chunk: the decode is counted in full.
  assert full['gflops'] > card['variants'][0]['gflops'] > 0


def test_loops_are_found():
  def f(x):
    y = jax.lax.scan(lambda c, _: (c @ c, None), x, None, length=5)[0]
    return jax.lax.fori_loop(0, 3, lambda i, c: c + 1, y) + jax.lax.map(
        lambda r: r * 2, x)

  jaxpr = jax.make_jaxpr(f)(jnp.ones((4, 4)))
  assert sorted(mc.loop_trip_counts(jaxpr.jaxpr)) == [3, 4, 5]


def test_registry():
  assert set(golden.FULL_FAMILIES) <= set(mc.REGISTRY)
  with pytest.raises(KeyError, match='Unknown family'):
    mc.model_card('no_such_family')
  with pytest.raises(ValueError, match='already registered'):
    mc.register(mc.Family('imagenet_fourier', spec='full_imagenet_fourier'))


def test_table_lists_every_card_and_variant():
  spec = golden.load_json('video_autoencoding_tiny')
  card = mc.model_card('video_autoencoding', spec=spec)
  table = mc.format_table([card])
  assert 'video_autoencoding (full-output decode)' in table
  assert len(table.splitlines()) == 2 + 1 + len(card['variants'])
