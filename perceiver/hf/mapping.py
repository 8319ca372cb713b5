"""Our models <-> transformers' Perceiver classes: class, config, weights.

Glossary of shapes: B batch, M inputs, N latents, D latent channels,
O outputs, C/E channels, V vocabulary, K classes, L self-attention layers.

transformers builds each released family ([P] §4.1 MLM, App. A ImageNet,
§4.2 flow, §4.3 multimodal autoencoding) as a class with most of its
architecture hard-wired (modeling_perceiver.py); only the encoder and a few
sizes come from `PerceiverConfig`. `plan(spec)` picks the class, fills the
config, and refuses, naming each option, any model the class cannot compute
exactly. Everything here is numpy: no torch is needed to map weights.

Parameter names. Ours are the release's Haiku module paths (the manifests of
tests/golden_data/*.json); theirs are the attribute paths of transformers'
modules (state_dict keys). The shared blocks ([P] App. E.1: pre-LayerNorm
attention and MLP, both residual):

  ours                                transformers
  <enc>/~/trainable_position_encoding perceiver.embeddings.latents [N, D]
  .../cross_attention/                PerceiverLayer(is_cross_attention=True)
      layer_norm, layer_norm_1          attention.self.layernorm1 (queries),
                                        attention.self.layernorm2 (keys/values)
      attention/linear, _1, _2, _3      attention.self.query, .key, .value,
                                        attention.output.dense
      layer_norm_2, mlp/linear, _1      layernorm, mlp.dense1, mlp.dense2
  <enc>/~/self_attention{,_1,...}     perceiver.encoder.self_attends.{i}
      layer_norm, layer_norm_1          attention.self.layernorm1, layernorm
      (attention, mlp as above)
  <decoder>/basic_decoder/output      ...decoder.final_layer

Layouts: hk.Linear `w` [in, out] is nn.Linear `weight` [out, in]
transposed; hk.Conv2D `w` [kh, kw, in, out] is nn.Conv2d `weight`
[out, in, kh, kw] permuted (both cross-correlate: no flip); LayerNorm
scale/offset are weight/bias; BatchNorm's [1, 1, 1, C] params and moving
averages are [C].

What transformers cannot hold, found by reading modeling_perceiver.py and
checked by the parity tests:
  * the average+project head of the original Perceiver (no image class uses
    PerceiverProjectionDecoder), inputs other than RGB, and every decoder
    setting other than the one its class hard-wires (heads, qk/v channels,
    query residual, position encoding), listed per class in `plan`;
  * the released ImageNet "learned" decoder: the class adds a query
    residual (use_query_residual=True), the release does not;
  * the ImageNet "conv" stem: its 7x7 stride-2 convolution pads 3/3 where
    TensorFlow's SAME pads 2/3 on even sizes, and its 3x3 max-pool has no
    padding (55x55 features from 224x224 where the release has 56x56). The
    weights map exactly but the function differs, so the export refuses it
    unless allowed (`allow_inexact`), and says so;
  * a vocabulary other than the 262 UTF-8 bytes ids for the tokenizer
    (PerceiverTokenizer is bytes only): SentencePiece models export without
    tokenizer files on request (`tokenizer=False`).
GELU: the release uses the tanh approximation (jax.nn.gelu), transformers'
default 'gelu' is exact (erf), a difference of up to 5e-4 per activation:
the exported config sets hidden_act='gelu_pytorch_tanh'.
"""
import dataclasses
import functools
import inspect
import math
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from perceiver import builders
from perceiver import io_processors
from perceiver import perceiver
from perceiver import release_specs
from perceiver.hf import specs

Spec = specs.Spec
Tree = dict[str, dict[str, np.ndarray]]
Tensors = dict[str, np.ndarray]  # transformers state_dict key -> array

BYTES_VOCAB_SIZE = 262  # 256 bytes + 6 reserved ids (perceiver.bytes_tokenizer)
HIDDEN_ACT = 'gelu_pytorch_tanh'  # = jax.nn.gelu (tanh approximation)
# Activations a transformers checkpoint may use; ours is always tanh GELU.
TANH_GELUS = ('gelu_pytorch_tanh', 'gelu_new', 'gelu_python_tanh')
EXACT_GELUS = ('gelu', 'gelu_python')

HF_CLASSES = {
    'language_mlm': 'PerceiverForMaskedLM',
    'imagenet_fourier': 'PerceiverForImageClassificationFourier',
    'imagenet_learned': 'PerceiverForImageClassificationLearned',
    'imagenet_conv': 'PerceiverForImageClassificationConvProcessing',
    'optical_flow': 'PerceiverForOpticalFlow',
    'video_autoencoding': 'PerceiverForMultimodalAutoencoding',
}
FAMILY_OF_CLASS = {v: k for k, v in HF_CLASSES.items()}

CONV_INEXACT = (
    "transformers' PerceiverForImageClassificationConvProcessing pads its "
    '7x7 stride-2 convolution 3/3 (TensorFlow SAME, used by the release and '
    'here, pads 2/3 on even sizes) and max-pools without padding (55x55 '
    'features from 224x224 where the release has 56x56). The weights map '
    'exactly, but the exported model computes a different function.')


class UnsupportedByTransformersError(ValueError):
  """The model has options that transformers' Perceiver class cannot hold."""


@dataclasses.dataclass(frozen=True)
class Plan:
  """How one of our models becomes a transformers model."""
  family: str  # a release family name (HF_CLASSES)
  hf_class: str  # e.g. 'PerceiverForMaskedLM'
  hf_config: dict[str, Any]  # PerceiverConfig kwargs
  tokenizer: bool  # write PerceiverTokenizer files
  inexact: tuple[str, ...] = ()  # why transformers computes something else
  notes: tuple[str, ...] = ()  # what a user of the export must know


#  ------------------------------------------------------------
#  ------------------  Effective kwargs  ----------------------
#  ------------------------------------------------------------


def _defaults(fn) -> dict[str, Any]:
  params = inspect.signature(fn).parameters.items()
  return {name: p.default for name, p in params
          if p.default is not inspect.Parameter.empty}


_ENCODER_DEFAULTS = _defaults(perceiver.PerceiverEncoder.__init__)
_DECODER_DEFAULTS = _defaults(perceiver.BasicDecoder.__init__)
_FLOW_DECODER_DEFAULTS = _defaults(perceiver.FlowDecoder.__init__)
_IMAGE_PREP_DEFAULTS = _defaults(io_processors.ImagePreprocessor.__init__)


def _video_encoder(spec: Mapping[str, Any]) -> dict[str, Any]:
  """The encoder kwargs builders.video_autoencoder passes (plus overrides)."""
  enc = builders.video_encoder_kwargs(
      num_self_attends_per_block=spec['num_self_attends_per_block'],
      z_index_dim=spec['z_index_dim'], num_z_channels=spec['num_z_channels'])
  enc.update(spec.get('encoder_kwargs') or {})
  return enc


def encoder_kwargs(spec: Mapping[str, Any]) -> dict[str, Any]:
  """Every PerceiverEncoder kwarg of the spec's model, defaults filled."""
  kind = spec['builder']
  if kind == 'image_classifier':
    enc = spec['config']['encoder']
  elif kind == 'video_autoencoder':
    enc = _video_encoder(spec)
  else:
    enc = spec['encoder']
  return {**_ENCODER_DEFAULTS, **enc}


def _fourier(kwargs: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
  """Fourier encoding kwargs with the defaults filled, comparable."""
  if kwargs is None:
    return None
  res = kwargs.get('max_resolution')
  return {'num_bands': kwargs.get('num_bands'),
          'max_resolution': None if res is None else tuple(int(r) for r in res),
          'concat_pos': kwargs.get('concat_pos', True),
          'sine_only': kwargs.get('sine_only', False)}


def _hf_fourier(num_bands: int, max_resolution: Sequence[int]):
  return {'num_bands': num_bands,
          'max_resolution': tuple(int(r) for r in max_resolution),
          'concat_pos': True, 'sine_only': False}


class _Checks:
  """Collects every unsupported option, so one error lists them all."""

  def __init__(self, hf_class: str):
    self.hf_class = hf_class
    self.problems: list[str] = []

  def require(self, option: str, value: Any, required: Any, why: str = ''):
    if value != required:
      self.problems.append(
          f'{option}={value!r}: {self.hf_class} requires {required!r}'
          + (f' ({why})' if why else ''))

  def require_all(self, prefix: str, values: Mapping[str, Any],
                  wants: Mapping[str, Any]):
    for key, want in wants.items():
      self.require(f'{prefix}.{key}' if prefix else key, values.get(key),
                   want)

  def fail(self, message: str):
    self.problems.append(message)

  def raise_if_any(self):
    if self.problems:
      raise UnsupportedByTransformersError(
          f'transformers cannot express this model as {self.hf_class}:\n  - '
          + '\n  - '.join(self.problems))


def _check_decoder_attention(checks: _Checks, prefix: str,
                             dec: Mapping[str, Any], *, num_z_channels: int,
                             query_channels: int, shape_for_attn: str,
                             hf_qk: Optional[int], hf_v: Optional[int],
                             hf_heads: int):
  """The decoder cross-attention's heads and channels on both sides.

  Ours: qk = qk_channels or D (decoders attend with shape 'kv'),
  v = v_channels or qk. transformers' decoders take qk/v from their class,
  and when it gives none, qk from the *encoder's*
  cross_attention_shape_for_attention (D for 'kv', the query channels for
  'q').
  """
  ours_qk = dec.get('qk_channels') or num_z_channels
  ours_v = dec.get('v_channels') or ours_qk
  theirs_qk = hf_qk or (num_z_channels if shape_for_attn == 'kv'
                        else query_channels)
  theirs_v = hf_v or theirs_qk
  checks.require(f'{prefix}.num_heads', dec.get('num_heads', 1), hf_heads)
  checks.require(f'{prefix}.qk_channels (effective)', ours_qk, theirs_qk)
  checks.require(f'{prefix}.v_channels (effective)', ours_v, theirs_v)


def _encoder_config(enc: Mapping[str, Any]) -> dict[str, Any]:
  return dict(
      num_latents=enc['z_index_dim'], d_latents=enc['num_z_channels'],
      num_blocks=enc['num_blocks'],
      num_self_attends_per_block=enc['num_self_attends_per_block'],
      num_self_attention_heads=enc['num_self_attend_heads'],
      num_cross_attention_heads=enc['num_cross_attend_heads'],
      qk_channels=enc['qk_channels'], v_channels=enc['v_channels'],
      cross_attention_shape_for_attention=enc['cross_attention_shape_for_attn'],
      self_attention_widening_factor=enc['self_attend_widening_factor'],
      cross_attention_widening_factor=enc['cross_attend_widening_factor'],
      use_query_residual=enc['use_query_residual'],
      # Our models have no attention-probability dropout.
      attention_probs_dropout_prob=0.0, hidden_act=HIDDEN_ACT)


def _learned_image_size(params: Optional[Tree]) -> Optional[int]:
  """The side of the square images a learned position table was made for
  (None: unknown; negative: -rows of a non-square table)."""
  if params is None or 'pos_embs' not in params.get(LEARNED_POS, {}):
    return None
  rows = params[LEARNED_POS]['pos_embs'].shape[0]
  side = math.isqrt(rows)
  return side if side * side == rows else -rows


#  ------------------------------------------------------------
#  ----------------------  The plan  --------------------------
#  ------------------------------------------------------------


def family(spec: Mapping[str, Any]) -> str:
  """The release family (and so the transformers class) of a spec."""
  kind = spec['builder']
  if kind == 'mlm':
    return 'language_mlm'
  if kind == 'optical_flow':
    return 'optical_flow'
  if kind == 'video_autoencoder':
    return 'video_autoencoding'
  cfg = spec['config']
  if cfg.get('projection_decoder'):
    raise UnsupportedByTransformersError(
        'projection_decoder=True (the original Perceiver\'s average+project '
        'head): no transformers image classifier uses it (they all decode '
        'with a cross-attending query).')
  prep_type = {**_IMAGE_PREP_DEFAULTS, **cfg['input_preprocessor']}[
      'prep_type']
  by_prep = {'pixels': 'imagenet_fourier', 'conv1x1': 'imagenet_learned',
             'conv': 'imagenet_conv'}
  if prep_type not in by_prep:
    channels = spec.get('input_channels', 3)
    raise UnsupportedByTransformersError(
        f'input_preprocessor.prep_type={prep_type!r}: transformers\' image '
        f'classifiers preprocess with {sorted(by_prep)} only (Fourier, '
        'learned, conv)' + ('' if channels == 3 else
                            f'; input_channels={channels}: and take RGB '
                            'images (3)') + '.')
  return by_prep[prep_type]


def _view(kwargs: Mapping[str, Any], defaults: Mapping[str, Any]
          ) -> dict[str, Any]:
  """Module kwargs with defaults filled and position kwargs comparable:
  'fourier_position_encoding_kwargs' normalised, the trainable table's
  channels as 'trainable_position_encoding_kwargs.num_channels'."""
  out = {**defaults, 'project_pos_dim': -1, **kwargs}
  out['fourier_position_encoding_kwargs'] = _fourier(
      out.get('fourier_position_encoding_kwargs'))
  out['trainable_position_encoding_kwargs.num_channels'] = (
      out.get('trainable_position_encoding_kwargs') or {}).get('num_channels')
  return out


def _query_decoder_wants(*, residual: bool, final_project: bool,
                         channels: int) -> dict[str, Any]:
  """What a decoder with one learned query per output must be."""
  return {'use_query_residual': residual, 'final_project': final_project,
          'concat_preprocessed_input': False,
          'position_encoding_type': 'trainable', 'project_pos_dim': -1,
          'trainable_position_encoding_kwargs.num_channels': channels}


def plan(spec: Mapping[str, Any], params: Optional[Tree] = None, *,
         allow_inexact: bool = False, tokenizer: bool = True) -> Plan:
  """The transformers class and config for `spec`; raises
  UnsupportedByTransformersError naming every option it cannot express.

  Args:
    spec: the model (see perceiver.hf.specs).
    params: the release-layout params; needed for the learned-position
      image classifier, whose image size only the position table holds.
    allow_inexact: accept a class that holds the weights but computes a
      different function (the ImageNet conv stem; see CONV_INEXACT).
    tokenizer: MLM only: also write tokenizer files (bytes models only).
  """
  spec = specs.clean(spec)
  fam = family(spec)
  hf_class = HF_CLASSES[fam]
  checks = _Checks(hf_class)
  enc = encoder_kwargs(spec)
  d = enc['num_z_channels']
  shape = enc['cross_attention_shape_for_attn']
  config = dict(_encoder_config(enc), architectures=[hf_class])
  notes, inexact = [], []
  decoder = spec.get('decoder')
  decoder = decoder if isinstance(decoder, Mapping) else {}
  for option, width in (
      ('encoder.cross_attend_local_width', enc.get('cross_attend_local_width')),
      ('decoder.local_width', decoder.get('local_width'))):
    if width:
      checks.fail(f'{option}={width!r}: transformers\' Perceiver has no '
                  'locality prior on the attention logits (a DEVIATION of '
                  'this project; train without it to export)')
  if enc['dropout_prob']:
    notes.append(
        f'encoder.dropout_prob={enc["dropout_prob"]} (residual dropout) has '
        'no transformers counterpart: PyTorch fine-tuning runs without it. '
        'Evaluation outputs are unaffected.')
  attention = functools.partial(_check_decoder_attention, checks, 'decoder',
                                num_z_channels=d, shape_for_attn=shape)

  if fam == 'language_mlm':
    e, t = spec['d_model'], spec['max_seq_len']
    dec = _view(spec['decoder'], _DECODER_DEFAULTS)
    attention(dec, query_channels=e, hf_qk=256, hf_v=e, hf_heads=8)
    checks.require_all('decoder', dec, _query_decoder_wants(
        residual=False, final_project=False, channels=e))
    checks.require('decoder.output_index_dims',
                   tuple(np.atleast_1d(dec['output_index_dims']).tolist()),
                   (t,), 'one query per input position')
    if tokenizer:
      checks.require(
          'vocab_size', spec['vocab_size'], BYTES_VOCAB_SIZE,
          'PerceiverTokenizer is the UTF-8 bytes tokenizer; a SentencePiece '
          'model can be exported without tokenizer files (tokenizer=False, '
          '--notokenizer)')
    config.update(vocab_size=spec['vocab_size'], d_model=e,
                  max_position_embeddings=t)

  elif fam.startswith('imagenet_'):
    cfg = spec['config']
    prep = _view(cfg['input_preprocessor'], _IMAGE_PREP_DEFAULTS)
    dec = _view(cfg.get('decoder') or {}, _DECODER_DEFAULTS)
    checks.require('input_channels', spec.get('input_channels', 3), 3,
                   'RGB images')
    attention(dec, query_channels=d, hf_qk=None, hf_v=None, hf_heads=1)
    checks.require('decoder.use_query_residual', dec['use_query_residual'],
                   True, 'the class adds the query residual'
                   + (" (DeepMind's released imagenet_learned checkpoint "
                      'has False, so transformers cannot reproduce it)'
                      if fam == 'imagenet_learned' else ''))
    checks.require_all('decoder', dec, {
        k: v for k, v in _query_decoder_wants(
            residual=True, final_project=True, channels=d).items()
        if k != 'use_query_residual'})  # checked above, with the reason
    wants = {'n_extra_pos_mlp': 0, 'concat_or_add_pos': 'concat'}
    if fam == 'imagenet_fourier':
      wants.update(spatial_downsample=1, position_encoding_type='fourier',
                   project_pos_dim=-1, fourier_position_encoding_kwargs=(
                       _hf_fourier(64, (224, 224))))
    elif fam == 'imagenet_learned':
      wants.update({'spatial_downsample': 1, 'num_channels': 256,
                    'position_encoding_type': 'trainable',
                    'trainable_position_encoding_kwargs.num_channels': 256,
                    'project_pos_dim': 256})
      side = _learned_image_size(params)
      if side is None:
        checks.fail('image_size unknown: pass the params (the learned '
                    'position table [H*W, 256] holds it)')
      elif side < 0:
        checks.fail(f'a position table of {-side} rows: the class needs '
                    'square images (image_size**2 rows)')
      else:
        config['image_size'] = side
    else:  # imagenet_conv: one 4x conv+pool layer
      wants.update(spatial_downsample=4, num_channels=64,
                   conv2d_use_batchnorm=True, position_encoding_type='fourier',
                   project_pos_dim=-1, fourier_position_encoding_kwargs=(
                       _hf_fourier(64, (56, 56))))
      inexact.append(CONV_INEXACT)
    checks.require_all('input_preprocessor', prep, wants)
    config['num_labels'] = spec['num_classes']

  elif fam == 'optical_flow':
    prep = _view(spec['input_preprocessor'], _IMAGE_PREP_DEFAULTS)
    dec = _view(spec['decoder'], {**_DECODER_DEFAULTS,
                                  **_FLOW_DECODER_DEFAULTS})
    size = tuple(int(s) for s in dec['output_image_shape'])
    checks.require_all('input_preprocessor', prep, {
        'prep_type': 'patches', 'spatial_downsample': 1,
        'temporal_downsample': 2, 'conv_after_patching': True,
        'num_channels': 64, 'position_encoding_type': 'fourier',
        'n_extra_pos_mlp': 0, 'concat_or_add_pos': 'concat',
        'project_pos_dim': -1,
        # max_resolution: the class uses train_size = output_image_shape.
        'fourier_position_encoding_kwargs': _hf_fourier(64, size)})
    # Queries are the preprocessed inputs: 64 + 2 + 2 * 2 * 64 channels.
    attention(dec, query_channels=322, hf_qk=None, hf_v=None, hf_heads=1)
    checks.require_all('decoder', dec, {
        'use_query_residual': False, 'output_num_channels': 2,
        'rescale_factor': 100.0, 'final_project': True,
        'concat_preprocessed_input': False})
    config['train_size'] = list(size)
    scale = spec.get('flow_scale_factor', 20)
    notes.append(
        f'PerceiverForOpticalFlow returns the network output; this model '
        f'multiplies it by flow_scale_factor={scale} (as the release\'s '
        f'colab does): flow = {scale} * outputs.logits. Its inputs are '
        'patches_for_flow(frames) in [B, 2, 27, H, W] (channels first).')

  else:  # video_autoencoding
    checks.require_all('', {'spatial_downsample': 4, 'label_mask_prob': 1.0,
                            **spec}, {
                                'audio_num_bands': 192, 'image_num_bands': 32,
                                'spatial_downsample': 4,
                                'label_mask_prob': 1.0})
    if spec.get('decoder_kwargs'):
      checks.fail(f'decoder_kwargs={spec["decoder_kwargs"]!r}: the class '
                  'hard-wires its decoder')
    if spec.get('audio_gain', 1.0) != 1.0:
      checks.fail(f'audio_gain={spec["audio_gain"]!r}: the class has no '
                  'audio gain (a DEVIATION of this project)')
    if spec.get('local_width', 0.0):
      checks.fail(f'local_width={spec["local_width"]!r}: the class has no '
                  'locality prior (a DEVIATION of this project)')
    # The shared decoder's queries: the widest modality query (Fourier
    # features of audio (1 dim, 192 bands) and video (3 dims, 32 bands),
    # the label's learned query) plus 2 padding channels.
    attention({}, query_channels=max(385, 195, spec['decoder_channels']) + 2,
              hf_qk=None, hf_v=None, hf_heads=1)
    t, s = spec['num_frames'], spec['image_size']
    config.update(num_frames=t, image_size=spec['fourier_image_resolution'],
                  audio_samples_per_frame=spec['audio_samples_per_frame'],
                  samples_per_patch=spec['samples_per_patch'],
                  output_shape=[1, t, s, s], output_num_channels=d,
                  num_labels=spec['num_classes'],
                  _label_trainable_num_channels=spec['decoder_channels'])

  if inexact and not allow_inexact:
    checks.fail(' '.join(inexact) + ' Pass allow_inexact=True '
                '(--allow_inexact) to export it anyway.')
  checks.raise_if_any()
  return Plan(family=fam, hf_class=hf_class, hf_config=config,
              tokenizer=fam == 'language_mlm' and tokenizer,
              inexact=tuple(inexact), notes=tuple(notes))


#  ------------------------------------------------------------
#  ----------------------  Weight pairs  ----------------------
#  ------------------------------------------------------------

# How a leaf changes on the way to transformers:
#   'same'  unchanged;  'T' 2D transpose (Linear);  'conv' [kh,kw,in,out] ->
#   [out,in,kh,kw];  'bn' [1,1,1,C] -> [C];  'count' int32 [] -> int64 [].
@dataclasses.dataclass(frozen=True)
class Pair:
  module: str  # Haiku module path
  name: str  # Haiku leaf name
  key: str  # transformers state_dict key
  kind: str = 'same'


def _linear(module: str, key: str) -> list[Pair]:
  return [Pair(module, 'w', f'{key}.weight', 'T'),
          Pair(module, 'b', f'{key}.bias')]


def _layer_norm(module: str, key: str) -> list[Pair]:
  return [Pair(module, 'scale', f'{key}.weight'),
          Pair(module, 'offset', f'{key}.bias')]


def _attention_and_mlp(module: str, key: str) -> list[Pair]:
  out = []
  for i, name in enumerate(('query', 'key', 'value')):
    out += _linear(f'{module}/attention/linear' + (f'_{i}' if i else ''),
                   f'{key}.attention.self.{name}')
  out += _linear(f'{module}/attention/linear_3',
                 f'{key}.attention.output.dense')
  out += _linear(f'{module}/mlp/linear', f'{key}.mlp.dense1')
  out += _linear(f'{module}/mlp/linear_1', f'{key}.mlp.dense2')
  return out


def _cross_attention(module: str, key: str) -> list[Pair]:
  return (_layer_norm(f'{module}/layer_norm',
                      f'{key}.attention.self.layernorm1')
          + _layer_norm(f'{module}/layer_norm_1',
                        f'{key}.attention.self.layernorm2')
          + _layer_norm(f'{module}/layer_norm_2', f'{key}.layernorm')
          + _attention_and_mlp(module, key))


def _self_attention(module: str, key: str) -> list[Pair]:
  return (_layer_norm(f'{module}/layer_norm',
                      f'{key}.attention.self.layernorm1')
          + _layer_norm(f'{module}/layer_norm_1', f'{key}.layernorm')
          + _attention_and_mlp(module, key))


def _encoder(enc: Mapping[str, Any]) -> list[Pair]:
  name = enc.get('name') or 'perceiver_encoder'
  out = [Pair(f'{name}/~/trainable_position_encoding', 'pos_embs',
              'perceiver.embeddings.latents')]
  out += _cross_attention(f'{name}/~/cross_attention',
                          'perceiver.encoder.cross_attention')
  for i in range(enc['num_self_attends_per_block']):
    out += _self_attention(f'{name}/~/self_attention' + (f'_{i}' if i else ''),
                           f'perceiver.encoder.self_attends.{i}')
  return out


def _basic_decoder(module: str, key: str, *, final: bool) -> list[Pair]:
  out = _cross_attention(f'{module}/cross_attention',
                         f'{key}.decoding_cross_attention')
  if final:
    out += _linear(f'{module}/output', f'{key}.final_layer')
  return out


def _pos(module: str, key: str) -> Pair:
  return Pair(f'{module}/~/trainable_position_encoding', 'pos_embs', key)


LEARNED_POS = ('image_preprocessor/~_build_network_inputs/'
                'trainable_position_encoding')
_BN = 'image_preprocessor/~/conv2_d_downsample/~/batchnorm'
_BN_KEY = 'perceiver.input_preprocessor.convnet.batchnorm'
MODALITIES = ('audio', 'image', 'label')


def pairs(spec: Mapping[str, Any]) -> tuple[list[Pair], list[Pair]]:
  """(params pairs, state pairs) for a spec's model, release layout."""
  spec = specs.clean(spec)
  fam = family(spec)
  out = _encoder(encoder_kwargs(spec))
  state: list[Pair] = []
  if fam == 'language_mlm':
    pre = 'perceiver.input_preprocessor'
    out += [Pair('embed', 'embeddings', f'{pre}.embeddings.weight'),
            Pair('trainable_position_encoding', 'pos_embs',
                 f'{pre}.position_embeddings.weight'),
            _pos('basic_decoder',
                 'perceiver.decoder.output_position_encodings.'
                 'position_embeddings'),
            Pair('embedding_decoder', 'bias', 'embedding_decoder.bias')]
    out += _basic_decoder('basic_decoder', 'perceiver.decoder', final=False)
  elif fam.startswith('imagenet_'):
    dec = 'classification_decoder/~/basic_decoder'
    out += _basic_decoder(dec, 'perceiver.decoder.decoder', final=True)
    out.append(_pos(dec, 'perceiver.decoder.decoder.output_position_encodings.'
                    'position_embeddings'))
    pre = 'perceiver.input_preprocessor'
    if fam == 'imagenet_learned':
      out += [Pair('image_preprocessor/~/conv2_d', 'w',
                   f'{pre}.convnet_1x1.weight', 'conv'),
              Pair('image_preprocessor/~/conv2_d', 'b',
                   f'{pre}.convnet_1x1.bias'),
              Pair(LEARNED_POS, 'pos_embs',
                   f'{pre}.position_embeddings.position_embeddings')]
      out += _linear('image_preprocessor/~_build_network_inputs/'
                     'position_encoding_projector/linear',
                     f'{pre}.positions_projection')
    elif fam == 'imagenet_conv':
      out += [Pair('image_preprocessor/~/conv2_d_downsample/~/conv', 'w',
                   f'{pre}.convnet.conv.weight', 'conv'),
              Pair(_BN, 'scale', f'{_BN_KEY}.weight', 'bn'),
              Pair(_BN, 'offset', f'{_BN_KEY}.bias', 'bn')]
      state += [Pair(f'{_BN}/~/mean_ema', 'average',
                     f'{_BN_KEY}.running_mean', 'bn'),
                Pair(f'{_BN}/~/var_ema', 'average', f'{_BN_KEY}.running_var',
                     'bn'),
                Pair(f'{_BN}/~/mean_ema', 'counter',
                     f'{_BN_KEY}.num_batches_tracked', 'count')]
  elif fam == 'optical_flow':
    out += _linear('image_preprocessor/patches_linear',
                   'perceiver.input_preprocessor.conv_after_patches')
    out += _basic_decoder('flow_decoder/~/basic_decoder',
                          'perceiver.decoder.decoder', final=True)
  else:  # video_autoencoding
    for m in MODALITIES:
      out += [Pair(f'multimodal_preprocessor/{m}_padding', 'pos_embs',
                   f'perceiver.input_preprocessor.padding.{m}'),
              Pair(f'multimodal_preprocessor/{m}_mask_token', 'pos_embs',
                   f'perceiver.input_preprocessor.mask.{m}'),
              Pair(f'multimodal_decoder/~decoder_query/{m}_padding',
                   'pos_embs', f'perceiver.decoder.padding.{m}')]
    out += _basic_decoder('multimodal_decoder/~/basic_decoder',
                          'perceiver.decoder.decoder', final=True)
    out.append(_pos('classification_decoder/~/basic_decoder',
                    'perceiver.decoder.modalities.label.decoder.'
                    'output_position_encodings.position_embeddings'))
    post = 'perceiver.output_postprocessor.modalities'
    out += _linear('audio_postprocessor/linear', f'{post}.audio.classifier')
    out += _linear('projection_postprocessor/linear',
                   f'{post}.image.classifier')
    out += _linear('classification_postprocessor/linear',
                   f'{post}.label.classifier')
  return out, state


def _to_hf(x: np.ndarray, kind: str) -> np.ndarray:
  x = np.asarray(x)
  if kind == 'T':
    return np.ascontiguousarray(x.T)
  if kind == 'conv':
    return np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))
  if kind == 'bn':
    return np.ascontiguousarray(x.reshape(-1))
  if kind == 'count':
    return np.asarray(x, np.int64)
  return np.ascontiguousarray(x)


def _from_hf(x: np.ndarray, kind: str) -> np.ndarray:
  x = np.asarray(x)
  if kind == 'T':
    return np.ascontiguousarray(x.T)
  if kind == 'conv':
    return np.ascontiguousarray(np.transpose(x, (2, 3, 1, 0)))
  if kind == 'bn':
    return np.ascontiguousarray(x.reshape(1, 1, 1, -1))
  if kind == 'count':
    return np.asarray(x, np.int32)
  return np.ascontiguousarray(x)


def _leaves(tree: Mapping[str, Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
  return ((m, n) for m, leaves in tree.items() for n in leaves)


def _shape_to_hf(shape: Sequence[int], kind: str) -> tuple[int, ...]:
  shape = tuple(shape)
  if kind == 'T':
    return shape[::-1]
  if kind == 'conv':
    return tuple(shape[i] for i in (3, 2, 0, 1))
  if kind == 'bn':
    return (int(np.prod(shape)),)
  return shape


def hf_shapes(spec: Mapping[str, Any],
              param_manifest: Mapping[str, Mapping[str, Sequence[int]]],
              state_manifest: Optional[Mapping[str, Any]] = None
              ) -> dict[str, tuple[int, ...]]:
  """{transformers key: shape} from our manifests (e.g. the release specs'
  param_manifest), without any array: checks full-size models for free."""
  param_pairs, state_pairs = pairs(spec)
  out = {}
  for manifest, prs in ((param_manifest, param_pairs),
                        (state_manifest or {}, state_pairs)):
    for p in prs:
      out[p.key] = _shape_to_hf(manifest[p.module][p.name], p.kind)
  return out


def extra_key(module: str, name: str) -> str:
  return f'{module}|{name}'


def to_hf(spec: Mapping[str, Any], params: Tree, state: Optional[Tree] = None
          ) -> tuple[Tensors, Tensors]:
  """Our release-layout (params, state) -> (transformers tensors, extras).

  `extras` holds the Haiku state transformers has no slot for (BatchNorm's
  zero-debiasing `hidden` sums and the variance counter), keyed
  'module|name', so that an export round-trips bit for bit.
  """
  param_pairs, state_pairs = pairs(spec)
  state = state or {}
  tensors: Tensors = {}
  for what, tree, prs in (('params', params, param_pairs),
                          ('state', state, state_pairs)):
    missing = [p for p in prs if p.name not in tree.get(p.module, {})]
    if missing:
      raise ValueError(
          f'The {what} lack {len(missing)} entries the spec\'s model has, '
          'e.g. ' + ', '.join(f'{p.module}/{p.name}' for p in missing[:5])
          + '. Do the checkpoint and the spec (config) describe the same '
          'model?')
    for p in prs:
      tensors[p.key] = _to_hf(tree[p.module][p.name], p.kind)
  used = {(p.module, p.name) for p in param_pairs}
  unused = [f'{m}/{n}' for m, n in _leaves(params) if (m, n) not in used]
  if unused:
    raise UnsupportedByTransformersError(
        f'{len(unused)} parameters have no place in transformers\' '
        f'{HF_CLASSES[family(spec)]}: ' + ', '.join(unused[:8]))
  used_state = {(p.module, p.name) for p in state_pairs}
  extras = {extra_key(m, n): np.asarray(state[m][n])
            for m, n in _leaves(state) if (m, n) not in used_state}
  return tensors, extras


# Without our sidecar (a hub checkpoint), BatchNorm's EMA `hidden` is set to
# the running average and its `counter` to at least this: 0.9**158 < 2**-24,
# so Haiku's zero-debiasing divides by exactly 1.0 in float32 and continued
# training in JAX carries on from PyTorch's running statistics.
_WARM_COUNTER = 158


def from_hf(spec: Mapping[str, Any], tensors: Mapping[str, np.ndarray],
            extras: Optional[Mapping[str, np.ndarray]] = None
            ) -> tuple[Tree, Tree]:
  """transformers tensors (+ our extras) -> release-layout (params, state)."""
  param_pairs, state_pairs = pairs(spec)
  keys = {p.key for p in param_pairs + state_pairs}
  missing = sorted(keys - set(tensors))
  unexpected = sorted(set(tensors) - keys)
  if missing or unexpected:
    raise ValueError(
        f'The transformers weights do not fit {HF_CLASSES[family(spec)]} of '
        f'this config: missing {missing[:5]} ({len(missing)}), unexpected '
        f'{unexpected[:5]} ({len(unexpected)}).')
  params: Tree = {}
  for p in param_pairs:
    params.setdefault(p.module, {})[p.name] = _from_hf(tensors[p.key], p.kind)
  state: Tree = {}
  for p in state_pairs:
    state.setdefault(p.module, {})[p.name] = _from_hf(tensors[p.key], p.kind)
  if state_pairs:
    if extras:
      for key, value in extras.items():
        module, name = key.split('|')
        state.setdefault(module, {})[name] = np.asarray(value)
    else:
      counter = np.maximum(state[f'{_BN}/~/mean_ema']['counter'],
                           np.int32(_WARM_COUNTER)).astype(np.int32)
      for ema in ('mean_ema', 'var_ema'):
        leaves = state[f'{_BN}/~/{ema}']
        leaves['hidden'] = leaves['average'].copy()
        leaves['counter'] = counter
  return params, state


#  ------------------------------------------------------------
#  -------------  transformers config -> spec  ----------------
#  ------------------------------------------------------------


def _encoder_spec(cfg: Mapping[str, Any]) -> dict[str, Any]:
  return dict(
      num_self_attends_per_block=cfg['num_self_attends_per_block'],
      num_blocks=cfg['num_blocks'], z_index_dim=cfg['num_latents'],
      num_z_channels=cfg['d_latents'], qk_channels=cfg.get('qk_channels'),
      v_channels=cfg.get('v_channels'),
      num_cross_attend_heads=cfg['num_cross_attention_heads'],
      num_self_attend_heads=cfg['num_self_attention_heads'],
      cross_attend_widening_factor=cfg['cross_attention_widening_factor'],
      self_attend_widening_factor=cfg['self_attention_widening_factor'],
      cross_attention_shape_for_attn=cfg[
          'cross_attention_shape_for_attention'],
      use_query_residual=cfg['use_query_residual'], dropout_prob=0.0,
      z_pos_enc_init_scale=0.02)


def class_of(cfg: Mapping[str, Any]) -> str:
  """The PerceiverFor* class a config.json names."""
  archs = [a for a in (cfg.get('architectures') or []) if a in FAMILY_OF_CLASS]
  if len(archs) != 1:
    raise ValueError(
        f'config.json names architectures {cfg.get("architectures")}; '
        f'expected exactly one of {sorted(FAMILY_OF_CLASS)}.')
  return archs[0]


def _num_labels(cfg: Mapping[str, Any]) -> int:
  """config.json stores the classes as id2label (num_labels is derived)."""
  if cfg.get('num_labels') is not None:
    return int(cfg['num_labels'])
  return len(cfg.get('id2label') or {}) or 2  # PretrainedConfig's default


def spec_from_hf_config(cfg: Mapping[str, Any]) -> tuple[Spec, list[str]]:
  """(our spec, notes) for a transformers Perceiver config.json dict."""
  hf_class = class_of(cfg)
  fam = FAMILY_OF_CLASS[hf_class]
  notes = []
  act = cfg.get('hidden_act', 'gelu')
  if act in EXACT_GELUS:
    notes.append(
        f'hidden_act={act!r} is the exact (erf) GELU; our models use the '
        'tanh approximation, as the release that DeepMind trained: outputs '
        'differ from transformers\' by up to ~1e-3.')
  elif act not in TANH_GELUS:
    raise UnsupportedByTransformersError(
        f'hidden_act={act!r}: our models use (tanh) GELU only.')
  if cfg.get('model_type') != 'perceiver':
    raise ValueError(f'model_type={cfg.get("model_type")!r} is not '
                     "'perceiver'.")
  enc = _encoder_spec(cfg)
  d = cfg['d_latents']
  class_decoder = dict(num_z_channels=d, position_encoding_type='trainable',
                       trainable_position_encoding_kwargs=dict(
                           init_scale=0.02, num_channels=d),
                       use_query_residual=True)
  # What config.json does not say is the release's (its JSON spec).
  release = release_specs.load(f'full_{fam}')
  if fam == 'language_mlm':
    e, t = cfg['d_model'], cfg['max_position_embeddings']
    decoder = release_specs.override(release['decoder'], {
        'output_num_channels': d, 'output_index_dims': t,
        'num_z_channels': d, 'v_channels': e,
        'trainable_position_encoding_kwargs.num_channels': e})
    spec = dict(builder='mlm', vocab_size=cfg['vocab_size'], d_model=e,
                max_seq_len=t, encoder=enc, decoder=decoder)
  elif fam.startswith('imagenet_'):
    spec = dict(builder='image_classifier', num_classes=_num_labels(cfg),
                config=dict(
                    input_preprocessor=release['config']['input_preprocessor'],
                    encoder=enc, decoder=class_decoder))
    if fam == 'imagenet_conv':
      notes.append(CONV_INEXACT)
  elif fam == 'optical_flow':
    size = [int(s) for s in cfg['train_size']]
    resolution = 'fourier_position_encoding_kwargs.max_resolution'
    enc['name'] = release['encoder']['name']
    spec = dict(builder='optical_flow',
                flow_scale_factor=release['flow_scale_factor'],
                input_preprocessor=release_specs.override(
                    release['input_preprocessor'], {resolution: size}),
                encoder=enc,
                decoder=release_specs.override(
                    release['decoder'],
                    {'output_image_shape': size, resolution: size}))
  else:  # video_autoencoding
    shape = list(cfg['output_shape'])
    if cfg['output_num_channels'] != d:
      raise UnsupportedByTransformersError(
          f'output_num_channels={cfg["output_num_channels"]} differs from '
          f'd_latents={d}: builders.video_autoencoder decodes with '
          'num_z_channels outputs.')
    if shape[0] != 1 or shape[1] != cfg['num_frames'] or shape[2] != shape[3]:
      raise UnsupportedByTransformersError(
          f'output_shape={shape}: expected [1, num_frames, S, S].')
    spec = dict(builder='video_autoencoder', num_frames=cfg['num_frames'],
                image_size=shape[2], fourier_image_resolution=cfg['image_size'],
                audio_samples_per_frame=cfg['audio_samples_per_frame'],
                samples_per_patch=cfg['samples_per_patch'],
                num_classes=_num_labels(cfg), z_index_dim=cfg['num_latents'],
                num_z_channels=d,
                num_self_attends_per_block=cfg['num_self_attends_per_block'],
                decoder_channels=cfg['_label_trainable_num_channels'],
                audio_num_bands=release['audio_num_bands'],
                image_num_bands=release['image_num_bands'])
    fixed = _video_encoder(spec)
    overrides = {k: v for k, v in enc.items()
                 if k in fixed and fixed[k] != v}
    if overrides:
      spec['encoder_kwargs'] = overrides
    other = {k: v for k, v in enc.items() if k not in fixed and k not in
             ('z_pos_enc_init_scale',) and v != _ENCODER_DEFAULTS.get(k)}
    if other:
      spec['encoder_kwargs'] = dict(spec.get('encoder_kwargs') or {}, **other)
  return spec, notes

