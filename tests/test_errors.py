"""Bad input gets a clear error naming the argument and what was expected."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver import builders
from perceiver import checkpoint_io
from perceiver import io_processors
from perceiver import perceiver
from perceiver import position_encoding
from tests import golden


def _init(f, *args):
  return hk.transform_with_state(f).init(jax.random.PRNGKey(0), *args)


FF = dict(fourier_position_encoding_kwargs=dict(num_bands=2))


def _construct(ctor):
  """Haiku modules can only be built inside a transform."""
  hk.transform(lambda: ctor() and None).init(jax.random.PRNGKey(0))


def test_preprocessor_rank():
  def f(x):
    return io_processors.ImagePreprocessor(prep_type='pixels', **FF)(
        x, is_training=False)
  with pytest.raises(ValueError, match=r'rank 4 or 5.*got shape \(2, 8, 3\)'):
    _init(f, jnp.zeros((2, 8, 3)))


def test_preprocessor_channel_count_against_parameters():
  def f(x):
    return io_processors.ImagePreprocessor(prep_type='conv1x1',
                                           num_channels=4, **FF)(
                                               x, is_training=False)
  model = hk.transform_with_state(f)
  params, state = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)))
  with pytest.raises(ValueError, match=r'conv2_d/w.*shape'):
    model.apply(params, state, None, jnp.zeros((1, 4, 4, 5)))
  fwd = builders.image_classifier(
      num_classes=3, input_preprocessor=dict(prep_type='pixels', **FF),
      encoder=dict(num_self_attends_per_block=1, num_blocks=1, z_index_dim=2,
                   num_z_channels=4, num_self_attend_heads=1),
      decoder=dict(num_z_channels=4, trainable_position_encoding_kwargs=dict(
          num_channels=4)))
  with pytest.raises(ValueError, match=r'images \[B, H, W, 3\].*\(1, 4, 4, 1\)'):
    _init(lambda x: fwd(x, is_training=False), jnp.zeros((1, 4, 4, 1)))


def test_audio_channels_and_length():
  def f(x):
    return io_processors.AudioPreprocessor(samples_per_patch=4, **FF)(
        x, is_training=False)
  with pytest.raises(ValueError, match='mono audio'):
    _init(f, jnp.zeros((1, 16, 2)))
  with pytest.raises(ValueError, match=r'\(18\).*samples_per_patch \(4\)'):
    _init(f, jnp.zeros((1, 18, 1)))


def test_patches_must_divide():
  with pytest.raises(ValueError, match='W=7 is not divisible by '
                     'spatial_block_size=2'):
    io_processors.space_to_depth(jnp.zeros((1, 4, 7, 3)), spatial_block_size=2)


def _encode(input_mask_shape):
  def f(x, mask):
    enc = perceiver.PerceiverEncoder(num_self_attends_per_block=1,
                                     num_blocks=1, z_index_dim=2,
                                     num_z_channels=4, num_self_attend_heads=1)
    return enc(x, enc.latents(x), is_training=False, input_mask=mask)
  return _init(f, jnp.zeros((2, 5, 3)), jnp.ones(input_mask_shape, jnp.int32))


@pytest.mark.slow
def test_mask_shape():
  _encode((2, 5))  # fits
  with pytest.raises(ValueError, match=r'input_mask.*\(2, 6\).*\(2, 5\)'):
    _encode((2, 6))
  q = jnp.zeros((2, 3, 1, 4))
  with pytest.raises(ValueError, match=r'attention_mask.*\(2, 3, 4\)'):
    perceiver.attend(q, q, q, attention_mask=jnp.ones((2, 3, 4)))


def test_heads_must_divide_channels():
  with pytest.raises(ValueError, match=r'num_z_channels \(10\).*'
                     r'num_self_attend_heads \(3\)'):
    _construct(lambda: perceiver.PerceiverEncoder(num_z_channels=10,
                                                  num_self_attend_heads=3))
  def f(x):
    return perceiver.Attention(num_heads=3, qk_channels=9, v_channels=10)(x, x)
  with pytest.raises(ValueError, match=r'v_channels \(10\).*num_heads \(3\)'):
    _init(f, jnp.zeros((1, 2, 4)))


def test_unknown_options():
  with pytest.raises(ValueError, match="prep_type 'voxels'"):
    _construct(lambda: io_processors.ImagePreprocessor(prep_type='voxels'))
  with pytest.raises(ValueError, match="concat_or_add_pos 'stack'"):
    _construct(lambda: io_processors.ImagePreprocessor(
        prep_type='pixels', concat_or_add_pos='stack'))
  with pytest.raises(ValueError, match="position_encoding_type 'sinusoid'"):
    _construct(lambda: io_processors.ImagePreprocessor(
        prep_type='pixels', position_encoding_type='sinusoid'))
  with pytest.raises(ValueError, match="position_encoding_type 'rope'"):
    _construct(lambda: position_encoding.build_position_encoding(
        'rope', index_dims=(4,)))
  with pytest.raises(ValueError, match="postproc_type 'voxels'"):
    _construct(lambda: io_processors.ImagePostprocessor(
        postproc_type='voxels'))


def _decoder_query(points, **kwargs):
  def f(x):
    dec = perceiver.BasicDecoder(
        output_num_channels=2, output_index_dims=(4, 5),
        position_encoding_type='fourier', **FF, **kwargs)
    return dec.decoder_query(x, subsampled_points=points)
  return _init(f, jnp.zeros((1, 3, 2)))


def test_subsampled_points_in_range():
  _decoder_query(np.array([0, 19]))
  with pytest.raises(ValueError, match=r'\[0, 20\).*\(4, 5\).*\[0, 20\]'):
    _decoder_query(np.array([0, 20]))
  with pytest.raises(ValueError, match=r'\[0, 20\)'):
    _decoder_query(np.array([-1]))


def test_concat_preprocessed_input_needs_inputs():
  with pytest.raises(ValueError, match='concat_preprocessed_input=True needs '
                     'inputs_without_pos'):
    _decoder_query(None, concat_preprocessed_input=True)


def test_checkpoint_that_does_not_fit_names_every_entry(tmp_path):
  spec = golden.load_json('imagenet_fourier_tiny')
  params, _, inputs, _ = golden.load_npz('imagenet_fourier_tiny')
  other = golden.load_npz('imagenet_learned_tiny')[0]
  path = str(tmp_path / 'learned.pystate')
  checkpoint_io.save_params(path, other)
  model, _ = golden.build(spec)
  expected, _ = jax.eval_shape(lambda x: model.init(
      jax.random.PRNGKey(0), x, is_training=True), inputs['images'])
  with pytest.raises(checkpoint_io.CheckpointMismatchError) as err:
    checkpoint_io.load_params(path, expected=expected)
  message = str(err.value)
  assert 'image_preprocessor/~/conv2_d/w' in message  # unexpected
  assert 'perceiver_encoder/~/cross_attention/attention/linear/w' in message
  # conv (w, b), projector (w, b) and the learned position table.
  assert len(err.value.unexpected) == 5
  assert err.value.mismatched  # the cross-attention sees other channels
  assert err.value.missing == []


def test_extra_position_mlp_layers_are_built():
  def f(x):
    return io_processors.ImagePreprocessor(prep_type='pixels',
                                           n_extra_pos_mlp=2, **FF)(
                                               x, is_training=False)[0]
  params, _ = _init(f, jnp.zeros((1, 4, 4, 3)))
  assert sorted(params) == [
      'image_preprocessor/~_build_network_inputs/linear',
      'image_preprocessor/~_build_network_inputs/linear_1']


@pytest.mark.slow
def test_dropout_and_random_masking_without_rng():
  """Training-mode dropout or masking with 0 < p < 1 needs an RNG; p = 0 and
  p = 1 (evaluation) work with rng=None."""
  def drop(x, rate, is_training):
    return perceiver.MLP(dropout_prob=rate)(x, is_training=is_training)
  model = hk.transform(drop)
  x = jnp.ones((1, 2, 4))
  params = model.init(jax.random.PRNGKey(0), x, 0.1, True)
  model.apply(params, None, x, 0.1, False)
  model.apply(params, None, x, 0.0, True)
  with pytest.raises(ValueError, match='Dropout with rate 0.1 needs an RNG'):
    model.apply(params, None, x, 0.1, True)

  def mask(x, prob):
    return io_processors.MultimodalPreprocessor(
        modalities={'label': io_processors.OneHotPreprocessor()},
        mask_probs={'label': prob})({'label': x}, is_training=True)[0]
  model = hk.transform(mask)
  x = jnp.ones((2, 3))
  params = model.init(jax.random.PRNGKey(0), x, 0.5)
  for prob in (0.0, 1.0):
    model.apply(params, None, x, prob)
  with pytest.raises(ValueError, match='probability 0.5 needs an RNG'):
    model.apply(params, None, x, 0.5)


# --- Sizes, widths and empty inputs -----------------------------------------

ENCODER = dict(num_self_attends_per_block=1, num_blocks=1, z_index_dim=2,
               num_z_channels=8, num_self_attend_heads=1)


@pytest.mark.parametrize('ctor, complaint', [
    (lambda: perceiver.PerceiverEncoder(**{**ENCODER, 'num_blocks': -1}),
     r'PerceiverEncoder: num_blocks must be a positive integer, got -1'),
    (lambda: perceiver.PerceiverEncoder(**{**ENCODER, 'z_index_dim': -4}),
     r'PerceiverEncoder: z_index_dim must be a positive integer, got -4'),
    (lambda: perceiver.PerceiverEncoder(
        **{**ENCODER, 'num_self_attend_heads': 0}),
     r'num_self_attend_heads must be a positive integer, got 0'),
    (lambda: perceiver.ClassificationDecoder(-3, num_z_channels=4),
     r'ClassificationDecoder: num_classes must be a positive integer'),
    (lambda: perceiver.ProjectionDecoder(num_classes=0),
     r'ProjectionDecoder: num_classes must be a positive integer, got 0'),
    (lambda: perceiver.BasicDecoder(output_num_channels=2,
                                    output_index_dims=(4, -5), **FF,
                                    position_encoding_type='fourier'),
     r'BasicDecoder: output_index_dims must be positive integers.*\(4, -5\)'),
    (lambda: io_processors.ImagePreprocessor(prep_type='pixels',
                                             spatial_downsample=0),
     r'ImagePreprocessor: spatial_downsample must be a positive integer'),
    (lambda: position_encoding.TrainablePositionEncoding(index_dim=8,
                                                         num_channels=-1),
     r'TrainablePositionEncoding: num_channels must be a positive integer'),
])
def test_sizes_must_be_positive(ctor, complaint):
  with pytest.raises(ValueError, match=complaint):
    _construct(ctor)


def test_qk_channels_without_v_channels_names_the_fix():
  with pytest.raises(ValueError, match=r'qk_channels=4 without v_channels.*'
                     r'num_z_channels=8; also set v_channels=8'):
    _construct(lambda: perceiver.PerceiverEncoder(**ENCODER, qk_channels=4))
  _construct(lambda: perceiver.PerceiverEncoder(**ENCODER, qk_channels=4,
                                                v_channels=8))  # fine

  def f(x):  # the layer alone says the same
    return perceiver.SelfAttention(num_heads=1, qk_channels=4)(
        x, is_training=False)
  with pytest.raises(ValueError, match=r'SelfAttention: qk_channels .*= 4.*'
                     r'D = 8; set v_channels=8'):
    _init(f, jnp.zeros((1, 3, 8)))


def test_empty_batch_or_inputs_are_refused():
  def encode(x):
    enc = perceiver.PerceiverEncoder(**ENCODER)
    return enc(x, enc.latents(x), is_training=False)
  with pytest.raises(ValueError, match=r'PerceiverEncoder: inputs \[B, M, C\] '
                     r'has no elements \(M=0 in shape \(2, 0, 3\)\)'):
    _init(encode, jnp.zeros((2, 0, 3)))
  fwd = builders.image_classifier(
      num_classes=3, input_preprocessor=dict(prep_type='pixels', **FF),
      encoder=dict(ENCODER, num_z_channels=4),
      decoder=dict(num_z_channels=4, trainable_position_encoding_kwargs=dict(
          num_channels=4)))
  with pytest.raises(ValueError, match=r'Perceiver: inputs has no examples '
                     r'\(B=0 in shape \(0, 4, 4, 3\)\)'):
    _init(lambda x: fwd(x, is_training=False), jnp.zeros((0, 4, 4, 3)))


def _tiny_mlm():
  from perceiver.tasks.language import models  # pylint: disable=g-import-not-at-top
  config = models.smoke_config()
  model = hk.transform(lambda ids, mask: models.mlm(config)(
      ids, mask, is_training=False))
  t = config['max_seq_len']
  ids, mask = jnp.full((1, t), 10, jnp.int32), jnp.ones((1, t), jnp.int32)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), ids, mask)
  return config, model, params, ids, mask


def test_token_ids_are_checked_outside_jit_and_clamped_inside():
  config, model, params, ids, mask = _tiny_mlm()
  vocab = config['vocab_size']
  with pytest.raises(ValueError, match=r'mlm: token ids must be an integer '
                     r'array, got dtype float32.*astype\(np.int32\)'):
    model.apply(params, None, ids.astype(jnp.float32), mask)
  too_big = ids.at[0, 5].set(vocab)
  with pytest.raises(ValueError, match=rf'mlm: token ids must lie in \[0, '
                     rf'{vocab}\).*values in \[10, {vocab}\]'):
    model.apply(params, None, too_big, mask)
  with pytest.raises(ValueError, match=r'mlm: inputs \[B, T\] has no examples'):
    model.apply(params, None, ids[:0], mask[:0])
  # The documented behaviour under jit: the id is clamped to V - 1.
  jitted = jax.jit(model.apply)
  np.testing.assert_array_equal(
      jitted(params, None, too_big, mask),
      jitted(params, None, too_big.at[0, 5].set(vocab - 1), mask))


def test_empty_text_for_the_classifier():
  from perceiver.tasks.language import models  # pylint: disable=g-import-not-at-top
  config = models.smoke_config()
  fwd = models.glue_classifier(config, num_labels=2)
  with pytest.raises(ValueError, match=r'glue_classifier: inputs \[B, T\] has '
                     r'no elements \(T=0'):
    _init(lambda i, m: fwd(i, m, is_training=False),
          jnp.zeros((1, 0), jnp.int32), jnp.ones((1, 0), jnp.int32))
