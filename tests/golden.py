"""Loads tests/golden_data (the release's outputs) and rebuilds each released
family from its JSON.

Glossary: a "manifest" is {module path: {param name: shape}}.
"""
import json
import os

import haiku as hk
import numpy as np

from perceiver import builders
from perceiver import release_specs

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'golden_data')
# The full-size release architectures are library data (the model card and
# the exporters read them): perceiver/release_specs/full_<family>.json.
RELEASE_SPECS_DIR = release_specs.DIR
TINY_FAMILIES = ('imagenet_fourier', 'imagenet_learned', 'imagenet_conv',
                 'perceiver_projection', 'language_mlm', 'optical_flow',
                 'video_autoencoding')
FULL_FAMILIES = ('imagenet_fourier', 'imagenet_learned', 'imagenet_conv',
                 'language_mlm', 'optical_flow', 'video_autoencoding')


def load_json(name):
  folder = RELEASE_SPECS_DIR if name.startswith('full_') else GOLDEN_DIR
  with open(os.path.join(folder, name + '.json')) as f:
    return json.load(f)


def load_npz(name):
  """-> (params, state, inputs, outputs) from a golden .npz."""
  data = np.load(os.path.join(GOLDEN_DIR, name + '.npz'))
  params, state, inputs, outputs = {}, {}, {}, {}
  for key in data.files:
    kind, rest = key.split(':', 1)
    if kind in ('param', 'state'):
      module, leaf = rest.split('|')
      (params if kind == 'param' else state).setdefault(module, {})[leaf] = (
          data[key])
    elif kind == 'input':
      inputs[rest] = data[key]
    else:
      outputs[rest] = data[key]
  return params, state, inputs, outputs


def load_init(family):
  """-> params exactly as the release's init(PRNGKey(0), ...) returned them,
  from `<family>_tiny_init.npz` (keys `init:<module>|<name>`)."""
  data = np.load(os.path.join(GOLDEN_DIR, family + '_tiny_init.npz'))
  params = {}
  for key in data.files:
    kind, rest = key.split(':', 1)
    if kind != 'init':
      raise ValueError(f'Unexpected key {key!r} in {family}_tiny_init.npz.')
    module, leaf = rest.split('|')
    params.setdefault(module, {})[leaf] = data[key]
  return params


def assert_params_identical(got, want):
  """The same tree and every leaf bit for bit (dtype and value)."""
  assert manifest(got) == manifest(want)
  for module, leaves in want.items():
    for name, value in leaves.items():
      np.testing.assert_array_equal(
          np.asarray(got[module][name]), np.asarray(value),
          err_msg=f'{module}|{name} differs', strict=True)


def manifest(tree):
  return {m: {k: list(np.shape(v)) for k, v in leaves.items()}
          for m, leaves in tree.items()}


def build(spec, **overrides):
  """-> (transformed, input names) for a golden or release spec, built by the
  library's own spec code (perceiver.builders.build)."""
  forward = builders.build(spec, **overrides)
  return hk.transform_with_state(forward), builders.INPUT_NAMES[
      spec['builder']]


def example_inputs(spec, batch=1):
  """Shape structs of the full-size inputs, for jax.eval_shape."""
  return builders.example_inputs(spec, batch)
