"""Perceiver IO language models: MLM configs, GLUE classifiers, warm starts.

Glossary of shapes:
  B: batch size.  T: text tokens (bytes or SentencePiece pieces).
  M: encoder inputs (= K + T).  K: tokens prepended to the text (0, 1 or 8).
  N: latents.  D: latent channels.  O: decoder queries.  E: query channels.
  V: vocabulary.  L: labels of one task (1 for the STS-B regression).

Contents:
  * Named MLM architectures as plain dicts, the kwargs of `builders.mlm`
    ([P] Table 11): `mlm_bytes` (the released model),
    `mlm_bytes_plusplus`, `mlm_spm_base`; `get_config('name[:smoke]')`,
    `smoke_config` and `mlm_config` scale them; `param_count` uses
    `jax.eval_shape` and allocates nothing.
  * `glue_classifier`: the fine-tuning model of [P] App. F.4, one learned
    decoder query and a 2-layer tanh MLP head.
  * `glue_multitask`: the three multitask variants of [P] §4.1 / Table 2.
  * `WARM_START_DECODER`: the rename that warm-starts the classifier's
    decoder from the MLM's (`perceiver.train.checkpoint.merge_params` copies a
    pretrained MLM, ours or the released `language_perceiver_io_bytes.pickle`,
    into a fine-tuning model and reports what it loaded).

Parameter names are an API. The fine-tuning models reuse the MLM's module
names for everything pretrained, so checkpoints load unchanged:
  embed/embeddings                            [V, d_model]  token embedding
  trainable_position_encoding/pos_embs        [T_max, d_model]  input positions
  perceiver_encoder/...                       the encoder
  basic_decoder/...                           the MLM decoder (token variants)
and everything new lives under a `glue_` prefix:
  glue_decoder/~/trainable_position_encoding  [O, E]  learned decoder queries
  glue_decoder/cross_attention/...            their cross-attention
  glue_task_tokens/embeddings                 [K, d_model]  prepended tokens
  glue_head[_<task>]/{hidden,output}          the 2-layer MLP heads

Token ids must lie in [0, V). Every forward checks it when called outside
jax.jit; under jit the ids are tracers and `hk.Embed` clamps an id out of
range to [0, V - 1] without an error (check a host batch first with
`perceiver.checks.token_ids`).

DEVIATIONs where the paper is silent (each also marked where it is made):
  * The classifier's decoder (query and cross-attention) is new:
    `glue_decoder`. [P] F.4 gives the query but not whether the decoder
    attention is re-initialised. The MLM decoder's attention has the same
    shapes (E = d_model), so `checkpoint.merge_params(..., rename=
    WARM_START_DECODER)` warm-starts it instead.
  * Token variants: a prepended token is a learned d_model vector (not a
    reserved id; 8 task tokens would not fit in the 6 reserved ids). It is
    added to the input position embedding of its slot, 0..K-1; the text moves
    to slots K..K+T-1. "Decoded at its position" means the pretrained MLM
    decoder (`basic_decoder`) is queried with its learned queries for slots
    0..K-1, exactly as the MLM predicts the token in a slot.
  * The fine-tuning models accept any T <= max_seq_len - K: the position
    table is cut to K + T. With the padding mask this gives the same outputs
    as padding to max_seq_len (tested), and short GLUE inputs cost less.
"""
import copy
import functools
from typing import Any, Dict, Mapping, Optional

import chex
import haiku as hk
import jax
import jax.numpy as jnp

from perceiver import builders
from perceiver import checks
from perceiver import perceiver
from perceiver.tasks.language import tokenizers

Config = Dict[str, Any]

#  ------------------------------------------------------------
#  ------------------  MLM architectures  ---------------------
#  ------------------------------------------------------------

# The vocabulary of the SentencePiece models. DEVIATION ([P] silent):
# `train_sentencepiece` passes vocab_size=32,000 to SentencePiece, whose count
# includes every piece: the 6 reserved ids (PAD, BOS, EOS, MASK, CLS, SEP), <unk> (id 6) and
# the 256 byte pieces (7..262) are *inside* the 32,000 (tokenizers.py). So
# the embedding has exactly 32,000 rows; this gives [P] Table 11's 223M.
SPM_VOCAB_SIZE = 32_000
BYTES_VOCAB_SIZE = 256 + tokenizers.NUM_SPECIAL  # 262, the release's vocab.


# TrainablePositionEncoding's default init stddev, the release's.
_RELEASE_POSITION_INIT_SCALE = 0.02


def mlm_config(*, vocab_size: int, max_seq_len: int, d_model: int = 768,
               num_latents: int = 256, latent_channels: int = 1280,
               num_layers: int = 26, num_heads: int = 8,
               qk_channels: int = 256, v_channels: Optional[int] = None,
               decoder_heads: int = 8, decoder_qk_channels: int = 256,
               decoder_v_channels: Optional[int] = None,
               input_position_encoding: str = 'trainable',
               input_position_init_scale: float = 0.02,
               query_position_init_scale: float = 0.02,
               embedding_init_scale: float = 1.0,
               cross_attend_heads: Optional[int] = None,
               local_cross_attention: float = 0.0,
               **encoder_extra) -> Config:
  """kwargs of `builders.mlm` for an MLM of the released model's design.

  Args:
    vocab_size: V.
    max_seq_len: T, the input (= decoder query) length.
    d_model: E, the channels of the token embedding, the input positions and
      the decoder queries.
    num_latents: N.
    latent_channels: D; the latent MLP hidden size is also D (widening 1).
    num_layers: self-attention layers (no weight sharing: one block).
    num_heads: heads of the encoder's cross- and self-attention.
    qk_channels: the encoder's query/key channels (all heads together).
    v_channels: the encoder's value channels; default D.
    decoder_heads, decoder_qk_channels: the decoder cross-attention.
    decoder_v_channels: its value channels; default E. The decoder's MLP
      hidden size is E ([P] Table 11 "Output FFW hidden" 768).
    input_position_encoding: 'trainable' (the release: a learned table
      added to the embeddings) or 'fourier' ([P] App. G features of the
      byte index, concatenated; `builders.mlm_input_positions`).
    input_position_init_scale: the learned input table's init stddev (the
      release: 0.02, about 1/50 of the embedding's).
    query_position_init_scale: the decoder queries' init stddev (the
      release: 0.02).
    embedding_init_scale: the token embedding's init stddev, which is also
      the scale of the tied output logits (the release: hk.Embed's 1.0,
      which starts the MLM at a loss of about 28 nats).
    cross_attend_heads: heads of the encoder's cross-attention (the
      release: None, meaning num_heads).
    local_cross_attention: DEVIATION (0, off, is the release): the width,
      in bytes, of a Gaussian locality prior on both cross-attentions'
      logits. Latent j starts on bytes [j T / N, (j + 1) T / N) and the
      decoder's query t on the latents whose tiles hold t
      (`PerceiverEncoder`'s cross_attend_local_width, `BasicDecoder`'s
      local_width). No parameters change. It takes the small MLM off the
      unigram plateau at T = 128 (benchmarks/repro/LANGUAGE.md).
    **encoder_extra: more `PerceiverEncoder` kwargs (scan_layers, remat,
      q_chunk_size, kv_chunk_size, dropout_prob).
  """
  encoder = dict(
      num_self_attends_per_block=num_layers, num_blocks=1,
      z_index_dim=num_latents, num_z_channels=latent_channels,
      num_self_attend_heads=num_heads,
      num_cross_attend_heads=cross_attend_heads or num_heads,
      qk_channels=qk_channels, v_channels=v_channels or latent_channels,
      use_query_residual=True, cross_attend_widening_factor=1,
      self_attend_widening_factor=1, **encoder_extra)
  decoder = dict(
      # output_num_channels is unused with final_project=False; the release
      # sets it to D.
      output_num_channels=latent_channels, position_encoding_type='trainable',
      output_index_dims=max_seq_len, num_z_channels=latent_channels,
      qk_channels=decoder_qk_channels, v_channels=decoder_v_channels or d_model,
      num_heads=decoder_heads, final_project=False, use_query_residual=False,
      trainable_position_encoding_kwargs=dict(num_channels=d_model))
  if query_position_init_scale != _RELEASE_POSITION_INIT_SCALE:
    decoder['trainable_position_encoding_kwargs']['init_scale'] = (
        query_position_init_scale)
  if local_cross_attention:  # DEVIATION; only written when on
    encoder['cross_attend_local_width'] = local_cross_attention
    encoder['cross_attend_local_span'] = max_seq_len
    decoder['local_width'] = local_cross_attention
  config = dict(vocab_size=vocab_size, d_model=d_model,
                max_seq_len=max_seq_len, encoder=encoder, decoder=decoder)
  # Only departures are written, so release configs stay the release's.
  if input_position_encoding != 'trainable':
    config['input_position_encoding'] = input_position_encoding
  if input_position_init_scale != _RELEASE_POSITION_INIT_SCALE:
    config['input_position_init_scale'] = input_position_init_scale
  if embedding_init_scale != 1.0:
    config['embedding_init_scale'] = embedding_init_scale
  return config


# Keys of an MLM config that `builders.mlm_input_positions` reads.
INPUT_POSITION_KEYS = ('input_position_encoding', 'input_position_init_scale',
                       'input_fourier_bands')

# mlm_config kwargs of each named architecture.
_NAMED = {
    # The release's MLM colab = [P] Table 11 "Perceiver IO":
    # 201,108,230 params, the golden full_language_mlm.json exactly.
    'mlm_bytes': dict(vocab_size=BYTES_VOCAB_SIZE, max_seq_len=2048),
    # [P] Table 11 "Perceiver IO++": 40 layers, N x D = 256 x 1536, the same
    # 768-d decoder, ~425M params. DEVIATION: [P] gives only depth, N and D;
    # heads (8), qk channels (256) and v = D are kept from the bytes model.
    # That gives 425,607,430 params (Table 11: 425M); qk = D would give 586M.
    # DEVIATION from [P] Table 6, which lists 1536-d decoder queries for ++:
    # Table 11 and the release use E = 768 (Table 6 says 1280 / 1536).
    'mlm_bytes_plusplus': dict(vocab_size=BYTES_VOCAB_SIZE, max_seq_len=2048,
                               latent_channels=1536, num_layers=40),
    # [P] Table 11 "Perceiver IO Base": 512 SentencePiece tokens, 32k vocab,
    # 256 x 1280, 26 layers, ~223M. DEVIATION: the same heads/qk/v as the
    # bytes model; V = 32,000 including the reserved ids (SPM_VOCAB_SIZE).
    # Gives 223,155,456 params.
    'mlm_spm_base': dict(vocab_size=SPM_VOCAB_SIZE, max_seq_len=512),
}
# A laptop-sized model of the same design (the vocabulary is kept so the
# tokenizer still fits): for tests and `--config=mlm_bytes:smoke`. For bytes
# it is the golden tiny release model (tests/golden_data/language_mlm_tiny).
_SMOKE = dict(max_seq_len=64, d_model=32, num_latents=16, latent_channels=48,
              num_layers=2, num_heads=4, qk_channels=16, decoder_heads=4,
              decoder_qk_channels=16)
CONFIG_NAMES = tuple(_NAMED)


def get_config(name: str = 'mlm_bytes', **overrides) -> Config:
  """A fresh config dict: 'mlm_bytes', 'mlm_bytes_plusplus', 'mlm_spm_base',
  each optionally with ':smoke' (e.g. 'mlm_bytes:smoke').

  `overrides` are `mlm_config` kwargs, applied last.
  """
  base, _, variant = name.partition(':')
  if base not in _NAMED:
    raise ValueError(f'Unknown MLM config {name!r}; expected one of '
                     f'{CONFIG_NAMES}, optionally with ":smoke".')
  if variant not in ('', 'smoke'):
    raise ValueError(f'Unknown variant {variant!r} in {name!r}; the only '
                     "variant is 'smoke'.")
  kwargs = dict(_NAMED[base])
  if variant == 'smoke':
    kwargs.update(_SMOKE)
  kwargs.update(overrides)
  return mlm_config(**kwargs)


def mlm_bytes(**overrides) -> Config:
  """The released bytes MLM (201,108,230 params)."""
  return get_config('mlm_bytes', **overrides)


def mlm_bytes_plusplus(**overrides) -> Config:
  """[P] Table 11 Perceiver IO++ (bytes, 40 layers, D = 1536; ~425M)."""
  return get_config('mlm_bytes_plusplus', **overrides)


def mlm_spm_base(**overrides) -> Config:
  """[P] Table 11 Perceiver IO Base (512 SPM tokens, 32k vocab; ~223M)."""
  return get_config('mlm_spm_base', **overrides)


def smoke_config(name: str = 'mlm_bytes', **overrides) -> Config:
  """`name` shrunk to a few thousand parameters; `overrides` as get_config."""
  return get_config(name.partition(':')[0] + ':smoke', **overrides)


def mlm(config: Mapping[str, Any]):
  """forward(inputs [B, T], input_mask [B, T], *, is_training) -> [B, T, V].

  T must equal config['max_seq_len'] (pad with input_mask 0).
  """
  return builders.mlm(**copy.deepcopy(dict(config)))


def _example_inputs(config, batch=1):
  t = config['max_seq_len']
  return (jnp.zeros((batch, t), jnp.int32), jnp.ones((batch, t), jnp.int32))


def param_shapes(config: Mapping[str, Any]):
  """The MLM's params as ShapeDtypeStructs (jax.eval_shape; no allocation)."""
  init = hk.transform(functools.partial(mlm(config), is_training=False)).init
  return jax.eval_shape(init, jax.random.PRNGKey(0), *_example_inputs(config))


def param_count(config: Mapping[str, Any]) -> int:
  """The MLM's parameter count, from jax.eval_shape (nothing allocated)."""
  return hk.data_structures.tree_size(param_shapes(config))


#  ------------------------------------------------------------
#  ------------------  Shared trunk  ---------------------------
#  ------------------------------------------------------------


def _check_text_inputs(inputs, input_mask, config, num_prepended, who):
  """Static checks, plus the ids' range outside jit (perceiver.checks)."""
  max_len = config['max_seq_len']
  if inputs.ndim != 2:
    raise ValueError(f'{who} expects token ids [B, T]; got shape '
                     f'{tuple(inputs.shape)}.')
  if tuple(input_mask.shape) != tuple(inputs.shape):
    raise ValueError(f'input_mask {tuple(input_mask.shape)} must have the '
                     f'shape of inputs {tuple(inputs.shape)}.')
  checks.non_empty(who, 'inputs [B, T]', inputs, {0: 'B', 1: 'T'})
  checks.token_ids(who, inputs, config['vocab_size'])
  if inputs.shape[1] + num_prepended > max_len:
    extra = (f' ({num_prepended} slots go to the prepended tokens)'
             if num_prepended else '')
    raise ValueError(
        f'{who}: {inputs.shape[1]} tokens do not fit the learned position '
        f'table of {max_len}{extra}; pack the text to at most '
        f'{max_len - num_prepended} tokens.')


def _encode(config, inputs, input_mask, *, is_training, prefix=None):
  """Embeds the text (after `prefix`) and runs the pretrained encoder.

  The modules are built in the order and with the names of `builders.mlm`,
  so their parameters are the MLM's.

  Args:
    config: an MLM config (`mlm_config`).
    inputs: [B, T] token ids.
    input_mask: [B, T], 1 for text and 0 for padding.
    is_training: enables dropout (if the config has any).
    prefix: optional [K, d_model] vectors placed in slots 0..K-1.

  Returns:
    ([B, N, D] latents, the encoder inputs [B, K + T, C]: C = d_model, or
    d_model + 2K + 1 with Fourier input positions).
  """
  num_prepended = 0 if prefix is None else prefix.shape[0]
  batch = inputs.shape[0]
  embedding_layer = builders.token_embedding(
      config['vocab_size'], config['d_model'],
      config.get('embedding_init_scale', 1.0))
  embedded = embedding_layer(inputs)  # [B, T, d_model]
  mask = input_mask
  if prefix is not None:
    prefix = jnp.broadcast_to(prefix[None].astype(embedded.dtype),
                              (batch,) + prefix.shape)
    embedded = jnp.concatenate([prefix, embedded], axis=1)  # [B, K + T, E]
    mask = jnp.concatenate(
        [jnp.ones((batch, num_prepended), input_mask.dtype), input_mask], 1)
  embedded = builders.mlm_input_positions(
      embedded, max_seq_len=config['max_seq_len'],
      **{k: config[k] for k in INPUT_POSITION_KEYS if k in config})
  encoder = perceiver.PerceiverEncoder(**config['encoder'])
  z = encoder(embedded, encoder.latents(embedded), is_training=is_training,
              input_mask=mask)
  return z, embedded


class TaskHead(hk.Module):
  """[P] F.4: decoder output -> Linear(E) -> tanh -> Linear(L).

  Returns [B, L] logits, or [B] for a regression (L = 1, STS-B).
  """

  def __init__(self, num_labels: int, hidden_size: int, name='glue_head'):
    super().__init__(name=name)
    self._num_labels = num_labels
    self._hidden_size = hidden_size

  def __call__(self, x: jax.Array) -> jax.Array:  # [B, E]
    x = jnp.tanh(hk.Linear(self._hidden_size, name='hidden')(x))
    out = hk.Linear(self._num_labels, name='output')(x)  # [B, L]
    return out[:, 0] if self._num_labels == 1 else out


class TaskTokens(hk.Module):
  """K learned input tokens prepended to the text ([P] §4.1 multitask).

  DEVIATION ([P] silent): initialised like a new row of the `embed` table (hk.Embed's
  truncated normal, stddev 1), since they sit where token embeddings sit.
  """

  def __init__(self, num_tokens: int, d_model: int, name='glue_task_tokens'):
    super().__init__(name=name)
    self._shape = (num_tokens, d_model)

  def __call__(self) -> jax.Array:  # [K, d_model]
    return hk.get_parameter('embeddings', self._shape,
                            init=hk.initializers.TruncatedNormal(1.0))


def _query_decoder(config, num_queries, name='glue_decoder'):
  """A BasicDecoder with `num_queries` new learned E-d queries.

  The cross-attention is configured like the MLM decoder's (heads, qk, v,
  no query residual, no final projection), so its shapes match the MLM
  decoder's and `WARM_START_DECODER` can copy them.
  """
  kwargs = dict(config['decoder'])
  # The MLM decoder's locality prior (a DEVIATION) places queries on the
  # byte positions; these queries have none.
  kwargs.pop('local_width', None)
  kwargs.update(output_index_dims=num_queries, final_project=False,
                position_encoding_type='trainable',
                trainable_position_encoding_kwargs=dict(
                    num_channels=config['d_model']))
  return perceiver.BasicDecoder(name=name, **kwargs)


# Prefix renames for `perceiver.train.checkpoint.merge_params` that warm-start
# the new decoder's cross-attention from the MLM decoder (DEVIATION, [P]
# silent: off by default).
WARM_START_DECODER = {'basic_decoder/cross_attention':
                      'glue_decoder/cross_attention'}

#  ------------------------------------------------------------
#  ------------------  GLUE classifier  ------------------------
#  ------------------------------------------------------------


def glue_classifier(config: Mapping[str, Any], num_labels: int):
  """The GLUE fine-tuning model of [P] App. F.4.

  The pretrained embedding, input positions and encoder of `config` (module
  names as `builders.mlm`), then one new learned decoder query of E =
  d_model channels (`glue_decoder`), then a 2-layer tanh MLP (hidden E,
  `glue_head`). There is no [CLS] token.

  Args:
    config: the pretrained MLM's config (`get_config`).
    num_labels: L; 1 gives a scalar regression output (STS-B).

  Returns:
    forward(inputs [B, T], input_mask [B, T], *, is_training) -> logits
    [B, L], or [B] when num_labels == 1. Any T <= max_seq_len.
  """
  config = copy.deepcopy(dict(config))
  if num_labels < 1:
    raise ValueError(f'num_labels must be >= 1; got {num_labels}.')

  def forward(inputs, input_mask, *, is_training):
    _check_text_inputs(inputs, input_mask, config, 0, 'glue_classifier')
    z, embedded = _encode(config, inputs, input_mask, is_training=is_training)
    decoder = _query_decoder(config, 1)
    query = decoder.decoder_query(embedded)  # [B, 1, E]
    out = decoder(query, z, is_training=is_training)[:, 0]  # [B, E]
    chex.assert_shape(out, (inputs.shape[0], config['d_model']))
    return TaskHead(num_labels, config['d_model'])(out)

  return forward


#  ------------------------------------------------------------
#  ------------------  Multitask GLUE  -------------------------
#  ------------------------------------------------------------

MULTITASK_VARIANTS = ('query', 'shared_token', 'task_tokens')


def glue_num_labels() -> Dict[str, int]:
  """{task: L} for the 8 GLUE tasks of [P] (WNLI excluded; STS-B L = 1).

  Imports perceiver.tasks.language.glue_data (and so TensorFlow) only when called.
  """
  from perceiver.tasks.language import glue_data  # pylint: disable=g-import-not-at-top
  return {name: task.num_classes for name, task in glue_data.TASKS.items()}


def glue_multitask(config: Mapping[str, Any], tasks: Mapping[str, int],
                   variant: str = 'query'):
  """Multitask GLUE ([P] §4.1, Table 2).

  Variants (K = number of tasks):
    'query':        K new learned decoder queries (`glue_decoder`) give
                    [B, K, E]; task k's head reads query k.
    'shared_token': one learned token prepended to the text; the MLM
                    decoder (`basic_decoder`) decodes slot 0 and every
                    task's head reads it.
    'task_tokens':  K learned tokens prepended; the MLM decoder decodes
                    slots 0..K-1 and task k's head reads slot k.
  Each task has its own 2-layer tanh MLP head `glue_head_<task>`.

  Args:
    config: the pretrained MLM's config.
    tasks: ordered {task name: L}, e.g. `glue_num_labels()`; L = 1 is a
      regression.
    variant: one of MULTITASK_VARIANTS.

  Returns:
    forward(inputs [B, T], input_mask [B, T], *, is_training) ->
    {task: [B, L] logits, or [B] for L = 1}. T <= max_seq_len, minus 1 for
    'shared_token' and K for 'task_tokens'.
  """
  config = copy.deepcopy(dict(config))
  tasks = dict(tasks)
  if variant not in MULTITASK_VARIANTS:
    raise ValueError(f'Unknown multitask variant {variant!r}; expected one '
                     f'of {MULTITASK_VARIANTS}.')
  if not tasks:
    raise ValueError('glue_multitask needs at least one task.')
  num_tasks = len(tasks)
  num_prepended = {'query': 0, 'shared_token': 1,
                   'task_tokens': num_tasks}[variant]
  d_model = config['d_model']

  def forward(inputs, input_mask, *, is_training):
    _check_text_inputs(inputs, input_mask, config, num_prepended,
                       f'glue_multitask({variant!r})')
    prefix = None
    if num_prepended:
      prefix = TaskTokens(num_prepended, d_model)()  # [K, d_model]
    z, embedded = _encode(config, inputs, input_mask, is_training=is_training,
                          prefix=prefix)
    positions = None
    if variant == 'query':
      decoder = _query_decoder(config, num_tasks)
      query = decoder.decoder_query(embedded)  # [B, K, E]
    else:
      # The pretrained MLM decoder, queried at the prepended slots only
      # (queries never interact, so this equals decoding every slot and
      # keeping these).
      decoder = perceiver.BasicDecoder(**config['decoder'])
      query = decoder.decoder_query(embedded)[:, :num_prepended]  # [B, K, E]
      positions = jnp.arange(num_prepended)
    out = decoder(query, z, is_training=is_training,
                  query_positions=positions)  # [B, K or 1, E]
    chex.assert_shape(out, (inputs.shape[0], num_prepended or num_tasks,
                            d_model))
    logits = {}
    for k, (task, num_labels) in enumerate(tasks.items()):
      slot = 0 if variant == 'shared_token' else k
      logits[task] = TaskHead(num_labels, d_model,
                              name=f'glue_head_{task}')(out[:, slot])
    return logits

  return forward
