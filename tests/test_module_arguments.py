"""Unknown keyword arguments to modules and builders name the closest
valid one (perceiver.checks.keyword_arguments).

The release's constructors (arXiv 2107.14795; DeepMind's perceiver/
perceiver.py, io_processors.py, position_encoding.py) keep their exact
signatures: same names, defaults and order; tests/test_golden.py checks that
module names and parameter trees are the release's.
"""
import inspect

import haiku as hk
import jax
import pytest

from perceiver import builders
from perceiver import checks
from perceiver import io_processors
from perceiver import perceiver
from perceiver import position_encoding

LIBRARY = (perceiver, io_processors, position_encoding)


def _public_modules():
  """Every public, concrete hk.Module subclass the library defines."""
  found = {}
  for lib in LIBRARY:
    for name, value in vars(lib).items():
      if (inspect.isclass(value) and issubclass(value, hk.Module)
          and value.__module__ == lib.__name__ and not name.startswith('_')
          and not inspect.isabstract(value)):
        found[f'{lib.__name__}.{name}'] = value
  return found


MODULES = _public_modules()
BUILDERS = {
    'perceiver.conv_1d': perceiver.conv_1d,
    'perceiver.layer_norm': perceiver.layer_norm,
    'perceiver.layer_norm_fn': perceiver.layer_norm_fn,
    'position_encoding.build_position_encoding':
        position_encoding.build_position_encoding,
    'builders.image_classifier': builders.image_classifier,
    'builders.mlm': builders.mlm,
    'builders.optical_flow': builders.optical_flow,
    'builders.video_autoencoder': builders.video_autoencoder,
    'builders.token_embedding': builders.token_embedding,
    'builders.mlm_input_positions': builders.mlm_input_positions,
}


def _keywords(fn):
  """The keywords fn accepts: its named parameters (not `self`) and, for
  **kwargs forwarded to another module, that one's."""
  return list(fn.__valid_keywords__)


def _typo(name):
  """A misspelling of `name` that is no parameter of its own."""
  return name[:-1] if len(name) > 4 else name + 'x'


def _raised(fn, **kwargs):
  """The TypeError of fn(**kwargs), called inside hk.transform (modules
  are built only there)."""
  def build():
    fn(**kwargs)
  with pytest.raises(TypeError) as info:
    hk.transform(build).init(jax.random.PRNGKey(0))
  return str(info.value)


def test_every_public_module_is_covered():
  names = {cls.__name__ for cls in MODULES.values()}
  assert {'PerceiverEncoder', 'BasicDecoder', 'ImagePreprocessor',
          'FourierPositionEncoding', 'MultimodalPostprocessor',
          'FlowConvStem'} <= names
  assert len(MODULES) == 31, sorted(names)


@pytest.mark.parametrize('path', sorted(MODULES))
def test_module_names_the_closest_argument(path):
  cls = MODULES[path]
  # Decorated, with the undecorated signature (the release's) unchanged.
  assert hasattr(cls.__init__, '__wrapped__'), path
  assert (inspect.signature(cls.__init__) ==
          inspect.signature(cls.__init__.__wrapped__))
  keywords = _keywords(cls.__init__)
  named = [n for n, p in inspect.signature(cls).parameters.items()
           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
  assert keywords[:len(named)] == named
  target = max(keywords, key=len)  # long names: a typo stays closest
  wrong = _typo(target)
  assert wrong not in keywords
  message = _raised(cls, **{wrong: 1})
  assert message == (f"{cls.__name__} got an unexpected keyword argument "
                     f"'{wrong}'; did you mean '{target}'?"), message


@pytest.mark.parametrize('path', sorted(MODULES))
def test_module_lists_arguments_when_none_is_close(path):
  cls = MODULES[path]
  message = _raised(cls, zzzzqqqq=1)
  assert message.startswith(
      f"{cls.__name__} got an unexpected keyword argument 'zzzzqqqq'; "
      'valid arguments: ')
  assert message.endswith(', '.join(_keywords(cls.__init__)) + '.')


def test_forwarded_keywords_are_accepted_and_checked():
  """ClassificationDecoder's **kwargs go to BasicDecoder and on to the
  position encoding: their keywords are valid, their typos named."""
  keywords = _keywords(perceiver.ClassificationDecoder.__init__)
  assert 'num_z_channels' in keywords  # BasicDecoder's
  assert 'trainable_position_encoding_kwargs' in keywords  # the encoding's
  assert 'output_num_channels' not in keywords  # set by the class itself
  message = _raised(perceiver.ClassificationDecoder, num_classes=3,
                    num_z_channel=8)
  assert message == ("ClassificationDecoder got an unexpected keyword "
                     "argument 'num_z_channel'; did you mean "
                     "'num_z_channels'?")


@pytest.mark.parametrize('path', sorted(BUILDERS))
def test_builder_names_the_closest_argument(path):
  fn = BUILDERS[path]
  assert inspect.signature(fn) == inspect.signature(fn.__wrapped__)
  target = max(_keywords(fn), key=len)
  wrong = _typo(target)
  message = _raised(fn, **{wrong: 1})
  assert message == (f"{fn.__name__} got an unexpected keyword argument "
                     f"'{wrong}'; did you mean '{target}'?"), message


def test_the_issue_example():
  message = _raised(perceiver.PerceiverEncoder, num_self_attend_head=8)
  assert message == ("PerceiverEncoder got an unexpected keyword argument "
                     "'num_self_attend_head'; did you mean "
                     "'num_self_attend_heads'?")


def test_a_subclass_is_named_as_itself():
  class MyEncoder(perceiver.PerceiverEncoder):
    pass
  assert 'MyEncoder got an unexpected' in _raised(MyEncoder, z_index_dims=4)


def test_release_signature_is_kept():
  """The release's PerceiverEncoder parameters, in its order, first."""
  release = ['num_self_attends_per_block', 'num_blocks', 'z_index_dim',
             'num_z_channels', 'qk_channels', 'v_channels',
             'num_cross_attend_heads', 'num_self_attend_heads',
             'cross_attend_widening_factor', 'self_attend_widening_factor',
             'dropout_prob', 'z_pos_enc_init_scale',
             'cross_attention_shape_for_attn', 'use_query_residual']
  parameters = inspect.signature(perceiver.PerceiverEncoder).parameters
  assert list(parameters)[:len(release)] == release
  assert parameters['z_index_dim'].default == 512
  assert parameters['name'].default == 'perceiver_encoder'


def test_valid_arguments_build_the_same_module():
  """Names and parameters are those of the call without the check."""
  def forward(x):
    mlp = perceiver.MLP(widening_factor=2, name='mlp')
    assert mlp.module_name == 'mlp'
    return mlp(x, is_training=False)
  params = hk.transform(forward).init(jax.random.PRNGKey(0),
                                      jax.numpy.ones((1, 3, 4)))
  assert jax.tree.map(lambda x: x.shape, params) == {
      'mlp/linear': {'w': (4, 8), 'b': (8,)},
      'mlp/linear_1': {'w': (8, 4), 'b': (4,)}}


def test_closest_name_is_the_config_helper_too():
  assert checks.closest_name('weight_decy', ['weight_decay', 'b1']) == (
      'weight_decay')
  assert checks.closest_name('zzz', ['weight_decay']) is None
