"""Perceiver IO: attention modules, the encoder and the decoders.

Glossary of shapes:
  B: batch size.  M: input elements.  C: input channels.
  N: latents.  D: latent channels.  O: output queries.  E: query channels.
  T/S: query/key positions inside an attention.  H: heads.  L: layers.

[P] §3 and App. E; module names, keyword arguments and parameter tree follow
DeepMind's release ([code] perceiver.py) exactly, so released checkpoints load.

Each block is [P] E.1: x = Q + Attn(LN(Q), LN(KV)); x = x + MLP(LN(x)), with a
two-layer GELU MLP. The encoder cross-attends once from N learned latents to
the M inputs, then applies `num_self_attends_per_block` self-attention layers
`num_blocks` times with the weights shared across blocks. A decoder
cross-attends from O queries to the latents.

Beyond the release (all off by default, so defaults reproduce it exactly):
  * `q_chunk_size` / `kv_chunk_size`: memory-efficient attention
    (perceiver.attention).
  * `scan_layers`: run the self-attention layers under `hk.layer_stack`
    (one compiled layer instead of L). Parameters are then stacked on a
    leading [L] axis; `to_release_layout` / `from_release_layout` convert.
    Its init is `from_release_layout` of the unrolled init, bit for bit.
  * `remat`: rematerialise each self-attention layer in the backward pass.
  * `perceiver.kernels.fast_kernels()` (a trace-time scope, not a kwarg):
    cheaper dense attention and LayerNorm, same function and parameters.
  * `subsampled_points` may be [B, O]: a different set of output queries per
    example (the release takes one [O] set for the whole batch).
Random keys are drawn as in the release whenever an RNG is available (a
dropout key in every MLP, SelfAttention and CrossAttention, even at rate 0),
so the same seed gives the release's initial weights and, in training mode,
its dropout masks (unscanned; see SelfAttentionStack); `apply(..., rng=None)`
still works wherever nothing is random (evaluation).
DEVIATION: the release's Attention writes its resolved channel counts onto
`self` during `__call__`; here they are locals, so a module can be called on
inputs of different widths without being corrupted.
"""
import abc
import re
from typing import Mapping, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from perceiver import checks
from perceiver import io_processors
from perceiver import kernels
from perceiver import position_encoding
from perceiver.attention import attend, attend_factored, attend_projected
from perceiver.attention import local_logit_bias, tile_centres


#  -----------------------------------------------------------
#  ----------------------  Primitives  -----------------------
#  -----------------------------------------------------------


@checks.keyword_arguments
def conv_1d(output_channels, init_scale=1.0, with_bias=True, name=None):
  """A position-wise linear layer (a 1x1 convolution over the index axis)."""
  return kernels.linear(
      output_size=output_channels,
      with_bias=with_bias,
      w_init=hk.initializers.VarianceScaling(init_scale),
      name=name)


@checks.keyword_arguments
def layer_norm(x, name=None):
  """LayerNorm over channels, computed in float32 whatever x's dtype
  (perceiver.kernels.LayerNorm inside `kernels.fast_kernels()`)."""
  return layer_norm_fn(name)(x)


@checks.keyword_arguments
def layer_norm_fn(name=None):
  """`layer_norm` as a function, its module made now and applied later."""
  if kernels.enabled():
    ln = kernels.LayerNorm(name=name)
  else:
    ln = hk.LayerNorm(axis=-1, create_scale=True, create_offset=True,
                      name=name)
  return lambda x: ln(x.astype(jnp.float32)).astype(x.dtype)


def make_cross_attention_mask(query_mask, kv_mask):
  """[B, T] query mask and [B, S] key mask -> [B, T, S] attention mask."""
  if query_mask.ndim != 2 or kv_mask.ndim != 2 or (
      query_mask.shape[0] != kv_mask.shape[0]):
    raise ValueError(
        'make_cross_attention_mask expects query_mask [B, T] and kv_mask '
        f'[B, S] with the same B; got {query_mask.shape} and {kv_mask.shape}.')
  return jax.vmap(jnp.outer)(query_mask, kv_mask)


def zero_masked(x, mask):
  """x [B, M, C] with the positions where mask [B, M] is 0 set to 0.

  Masked positions get attention weight exactly 0 ([code] attend masks
  their logits with -1e30), but 0 * NaN is NaN and 1e30 overflows the
  LayerNorm, so padding holding NaN or huge values would reach every output
  through the weighted sum of values. Replaced by zeros before any
  projection, they cannot: outputs are those of zero padding, and the
  gradient of the replaced positions is 0 (jnp.where passes none to them),
  so parameter gradients stay finite. Kept positions pass unchanged, and
  finite masked values only ever met a weight of 0, so the attention's
  outputs for finite inputs are the release's.
  """
  if mask is None:
    return x
  keep = jnp.asarray(mask)[..., None] != 0  # [B, M, 1]
  return jnp.where(keep, x, jnp.zeros((), x.dtype))


#  -----------------------------------------------------------
#  -----------------------  Modules  -------------------------
#  -----------------------------------------------------------


class Attention(hk.Module):
  """Multi-headed {cross, self}-attention with Q/K/V and output projections."""

  @checks.keyword_arguments
  def __init__(self,
               num_heads=8,
               init_scale=1.0,
               with_final_bias=True,
               final_init_scale_multiplier=1.,
               dropout_prob=0.0,
               qk_channels=None,
               v_channels=None,
               output_channels=None,
               q_chunk_size=None,
               kv_chunk_size=None,
               name=None):
    super().__init__(name=name)
    checks.positive('Attention', num_heads=num_heads, qk_channels=qk_channels,
                    v_channels=v_channels, output_channels=output_channels)
    self._num_heads = num_heads
    self._init_scale = init_scale
    self._with_final_bias = with_final_bias
    self._final_init_scale = final_init_scale_multiplier * init_scale
    self._dropout_prob = dropout_prob
    # If none of these are given, the query input determines the shapes.
    self._qk_channels = qk_channels
    self._v_channels = v_channels
    self._output_channels = output_channels
    self._q_chunk_size = q_chunk_size
    self._kv_chunk_size = kv_chunk_size

  def __call__(self, inputs_q, inputs_kv, attention_mask=None, kv_norm=None,
               logit_bias=None):
    """[B, T, Cq] queries, [B, S, Ckv] keys/values -> [B, T, output].

    logit_bias, if given, is a [T, S] (or per-example [B, T, S]) bias on
    every head's logits (`attention.attend`). kv_norm, if given, is applied
    to inputs_kv first. With kv_chunk_size smaller than S, no attention dropout and the
    queries in one chunk, it and the key/value projections run a key chunk
    at a time (`attention.attend_projected`): S-sized intermediates are
    never held whole. Inside `kernels.fast_kernels()`, one head without
    attention dropout is factored (`attention.attend_factored`) when
    `kernels.factored_attention_pays`: no keys or values are projected.
    """
    # Resolved per call; the module itself is never modified.
    qk_channels = self._qk_channels or inputs_q.shape[-1]
    v_channels = self._v_channels or qk_channels
    output_channels = self._output_channels or v_channels
    for what, channels in (('qk_channels', qk_channels),
                           ('v_channels', v_channels)):
      if channels % self._num_heads:
        raise ValueError(
            f'{what} ({channels}) must be divisible by num_heads '
            f'({self._num_heads}); change one of them.')
    batch, q_len, _ = inputs_q.shape
    _, kv_len, _ = inputs_kv.shape

    heads = self._num_heads
    q = conv_1d(qk_channels, init_scale=self._init_scale)(inputs_q)
    q = jnp.reshape(q, [batch, q_len, heads, qk_channels // heads])
    # The fast kernels leave out the key bias (no effect on a softmax) and
    # add the value bias to the output, not the values (the weights sum to
    # one); attention dropout breaks both, so it keeps hk.Linear.
    defer_biases = kernels.enabled() and not self._dropout_prob
    if defer_biases:
      w_init = hk.initializers.VarianceScaling(self._init_scale)
      k_proj = kernels.KeyValueLinear(qk_channels, w_init, name='linear')
      v_proj = kernels.KeyValueLinear(v_channels, w_init, name='linear')
    else:
      k_proj = conv_1d(qk_channels, init_scale=self._init_scale)
      v_proj = conv_1d(v_channels, init_scale=self._init_scale)

    def project_kv(x):
      if kv_norm is not None:
        x = kv_norm(x)
      length = x.shape[1]
      # Made in this order (keys, then values), as the release does, so
      # seeded initialisation draws the same weights.
      k = jnp.reshape(k_proj(x), [batch, length, heads, qk_channels // heads])
      v = jnp.reshape(v_proj(x), [batch, length, heads, v_channels // heads])
      return k, v

    kv_chunk, q_chunk = self._kv_chunk_size, self._q_chunk_size
    chunk_projections = bool(kv_chunk and kv_chunk < kv_len
                             and not self._dropout_prob
                             and (q_chunk or q_len) >= q_len)
    if defer_biases and heads == 1 and kernels.factored_attention_pays(
        kv_len, q_len, inputs_kv.shape[-1], qk_channels, v_channels):
      # Keys made before values, as in project_kv (seeded init).
      w_k = k_proj.weight(inputs_kv.shape[-1], q.dtype)
      w_v = v_proj.weight(inputs_kv.shape[-1], q.dtype)
      result = attend_factored(
          q, inputs_kv, w_k, w_v, v_proj.bias(q.dtype), kv_norm=kv_norm,
          attention_mask=attention_mask, q_chunk_size=q_chunk,
          kv_chunk_size=kv_chunk, chunk_projections=chunk_projections,
          logit_bias=logit_bias)
    elif chunk_projections:
      result = attend_projected(
          q, inputs_kv, project_kv, v_channels // heads, kv_chunk,
          attention_mask=attention_mask,
          v_bias=v_proj.bias(q.dtype) if defer_biases else None,
          logit_bias=logit_bias)
    else:
      k, v = project_kv(inputs_kv)
      result = attend(q, k, v, dropout_prob=self._dropout_prob,
                      attention_mask=attention_mask,
                      q_chunk_size=q_chunk, kv_chunk_size=kv_chunk,
                      v_bias=v_proj.bias(v.dtype) if defer_biases else None,
                      logit_bias=logit_bias)
    return conv_1d(output_channels, with_bias=self._with_final_bias,
                   init_scale=self._final_init_scale)(result)


class MLP(hk.Module):
  """The Transformer dense block: Linear(widening*C) -> GELU -> Linear(C)."""

  @checks.keyword_arguments
  def __init__(self, widening_factor=4, dropout_prob=0.0, init_scale=1.,
               name=None):
    super().__init__(name=name)
    self._widening_factor = widening_factor
    self._dropout_prob = dropout_prob
    self._init_scale = init_scale

  def __call__(self, x, *, is_training):
    dropout_prob = self._dropout_prob if is_training else 0.0
    channels = x.shape[-1]
    x = conv_1d(self._widening_factor * channels, init_scale=self._init_scale)(x)
    x = jax.nn.gelu(x)
    x = conv_1d(channels, init_scale=self._init_scale)(x)
    return _dropout(dropout_prob, x)


def _dropout(rate, x):
  """The release's `hk.dropout(hk.next_rng_key(), rate, x)`, draw included.

  The release draws a key whatever the rate, so this draws one whenever an
  RNG is available: each later draw (initializers, dropout masks) then gets
  the key it gets in the release, and `init(PRNGKey(s), ...)` returns the
  release's weights. Without an RNG (`apply(..., rng=None)`, evaluation)
  nothing is drawn; only a rate above zero needs one.
  """
  key = hk.maybe_next_rng_key()
  if rate == 0:
    return x
  if key is None:
    raise ValueError(
        f'Dropout with rate {rate} needs an RNG: pass rng to apply '
        '(training), or call with is_training=False.')
  return hk.dropout(key, rate, x)


class SelfAttention(hk.Module):
  """Self-attention plus MLP, pre-LayerNorm, both residual ([P] E.1)."""

  @checks.keyword_arguments
  def __init__(self,
               widening_factor=4,
               dropout_prob=0.0,
               dropout_attn_prob=0.0,
               num_heads=8,
               att_init_scale=1.0,
               dense_init_scale=1.0,
               qk_channels=None,
               v_channels=None,
               q_chunk_size=None,
               kv_chunk_size=None,
               name=None):
    super().__init__(name=name)
    self._widening_factor = widening_factor
    self._dropout_prob = dropout_prob
    self._dropout_attn_prob = dropout_attn_prob
    self._num_heads = num_heads
    self._att_init_scale = att_init_scale
    self._dense_init_scale = dense_init_scale
    self._qk_channels = qk_channels
    self._v_channels = v_channels
    self._q_chunk_size = q_chunk_size
    self._kv_chunk_size = kv_chunk_size

  def __call__(self, inputs, *, attention_mask=None, is_training):
    """[B, N, D] -> [B, N, D]."""
    channels = inputs.shape[-1]
    attention_channels = self._v_channels or self._qk_channels or channels
    if attention_channels != channels:
      # The release's Attention gives its output v_channels, which default
      # to qk_channels; the residual needs D.
      given = ('v_channels' if self._v_channels else
               'qk_channels (v_channels defaults to it)')
      raise ValueError(
          f'SelfAttention: {given} = {attention_channels} sets the width of '
          f'the attention output, but the residual stream [B, N, D] has '
          f'D = {channels}; set v_channels={channels}.')
    dropout_prob = self._dropout_prob if is_training else 0.0
    dropout_attn_prob = self._dropout_attn_prob if is_training else 0.0
    x = inputs
    qkv_inputs = layer_norm(inputs)
    attention = Attention(
        num_heads=self._num_heads,
        init_scale=self._att_init_scale,
        qk_channels=self._qk_channels,
        v_channels=self._v_channels,
        dropout_prob=dropout_attn_prob,
        q_chunk_size=self._q_chunk_size,
        kv_chunk_size=self._kv_chunk_size)(qkv_inputs, qkv_inputs,
                                           attention_mask=attention_mask)
    x += _dropout(dropout_prob, attention)
    x += MLP(widening_factor=self._widening_factor,
             dropout_prob=dropout_prob,
             init_scale=self._dense_init_scale)(layer_norm(x),
                                                is_training=is_training)
    return x


SHAPES_FOR_ATTN = ('q', 'kv')


class CrossAttention(hk.Module):
  """Cross-attention plus MLP, pre-LayerNorm ([P] E.1).

  The query residual is optional: decoders whose queries carry input
  features rather than output semantics (flow, autoencoding) drop it.
  """

  @checks.keyword_arguments
  def __init__(self,
               widening_factor=1,
               dropout_prob=0.0,
               dropout_attn_prob=0.0,
               num_heads=8,
               att_init_scale=1.0,
               dense_init_scale=1.0,
               shape_for_attn='kv',
               use_query_residual=True,
               qk_channels=None,
               v_channels=None,
               q_chunk_size=None,
               kv_chunk_size=None,
               name=None):
    super().__init__(name=name)
    if shape_for_attn not in SHAPES_FOR_ATTN:
      raise ValueError(f'Unknown shape_for_attn {shape_for_attn!r}; expected '
                       f'one of {SHAPES_FOR_ATTN}.')
    self._widening_factor = widening_factor
    self._dropout_prob = dropout_prob
    self._dropout_attn_prob = dropout_attn_prob
    self._num_heads = num_heads
    self._att_init_scale = att_init_scale
    self._dense_init_scale = dense_init_scale
    self._shape_for_attn = shape_for_attn
    self._use_query_residual = use_query_residual
    self._qk_channels = qk_channels
    self._v_channels = v_channels
    self._q_chunk_size = q_chunk_size
    self._kv_chunk_size = kv_chunk_size

  def __call__(self, inputs_q, inputs_kv, *, attention_mask=None,
               is_training, logit_bias=None):
    """[B, T, Cq] queries attend to [B, S, Ckv] -> [B, T, Cq]; logit_bias
    is an optional [T, S] or [B, T, S] bias on the attention logits."""
    dropout_prob = self._dropout_prob if is_training else 0.0
    dropout_attn_prob = self._dropout_attn_prob if is_training else 0.0
    output_channels = inputs_q.shape[-1]
    if self._qk_channels is not None:
      qk_channels = self._qk_channels
    elif self._shape_for_attn == 'q':
      qk_channels = inputs_q.shape[-1]
    else:
      qk_channels = inputs_kv.shape[-1]
    attention = Attention(
        num_heads=self._num_heads,
        init_scale=self._att_init_scale,
        dropout_prob=dropout_attn_prob,
        qk_channels=qk_channels,
        v_channels=self._v_channels,
        output_channels=output_channels,
        q_chunk_size=self._q_chunk_size,
        kv_chunk_size=self._kv_chunk_size)
    normed_q = layer_norm(inputs_q)
    # The key/value LayerNorm is left to the attention, which may apply it
    # a chunk of the inputs at a time.
    attention = attention(normed_q, inputs_kv, attention_mask=attention_mask,
                          kv_norm=layer_norm_fn(), logit_bias=logit_bias)
    attention = _dropout(dropout_prob, attention)
    x = inputs_q + attention if self._use_query_residual else attention
    x += MLP(widening_factor=self._widening_factor,
             dropout_prob=dropout_prob,
             init_scale=self._dense_init_scale)(layer_norm(x),
                                                is_training=is_training)
    return x


#  -----------------------------------------------------------
#  -----------------------  Perceiver  -----------------------
#  -----------------------------------------------------------


class Perceiver(hk.Module):
  """The Perceiver IO: preprocess -> encode -> decode -> postprocess."""

  @checks.keyword_arguments
  def __init__(self, encoder, decoder, input_preprocessor=None,
               output_postprocessor=None, name='perceiver'):
    super().__init__(name=name)
    self._input_preprocessor = input_preprocessor
    self._output_postprocessor = output_postprocessor
    self._decoder = decoder
    self._encoder = encoder

  def __call__(self, inputs, *, is_training, subsampled_output_points=None,
               pos=None, input_mask=None, query_mask=None,
               encoder_logit_bias=None, decoder_logit_bias=None):
    """encoder_logit_bias [N, M] or [B, N, M] and decoder_logit_bias [O, N]
    or [B, O, N], if given, are added to the encoder's and the decoder's
    cross-attention logits (e.g. a locality prior; the release has none)."""
    checks.non_empty('Perceiver', 'inputs', inputs, {0: 'B'})
    if self._input_preprocessor:
      inputs, modality_sizes, inputs_without_pos = self._input_preprocessor(
          inputs, pos=pos, is_training=is_training,
          network_input_is_1d=self._encoder.input_is_1d)
    else:
      modality_sizes = None
      inputs_without_pos = None
    if getattr(inputs, 'ndim', None) != 3:
      raise ValueError(
          'The encoder needs inputs of shape [B, M, C] (after any '
          f'preprocessor); got {getattr(inputs, "shape", type(inputs))}. Add '
          'an input_preprocessor or flatten the index dimensions.')

    # Queries for the encoder and decoder cross-attends.
    encoder_query = self._encoder.latents(inputs)
    decoder_query = self._decoder.decoder_query(
        inputs, modality_sizes, inputs_without_pos,
        subsampled_points=subsampled_output_points)

    # Passed only when given: encoders and decoders without the argument
    # still work.
    encoder_kwargs, decoder_kwargs = {}, {}
    if encoder_logit_bias is not None:
      encoder_kwargs['logit_bias'] = encoder_logit_bias
    if decoder_logit_bias is not None:
      decoder_kwargs['logit_bias'] = decoder_logit_bias
    z = self._encoder(inputs, encoder_query, is_training=is_training,
                      input_mask=input_mask, **encoder_kwargs)
    _, output_modality_sizes = self._decoder.output_shape(inputs)
    output_modality_sizes = output_modality_sizes or modality_sizes

    outputs = self._decoder(decoder_query, z, is_training=is_training,
                            query_mask=query_mask, **decoder_kwargs)
    if self._output_postprocessor:
      outputs = self._output_postprocessor(
          outputs, is_training=is_training, modality_sizes=output_modality_sizes)
    return outputs


def _check_mask(mask, name, batch, length, what):
  """`what` names the masked axis, e.g. 'M' (inputs) or 'O' (queries)."""
  if mask is not None and tuple(mask.shape) != (batch, length):
    raise ValueError(
        f'{name} has shape {tuple(mask.shape)} but must be [B, {what}] = '
        f'{(batch, length)}: one flag (1 valid, 0 padding) per element.')


class PerceiverEncoder(hk.Module):
  """Cross-attend from N learned latents to the inputs, then self-attend."""

  @checks.keyword_arguments
  def __init__(
      self,
      # The encoder has num_self_attends_per_block * num_blocks self-attend
      # layers; the weights are shared between blocks.
      num_self_attends_per_block=6,
      num_blocks=8,
      z_index_dim=512,
      num_z_channels=1024,
      qk_channels=None,
      v_channels=None,
      num_cross_attend_heads=1,
      num_self_attend_heads=8,
      cross_attend_widening_factor=1,
      self_attend_widening_factor=1,
      dropout_prob=0.0,
      z_pos_enc_init_scale=0.02,
      cross_attention_shape_for_attn='kv',
      use_query_residual=True,
      q_chunk_size=None,
      kv_chunk_size=None,
      scan_layers=False,
      remat=False,
      cross_attend_local_width=0.0,
      cross_attend_local_span=None,
      name='perceiver_encoder'):
    """The release's arguments, plus these (off by default):

    scan_layers, remat: the fast path's scanned (and rematerialised)
      self-attention stack; the same parameters as the release's layers.
    cross_attend_local_width: DEVIATION (not in [P] or the release; 0 is
      the release): for 1-D inputs, a Gaussian locality prior of this
      width (in input positions) on the cross-attention logits, latent j
      starting on the j-th of N equal tiles of the input positions
      (`attention.local_logit_bias`). It adds no parameters. At small
      scale the release's cross-attention starts spread evenly over all M
      inputs and the byte MLM stays on the unigram plateau
      (benchmarks/repro/LANGUAGE.md).
    cross_attend_local_span: the number of input positions the latents
      tile (default: the inputs' M); the MLM sets its T, so that shorter
      inputs keep the same latent-to-position prior.
    """
    super().__init__(name=name)
    checks.positive(
        'PerceiverEncoder',
        num_self_attends_per_block=num_self_attends_per_block,
        num_blocks=num_blocks, z_index_dim=z_index_dim,
        num_z_channels=num_z_channels, qk_channels=qk_channels,
        v_channels=v_channels, num_cross_attend_heads=num_cross_attend_heads,
        num_self_attend_heads=num_self_attend_heads,
        cross_attend_widening_factor=cross_attend_widening_factor,
        self_attend_widening_factor=self_attend_widening_factor)
    if qk_channels and not v_channels and qk_channels != num_z_channels:
      raise ValueError(
          f'PerceiverEncoder: qk_channels={qk_channels} without v_channels '
          'makes the self-attention values (and so its output) '
          f'{qk_channels} wide, but the latents have num_z_channels='
          f'{num_z_channels}; also set v_channels={num_z_channels} (as the '
          'release\'s language model does).')
    for heads_name, heads in (('num_self_attend_heads', num_self_attend_heads),
                              ('num_cross_attend_heads',
                               num_cross_attend_heads)):
      if num_z_channels % heads:
        raise ValueError(f'num_z_channels ({num_z_channels}) must be divisible'
                         f' by {heads_name} ({heads}).')
    if cross_attend_local_width < 0 or (cross_attend_local_span is not None
                                        and cross_attend_local_span <= 0):
      raise ValueError(
          'PerceiverEncoder: cross_attend_local_width must be >= 0 (0: off) '
          'and cross_attend_local_span positive; got '
          f'{cross_attend_local_width} and {cross_attend_local_span}.')
    self._local_width = cross_attend_local_width
    self._local_span = cross_attend_local_span
    self.input_is_1d = True
    self._num_blocks = num_blocks
    self._num_self_attends_per_block = num_self_attends_per_block
    self._scan_layers = scan_layers
    self._remat = remat

    # The latent array's initial state.
    self.z_pos_enc = position_encoding.TrainablePositionEncoding(
        index_dim=z_index_dim, num_channels=num_z_channels,
        init_scale=z_pos_enc_init_scale)
    self.cross_attend = CrossAttention(
        dropout_prob=dropout_prob,
        num_heads=num_cross_attend_heads,
        widening_factor=cross_attend_widening_factor,
        shape_for_attn=cross_attention_shape_for_attn,
        qk_channels=qk_channels,
        v_channels=v_channels,
        use_query_residual=use_query_residual,
        q_chunk_size=q_chunk_size,
        kv_chunk_size=kv_chunk_size)
    self._self_attend_kwargs = dict(
        num_heads=num_self_attend_heads,
        dropout_prob=dropout_prob,
        qk_channels=qk_channels,
        v_channels=v_channels,
        widening_factor=self_attend_widening_factor,
        q_chunk_size=q_chunk_size,
        kv_chunk_size=kv_chunk_size)
    # Unrolled: one module per layer, named self_attention, self_attention_1,
    # ... as in the release. Scanned: built inside the layer stack instead.
    if scan_layers:
      self.self_attends = SelfAttentionStack(
          num_self_attends_per_block, remat=remat, name=SCAN_NAME,
          **self._self_attend_kwargs)
    else:
      self.self_attends = [SelfAttention(**self._self_attend_kwargs)
                           for _ in range(num_self_attends_per_block)]

  # Kept for code that reads the release's private attribute.
  @property
  def _input_is_1d(self):
    return self.input_is_1d

  def latents(self, inputs):
    """The initial latent array [B, N, D]."""
    return self.z_pos_enc(batch_size=inputs.shape[0])

  def __call__(self, inputs, z, *, is_training, input_mask=None,
               logit_bias=None):
    """[B, M, C] inputs and [B, N, D] latents -> [B, N, D].

    logit_bias: an optional [N, M] or [B, N, M] bias on the cross-attention
    logits (added to the cross_attend_local_width prior, if that is on).
    """
    if inputs.ndim != 3:
      raise ValueError('PerceiverEncoder expects inputs [B, M, C]; got shape '
                       f'{tuple(inputs.shape)}.')
    checks.non_empty('PerceiverEncoder', 'inputs [B, M, C]', inputs,
                     {0: 'B', 1: 'M'})
    batch, num_inputs = inputs.shape[:2]
    _check_mask(input_mask, 'input_mask', batch, num_inputs, 'M')
    attention_mask = None
    if input_mask is not None:
      attention_mask = make_cross_attention_mask(
          query_mask=jnp.ones(z.shape[:2], dtype=jnp.int32),
          kv_mask=input_mask)
      # Padding cannot reach the latents, whatever it holds (zero_masked).
      inputs = zero_masked(inputs, input_mask)
    if self._local_width:  # DEVIATION, off by default (see __init__)
      local = local_logit_bias(
          tile_centres(z.shape[1], self._local_span or num_inputs),
          jnp.arange(num_inputs), self._local_width)
      logit_bias = local if logit_bias is None else logit_bias + local
    z = self.cross_attend(z, inputs, is_training=is_training,
                          attention_mask=attention_mask,
                          logit_bias=logit_bias)
    if self._scan_layers:
      for _ in range(self._num_blocks):
        z = self.self_attends(z, is_training=is_training)
      return z
    for _ in range(self._num_blocks):
      for self_attend in self.self_attends:
        if self._remat:
          z = hk.remat(lambda z, m=self_attend: m(z, is_training=is_training))(z)
        else:
          z = self_attend(z, is_training=is_training)
    return z


#  -----------------------------------------------------------
#  -------------  Scanned self-attention stack  ---------------
#  -----------------------------------------------------------

SCAN_NAME = 'self_attends'
_STACK_NAME = 'layer_stack'


class SelfAttentionStack(hk.Module):
  """L SelfAttention layers run by `hk.layer_stack` (a scan): one compiled
  layer, parameters stacked on a leading [L] axis.

  Built once, so every call (one per weight-shared block) reuses the same
  stacked parameters, like the unrolled modules do.

  `init` runs the layers one by one instead (see `_init_unrolled`), so that
  the same seed gives `from_release_layout` of the unscanned (release)
  init, bit for bit. DEVIATION: in training mode with dropout, the scan
  draws each layer's dropout key from `hk.layer_stack`'s own split of the
  RNG, so the masks differ from the release's (the unscanned encoder draws
  the release's); evaluation and dropout-free training are unaffected.
  """

  @checks.keyword_arguments(forwards_to=SelfAttention)
  def __init__(self, num_layers, remat=False, name=SCAN_NAME,
               **self_attend_kwargs):
    super().__init__(name=name)
    self._num_layers = num_layers
    self._remat = remat
    self._kwargs = self_attend_kwargs

  def __call__(self, z, *, is_training, attention_mask=None):
    """[B, N, D] (and an optional [B, N, N] mask) -> [B, N, D]."""
    if hk.running_init():
      return self._init_unrolled(z, is_training=is_training,
                                 attention_mask=attention_mask)
    def layer(z):
      return SelfAttention(**self._kwargs)(
          z, attention_mask=attention_mask, is_training=is_training)
    if self._remat:
      layer = hk.remat(layer)
    return hk.layer_stack(self._num_layers, name=_STACK_NAME)(layer)(z)

  @hk.transparent
  def _init_unrolled(self, z, *, is_training, attention_mask=None):
    """The layers in turn, with the unrolled encoder's key draws.

    `hk.layer_stack` would initialise layer l from its own split of the RNG.
    Here one SelfAttention, named as inside the stack, runs once per layer:
    a custom creator keeps each layer's freshly drawn parameters aside
    (every draw, dropout keys included, comes in the release's order) and a
    custom getter hands that layer its own values. The last layer's draw
    stores them all, stacked [L, ...]; later calls (the weight-shared
    blocks) read layer l's slice of them and draw only their dropout keys,
    as the unrolled blocks do.
    """
    drawn = {}  # full parameter name -> the values drawn so far, by layer
    current = {'layer': 0}

    def creator(next_creator, shape, dtype, init, context):
      values = drawn.setdefault(context.full_name, [])
      values.append(next_creator(shape, dtype, init))
      if len(values) < self._num_layers:
        return hk.DO_NOT_STORE
      return jnp.stack(values)

    def getter(next_getter, value, context):
      if value is hk.DO_NOT_STORE:
        return next_getter(drawn[context.full_name][current['layer']])
      return next_getter(value[current['layer']])

    with hk.name_scope(_STACK_NAME):
      layer = SelfAttention(**self._kwargs)
    with hk.custom_creator(creator), hk.custom_getter(getter):
      for index in range(self._num_layers):
        current['layer'] = index
        z = layer(z, attention_mask=attention_mask, is_training=is_training)
    return z


_SCANNED_RE = re.compile(r'^(?P<enc>.+)/~/' + SCAN_NAME + '/' + _STACK_NAME +
                         r'/self_attention(?P<rest>(/.*)?)$')
_UNROLLED_RE = re.compile(
    r'^(?P<enc>.+)/~/self_attention(_(?P<idx>\d+))?(?P<rest>(/.*)?)$')


def to_release_layout(params: Mapping[str, Mapping[str, jax.Array]]):
  """Scanned encoder params ([L, ...] stacked) -> the release's per-layer tree.

  Everything outside the scanned stack is passed through unchanged.
  """
  out = {}
  for module, leaves in params.items():
    match = _SCANNED_RE.match(module)
    if not match:
      out[module] = dict(leaves)
      continue
    num_layers = {v.shape[0] for v in leaves.values()}
    if len(num_layers) != 1:
      raise ValueError(f'Stacked params of {module} disagree on L: '
                       f'{sorted(num_layers)}.')
    for i in range(num_layers.pop()):
      suffix = '' if i == 0 else f'_{i}'
      name = f"{match['enc']}/~/self_attention{suffix}{match['rest']}"
      out[name] = {k: _layer(v, i) for k, v in leaves.items()}
  return out


def is_scanned(params: Mapping[str, Mapping[str, jax.Array]]) -> bool:
  """Whether a params tree holds a scanned (`scan_layers=True`) stack."""
  return any(is_stacked_module(module) for module in params)


def is_stacked_module(module: str) -> bool:
  """Whether the module's leaves are stacked [L, ...] (a scanned stack)."""
  return bool(_SCANNED_RE.match(module))


def _layer(stacked, i):
  """Layer i of a stacked [L, ...] leaf (an array or a shape struct)."""
  if isinstance(stacked, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct(stacked.shape[1:], stacked.dtype)
  return stacked[i]


def _stack(layers):
  """[L, ...] from L per-layer leaves (all arrays or all shape structs)."""
  structs = [isinstance(x, jax.ShapeDtypeStruct) for x in layers]
  if all(structs):
    return jax.ShapeDtypeStruct((len(layers),) + tuple(layers[0].shape),
                                layers[0].dtype)
  if any(structs):
    raise ValueError('Cannot stack a layer given as a shape struct with '
                     'layers given as arrays.')
  return jnp.stack(layers)


def from_release_layout(params: Mapping[str, Mapping[str, jax.Array]]):
  """The release's per-layer encoder tree -> scanned ([L, ...] stacked)."""
  out, stacks = {}, {}
  for module, leaves in params.items():
    match = _UNROLLED_RE.match(module)
    if not match:
      out[module] = dict(leaves)
      continue
    key = (f"{match['enc']}/~/{SCAN_NAME}/{_STACK_NAME}/self_attention"
           f"{match['rest']}")
    stacks.setdefault(key, {})[int(match['idx'] or 0)] = leaves
  for key, layers in stacks.items():
    if sorted(layers) != list(range(len(layers))):
      raise ValueError(f'Layers of {key} are not contiguous: {sorted(layers)}.')
    names = layers[0].keys()
    out[key] = {n: _stack([layers[i][n] for i in range(len(layers))])
                for n in names}
  return out


#  -----------------------------------------------------------
#  -----------------------  Decoders  ------------------------
#  -----------------------------------------------------------


class AbstractPerceiverDecoder(hk.Module, metaclass=abc.ABCMeta):
  """A decoder: builds its queries, then decodes the latents with them."""

  @abc.abstractmethod
  def decoder_query(self, inputs, modality_sizes=None, inputs_without_pos=None,
                    subsampled_points=None):
    raise NotImplementedError

  @abc.abstractmethod
  def output_shape(self, inputs):
    raise NotImplementedError

  @abc.abstractmethod
  def __call__(self, query, z, *, is_training, query_mask=None):
    raise NotImplementedError


class ProjectionDecoder(AbstractPerceiverDecoder):
  """The original Perceiver's decoder: mean over latents, then Linear.

  [P] Table 7 "average + project"; the logits layer is zero-initialised.
  """

  @checks.keyword_arguments
  def __init__(self, num_classes, final_avg_before_project=False,
               name='projection_decoder'):
    super().__init__(name=name)
    checks.positive('ProjectionDecoder', num_classes=num_classes)
    self._final_avg_before_project = final_avg_before_project
    self._num_classes = num_classes
    self.final_layer = hk.Linear(num_classes, w_init=jnp.zeros, name='logits')

  def decoder_query(self, inputs, modality_sizes=None, inputs_without_pos=None,
                    subsampled_points=None):
    return None

  def output_shape(self, inputs):
    return ((inputs.shape[0], self._num_classes), None)

  def __call__(self, query, z, *, is_training, query_mask=None):
    z = jnp.mean(z, axis=1, dtype=z.dtype)  # [B, N, D] -> [B, D]
    return self.final_layer(z)  # [B, num_classes]


def _check_subsampled_points(points, output_index_dims, batch):
  """Raises if subsampled points are not [O] or [B, O] flat indices, or if
  concrete ones fall outside the output grid."""
  size = int(np.prod(output_index_dims))
  shape = tuple(np.shape(points))
  if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != batch):
    raise ValueError('subsampled_points must be flat indices into '
                     f'{tuple(output_index_dims)}, shaped [O] (shared by the '
                     f'batch) or [B={batch}, O] (one set per example); got '
                     f'shape {shape}.')
  if isinstance(points, jax.core.Tracer):
    return  # Values unknown at trace time; callers inside jit must ensure it.
  values = np.asarray(points)
  if values.size and (values.min() < 0 or values.max() >= size):
    raise ValueError(
        f'subsampled_points must lie in [0, {size}) for output_index_dims '
        f'{tuple(output_index_dims)}; got values in [{values.min()}, '
        f'{values.max()}].')


class BasicDecoder(AbstractPerceiverDecoder):
  """Cross-attention decoder: O queries attend to the latents."""

  @checks.keyword_arguments(
      forwards_to=position_encoding.build_position_encoding,
      bound=('position_encoding_type', 'index_dims'))
  def __init__(self,
               output_num_channels,
               position_encoding_type='trainable',
               # Ignored if position_encoding_type == 'none':
               output_index_dims=None,
               subsampled_index_dims=None,
               num_z_channels=1024,
               qk_channels=None,
               v_channels=None,
               use_query_residual=False,
               output_w_init=None,
               concat_preprocessed_input=False,
               num_heads=1,
               name='basic_decoder',
               final_project=True,
               q_chunk_size=None,
               kv_chunk_size=None,
               local_width=0.0,
               **position_encoding_kwargs):
    """The release's arguments, plus local_width: DEVIATION (not in [P] or
    the release; 0 is the release): a Gaussian locality prior of this
    width, in output positions, on the cross-attention logits of 1-D
    queries, latent j sitting at the centre of the j-th of N equal tiles
    of the output_index_dims positions: the decoder's half of
    `PerceiverEncoder`'s cross_attend_local_width. It adds no parameters.
    """
    super().__init__(name=name)
    if local_width < 0:
      raise ValueError(
          f'BasicDecoder: local_width must be >= 0 (0: off); got {local_width}.')
    self._local_width = local_width
    checks.positive('BasicDecoder', output_num_channels=output_num_channels,
                    num_heads=num_heads, qk_channels=qk_channels,
                    v_channels=v_channels)
    if position_encoding_type != 'none':  # else the dims are not used
      checks.positive_dims('BasicDecoder', 'output_index_dims',
                           output_index_dims)
    self._position_encoding_type = position_encoding_type
    # With 'none', queries must come from elsewhere (e.g. MultimodalDecoder).
    self.output_pos_enc = None
    if position_encoding_type != 'none':
      self.output_pos_enc = position_encoding.build_position_encoding(
          position_encoding_type, index_dims=output_index_dims,
          **position_encoding_kwargs)
    self._output_index_dim = output_index_dims
    if subsampled_index_dims is None:
      subsampled_index_dims = output_index_dims
    self._subsampled_index_dims = subsampled_index_dims
    self._output_num_channels = output_num_channels
    self._output_w_init = output_w_init
    self._use_query_residual = use_query_residual
    self._qk_channels = qk_channels
    self._v_channels = v_channels
    self._final_project = final_project
    self._num_heads = num_heads
    self._concat_preprocessed_input = concat_preprocessed_input
    self._q_chunk_size = q_chunk_size
    self._kv_chunk_size = kv_chunk_size

  def output_shape(self, inputs):
    return ((inputs[0], self._subsampled_index_dims,
             self._output_num_channels), None)

  def decoder_query(self, inputs, modality_sizes=None,
                    inputs_without_pos=None, subsampled_points=None):
    """[B, O, E] queries from the output position encoding."""
    if self._position_encoding_type == 'none':
      raise ValueError("A BasicDecoder with position_encoding_type='none' "
                       'cannot build queries; pass them to __call__ yourself.')
    batch = inputs.shape[0]
    if subsampled_points is not None:
      index_dims = tuple(int(d) for d in np.atleast_1d(self._output_index_dim))
      _check_subsampled_points(subsampled_points, index_dims, batch)
      # Flat indices [O] or [B, O] -> coordinates [(B,) O, d] -> [-1, 1).
      pos = jnp.stack(jnp.unravel_index(subsampled_points, index_dims), axis=-1)
      pos = -1 + 2 * pos / jnp.array(index_dims)
      pos = jnp.broadcast_to(pos, (batch,) + pos.shape[-2:])
      pos_emb = self.output_pos_enc(batch_size=batch, pos=pos)
      pos_emb = jnp.reshape(pos_emb, [pos_emb.shape[0], -1, pos_emb.shape[-1]])
    else:
      pos_emb = self.output_pos_enc(batch_size=batch)
    if self._concat_preprocessed_input:
      if inputs_without_pos is None:
        raise ValueError(
            'concat_preprocessed_input=True needs inputs_without_pos (the '
            'preprocessed inputs without position features); use an input '
            'preprocessor that returns them, or set it to False.')
      pos_emb = jnp.concatenate([inputs_without_pos, pos_emb], axis=-1)
    return pos_emb

  def __call__(self, query, z, *, is_training, query_mask=None,
               query_positions=None, logit_bias=None):
    """[B, O, E] queries, [B, N, D] latents -> [B, O, output channels].

    query_positions: with local_width, the [O] flat output indices the
    queries decode (default: all output_index_dims positions, in order).
    logit_bias: an optional [O, N] or [B, O, N] bias on the cross-attention
    logits (added to the local_width prior, if that is on).
    """
    attention_mask = None
    if query_mask is not None:
      _check_mask(query_mask, 'query_mask', query.shape[0], query.shape[1],
                  'O')
      attention_mask = make_cross_attention_mask(
          query_mask=query_mask,
          kv_mask=jnp.ones(z.shape[:2], dtype=jnp.int32))
      # DEVIATION: masked queries are decoded as zeros (zero_masked), so
      # that padding holding NaN or 1e30 gives the outputs (and finite
      # gradients) of zero padding. Unmasked outputs are the release's; at
      # masked positions, whose attention the release already sets to
      # zero, the residual and MLP now see a zero query, not the padding.
      query = zero_masked(query, query_mask)
    decoding_cross_attn = CrossAttention(
        dropout_prob=0.0,
        num_heads=self._num_heads,
        widening_factor=1,
        shape_for_attn='kv',
        qk_channels=self._qk_channels,
        v_channels=self._v_channels,
        use_query_residual=self._use_query_residual,
        q_chunk_size=self._q_chunk_size,
        kv_chunk_size=self._kv_chunk_size)
    final_layer = kernels.linear(self._output_num_channels,
                                 w_init=self._output_w_init, name='output')
    if self._local_width:  # DEVIATION, off by default (see __init__)
      span = int(np.prod(self._output_index_dim))
      if query_positions is None and query.shape[1] != span:
        raise ValueError(
            f'BasicDecoder: with local_width, {query.shape[1]} queries for '
            f'{span} output positions need query_positions (their [O] flat '
            'indices).')
      if query_positions is None:
        query_positions = jnp.arange(span)
      local = local_logit_bias(
          query_positions, tile_centres(z.shape[1], span), self._local_width)
      logit_bias = local if logit_bias is None else logit_bias + local
    output = decoding_cross_attn(query, z, is_training=is_training,
                                 attention_mask=attention_mask,
                                 logit_bias=logit_bias)
    if self._final_project:
      output = final_layer(output)
    return output


class ClassificationDecoder(AbstractPerceiverDecoder):
  """A BasicDecoder with one learned query, returning [B, num_classes]."""

  @checks.keyword_arguments(
      forwards_to=BasicDecoder,
      bound=('output_index_dims', 'output_num_channels'))
  def __init__(self, num_classes, name='classification_decoder',
               **decoder_kwargs):
    super().__init__(name=name)
    checks.positive('ClassificationDecoder', num_classes=num_classes)
    self._num_classes = num_classes
    self.decoder = BasicDecoder(
        output_index_dims=(1,),  # Predict a single logit array.
        output_num_channels=num_classes,
        **decoder_kwargs)

  def decoder_query(self, inputs, modality_sizes=None,
                    inputs_without_pos=None, subsampled_points=None):
    return self.decoder.decoder_query(inputs, modality_sizes,
                                      inputs_without_pos,
                                      subsampled_points=subsampled_points)

  def output_shape(self, inputs):
    return (inputs.shape[0], self._num_classes), None

  def __call__(self, query, z, *, is_training, query_mask=None):
    logits = self.decoder(query, z, is_training=is_training)
    return logits[:, 0, :]  # [B, 1, classes] -> [B, classes]


class MultimodalDecoder(AbstractPerceiverDecoder):
  """Decodes several modalities with one shared cross-attention.

  Each modality's decoder only builds that modality's queries; they are
  padded with a learned per-modality vector to a common width (max + 
  `min_padding_size`) and concatenated in sorted modality order.
  """

  @checks.keyword_arguments(
      forwards_to=BasicDecoder,
      bound=('output_index_dims', 'output_num_channels',
             'position_encoding_type'))
  def __init__(self, modalities, num_outputs, output_num_channels,
               min_padding_size=2, subsampled_index_dims=None,
               name='multimodal_decoder', **decoder_kwargs):
    super().__init__(name=name)
    self._modalities = modalities
    self._subsampled_index_dims = subsampled_index_dims
    self._min_padding_size = min_padding_size
    self._output_num_channels = output_num_channels
    self._num_outputs = num_outputs
    self._decoder = BasicDecoder(
        output_index_dims=(num_outputs,),
        output_num_channels=output_num_channels,
        position_encoding_type='none',
        **decoder_kwargs)

  def decoder_query(self, inputs, modality_sizes, inputs_without_pos=None,
                    subsampled_points=None):
    """[B, sum of O_modality, E] queries."""
    if modality_sizes is None:
      raise ValueError('MultimodalDecoder needs modality_sizes; use it with a '
                       'MultimodalPreprocessor.')
    inputs = io_processors.restructure(modality_sizes, inputs)
    subsampled_points = subsampled_points or {}
    unknown = set(subsampled_points) - set(self._modalities)
    if unknown:
      raise ValueError(f'subsampled_points has unknown modalities '
                       f'{sorted(unknown)}; expected a subset of '
                       f'{sorted(self._modalities)}.')
    queries = {}
    for modality, decoder in self._modalities.items():
      without_pos = None
      if inputs_without_pos is not None:
        without_pos = inputs_without_pos.get(modality, None)
      queries[modality] = decoder.decoder_query(
          inputs=inputs[modality], modality_sizes=None,
          inputs_without_pos=without_pos,
          subsampled_points=subsampled_points.get(modality, None))
    num_channels = (max(q.shape[2] for q in queries.values())
                    + self._min_padding_size)

    def embed(modality, x):
      x = jnp.reshape(x, [x.shape[0], int(np.prod(x.shape[1:-1])), x.shape[-1]])
      pad = position_encoding.TrainablePositionEncoding(
          1, num_channels=num_channels - x.shape[2], init_scale=0.02,
          name=f'{modality}_padding')(x.shape[0])
      pad = jnp.broadcast_to(pad, [x.shape[0], x.shape[1],
                                   num_channels - x.shape[2]])
      return jnp.concatenate([x, pad], axis=2)

    return jnp.concatenate([embed(m, queries[m])
                            for m in sorted(self._modalities)], axis=1)

  def output_shape(self, inputs):
    if self._subsampled_index_dims is not None:
      num = sum(self._subsampled_index_dims.values())
    else:
      num = self._num_outputs
    return ((inputs.shape[0], num, self._output_num_channels),
            self._subsampled_index_dims)

  def __call__(self, query, z, *, is_training, query_mask=None,
               logit_bias=None):
    """logit_bias: as BasicDecoder's, over the concatenated queries."""
    return self._decoder(query, z, is_training=is_training,
                         query_mask=query_mask, logit_bias=logit_bias)


class BasicVideoAutoencodingDecoder(AbstractPerceiverDecoder):
  """A BasicDecoder over a [T, H, W] grid, reshaped to [B, T, H, W, E]."""

  @checks.keyword_arguments(
      forwards_to=BasicDecoder, bound=('output_index_dims',))
  def __init__(self, output_shape, position_encoding_type,
               name='basic_video_autoencoding_decoder', **decoder_kwargs):
    super().__init__(name=name)
    if len(output_shape) != 4:  # B, T, H, W
      raise ValueError(f'Expected rank 4 output_shape [B, T, H, W], got '
                       f'{output_shape}.')
    self._output_shape = list(output_shape)
    self._output_num_channels = decoder_kwargs['output_num_channels']
    self.decoder = BasicDecoder(
        output_index_dims=tuple(self._output_shape[1:4]),
        position_encoding_type=position_encoding_type,
        **decoder_kwargs)

  def decoder_query(self, inputs, modality_sizes=None,
                    inputs_without_pos=None, subsampled_points=None):
    return self.decoder.decoder_query(inputs, modality_sizes=modality_sizes,
                                      inputs_without_pos=inputs_without_pos,
                                      subsampled_points=subsampled_points)

  def output_shape(self, inputs):
    return ([inputs.shape[0]] + self._output_shape[1:] +
            [self._output_num_channels], None)

  def __call__(self, query, z, *, is_training, query_mask=None):
    output = self.decoder(query, z, is_training=is_training)
    return jnp.reshape(output, self._output_shape + [output.shape[-1]])


class FlowDecoder(AbstractPerceiverDecoder):
  """Optical-flow decoder: the queries are the input features per pixel.

  [P] §4.2: no query residual; the output Linear is zero-initialised in the
  release's config and its output is divided by `rescale_factor`.
  """

  @checks.keyword_arguments(forwards_to=BasicDecoder)
  def __init__(self, output_image_shape, output_num_channels=2,
               rescale_factor=100.0, name='flow_decoder', **decoder_kwargs):
    super().__init__(name=name)
    self._output_image_shape = tuple(output_image_shape)
    self._output_num_channels = output_num_channels
    self._rescale_factor = rescale_factor
    self.decoder = BasicDecoder(output_num_channels=output_num_channels,
                                **decoder_kwargs)

  def output_shape(self, inputs):
    # The channels need not be (u, v): a postprocessor may consume more.
    return ((inputs.shape[0],) + self._output_image_shape +
            (self._output_num_channels,), None)

  def decoder_query(self, inputs, modality_sizes=None, inputs_without_pos=None,
                    subsampled_points=None):
    if subsampled_points is not None:
      raise ValueError('FlowDecoder does not support subsampled_points: it '
                       'queries with the input features at every pixel.')
    return inputs  # Frames already merged in time by the preprocessor.

  def __call__(self, query, z, *, is_training, query_mask=None):
    preds = self.decoder(query, z, is_training=is_training)
    preds /= self._rescale_factor
    return preds.reshape([preds.shape[0]] + list(self._output_image_shape) +
                         [preds.shape[-1]])
