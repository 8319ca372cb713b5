"""Loads tests/golden_data (the release's outputs) and rebuilds each released
family from its JSON.

Glossary: a "manifest" is {module path: {param name: shape}}.
"""
import json
import os

import haiku as hk
import numpy as np

from perceiver import builders

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'golden_data')
# The full-size release architectures are library data (the model card and
# the exporters read them): perceiver/release_specs/full_<family>.json.
RELEASE_SPECS_DIR = os.path.join(os.path.dirname(builders.__file__),
                                 'release_specs')
TINY_FAMILIES = ('imagenet_fourier', 'imagenet_learned', 'imagenet_conv',
                 'perceiver_projection', 'language_mlm', 'optical_flow',
                 'video_autoencoding')
FULL_FAMILIES = ('imagenet_fourier', 'imagenet_learned', 'imagenet_conv',
                 'language_mlm', 'optical_flow', 'video_autoencoding')
VIDEO_KEYS = ('num_frames', 'image_size', 'fourier_image_resolution',
              'audio_samples_per_frame', 'samples_per_patch', 'num_classes',
              'z_index_dim', 'num_z_channels', 'num_self_attends_per_block',
              'decoder_channels', 'audio_num_bands', 'image_num_bands')


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
  """-> (transformed, example_args, apply_kwargs) for a golden JSON spec."""
  builder = spec['builder']
  if builder == 'image_classifier':
    cfg = spec['config']
    encoder = dict(cfg['encoder'], **overrides)
    fwd = builders.image_classifier(
        num_classes=spec['num_classes'],
        input_preprocessor=cfg['input_preprocessor'], encoder=encoder,
        decoder=cfg.get('decoder'),
        projection_decoder=cfg.get('projection_decoder', False))
    arg_names = ('images',)
  elif builder == 'mlm':
    fwd = builders.mlm(vocab_size=spec['vocab_size'], d_model=spec['d_model'],
                       max_seq_len=spec['max_seq_len'],
                       encoder=dict(spec['encoder'], **overrides),
                       decoder=spec['decoder'])
    arg_names = ('inputs', 'input_mask')
  elif builder == 'optical_flow':
    fwd = builders.optical_flow(
        input_preprocessor=spec['input_preprocessor'],
        encoder=dict(spec['encoder'], **overrides), decoder=spec['decoder'],
        flow_scale_factor=spec['flow_scale_factor'])
    arg_names = ('images',)
  elif builder == 'video_autoencoder':
    kwargs = {k: spec[k] for k in VIDEO_KEYS}
    fwd = builders.video_autoencoder(encoder_kwargs=overrides or None, **kwargs)
    subsampling = {'image': np.asarray(spec['subsampling_image']),
                   'audio': np.asarray(spec['subsampling_audio'])}
    def wrapped(images, audio, *, is_training):
      return fwd(images, audio, subsampling, is_training=is_training)
    return hk.transform_with_state(wrapped), ('images', 'audio')
  else:
    raise ValueError(builder)
  return hk.transform_with_state(fwd), arg_names


def example_inputs(spec, batch=1):
  """Zero inputs of the full-size shapes, for jax.eval_shape."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  b = spec['builder']
  if b == 'image_classifier':
    return (jnp.zeros((batch, 224, 224, 3)),)
  if b == 'mlm':
    t = spec['max_seq_len']
    return (jnp.zeros((batch, t), jnp.int32), jnp.ones((batch, t), jnp.int32))
  if b == 'optical_flow':
    h, w = spec['decoder']['output_image_shape']
    return (jnp.zeros((batch, 2, h, w, 3)),)
  n = spec['num_frames']
  return (jnp.zeros((batch, n, spec['image_size'], spec['image_size'], 3)),
          jnp.zeros((batch, n * spec['audio_samples_per_frame'], 1)))
