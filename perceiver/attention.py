"""Multi-head attention kernels: the release's exact form and a chunked form.

Glossary of shapes:
  B: batch size.  T: query positions.  S: key/value positions.
  H: heads.  D: query/key channels per head.  V: value channels per head.

`attend` computes softmax(Q K^T / sqrt(D)) V per head, as [code]
perceiver.attend. With `q_chunk_size` and/or `kv_chunk_size` it instead
computes the same function in chunks (Rabe & Staats 2021, arXiv 2112.05682):
queries are processed a chunk at a time, and keys/values are folded in with a
running max and running normaliser, so the [T, S] attention matrix is never
materialised. Each key/value chunk is rematerialised in the backward pass, so
training memory is bounded too.

Every form takes an optional `logit_bias` [T, S] (or [B, T, S], one per
batch element), added to the scaled logits of every head before the
softmax (e.g.
`local_logit_bias`, a DEVIATION switch of the encoder and decoder; the
release has none).

`jax.nn.dot_product_attention` cannot serve here: Perceiver's value channels
differ from its key channels (e.g. qk 256, v 1280 in the language model).

Mixed precision: logits, softmax and the running statistics are computed in
float32 whatever the input dtype; the weighted sum runs in the value dtype.
"""
import math
from typing import Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp

from perceiver import kernels

# The release masks with -1e30 rather than -inf, so that fully masked rows stay
# finite (they are zeroed afterwards). Softmax runs in float32, where it fits.
_MASK_VALUE = -1e30


def check_attention_mask(attention_mask, batch: int, q_len: int, kv_len: int):
  """Raises a clear error when a mask does not fit [B, T, S]."""
  if attention_mask is None:
    return
  expected = (batch, q_len, kv_len)
  if tuple(attention_mask.shape) != expected:
    raise ValueError(
        f'attention_mask has shape {tuple(attention_mask.shape)} but the '
        f'attention needs [batch, queries, keys] = {expected}. Build it with '
        'make_cross_attention_mask(query_mask [B, T], kv_mask [B, S]).')


def check_logit_bias(logit_bias, batch: int, q_len: int, kv_len: int):
  """Raises unless logit_bias is None, [T, S] or [B, T, S]."""
  if logit_bias is None or tuple(logit_bias.shape) in (
      (q_len, kv_len), (batch, q_len, kv_len)):
    return
  raise ValueError(
      f'logit_bias has shape {tuple(logit_bias.shape)} but the attention '
      f'needs [queries, keys] = {(q_len, kv_len)} (one bias per query and '
      'key, shared by the batch and the heads) or [B, queries, keys] = '
      f'{(batch, q_len, kv_len)}.')


def _logit_bias_for_logits(logit_bias, batch: int, q_len: int, kv_len: int):
  """The checked bias in float32 as [T, S] or [B, 1, T, S]: either adds to
  [B, H, T, S] logits (and a slice of its last two axes to a chunk's)."""
  check_logit_bias(logit_bias, batch, q_len, kv_len)
  if logit_bias is None:
    return None
  logit_bias = logit_bias.astype(jnp.float32)
  return logit_bias if logit_bias.ndim == 2 else logit_bias[:, None]


def local_logit_bias(q_positions, kv_positions, width: float):
  """A Gaussian locality prior [T, S]: -(q_t - k_s)^2 / (2 width^2).

  q_positions [T] and kv_positions [S] are coordinates on one axis (e.g. the
  byte index of an input and the centre of the span a latent covers);
  q_positions [B, T] (e.g. per-example decoder queries) give [B, T, S]. A key
  `width` away from a query gets e^-0.5 of the weight of a key at the same
  place, before the content logits are added.
  """
  if not width > 0:
    raise ValueError(f'local_logit_bias: width must be positive; got {width}.')
  q = jnp.asarray(q_positions, jnp.float32)[..., :, None]
  k = jnp.asarray(kv_positions, jnp.float32)[None, :]
  return -jnp.square(q - k) / (2.0 * width ** 2)


def tile_centres(count: int, span: int):
  """Centres of `count` equal tiles of the positions 0 .. span - 1 (e.g.
  N latents over T bytes: tile j covers [j T / N, (j + 1) T / N))."""
  return (jnp.arange(count, dtype=jnp.float32) + 0.5) * (span / count) - 0.5


def attend(q, k, v, dropout_prob=0.0, attention_mask=None, *,
           q_chunk_size: Optional[int] = None,
           kv_chunk_size: Optional[int] = None,
           v_bias=None, logit_bias=None):
  """Multi-head attention.

  Args:
    q: [B, T, H, D] queries.
    k: [B, S, H, D] keys.
    v: [B, S, H, V] values.
    dropout_prob: dropout on the attention weights (unchunked path only).
    attention_mask: optional [B, T, S]; truthy entries may be attended.
    q_chunk_size: process queries at most this many at a time (None: all
      at once); `even_chunk` may take a smaller size that divides T.
    kv_chunk_size: fold in keys/values at most this many at a time (None:
      all); likewise for S.
    v_bias: optional [H * V], added to the output of every row that attends
      to something: the same as adding it to v, since the weights sum to
      one (not with dropout, whose weights do not).
    logit_bias: optional [T, S] or [B, T, S], added to the scaled logits
      of every head.

  Returns:
    [B, T, H * V]. Rows whose mask is all zero are exactly zero.
  """
  batch, q_len, num_heads, _ = q.shape
  kv_len = k.shape[1]
  check_attention_mask(attention_mask, batch, q_len, kv_len)
  logit_bias = _logit_bias_for_logits(logit_bias, batch, q_len, kv_len)
  if v_bias is not None and dropout_prob > 0:
    raise ValueError('v_bias cannot be added after attention dropout (the '
                     'dropped weights do not sum to one); add it to v.')
  if q_chunk_size is None and kv_chunk_size is None:
    out = _dense(q, k, v, dropout_prob, attention_mask, logit_bias)
  else:
    if dropout_prob > 0:
      raise ValueError(
          'Chunked attention does not support attention dropout; set '
          'q_chunk_size=kv_chunk_size=None or dropout_prob=0.')
    for name, size in (('q_chunk_size', q_chunk_size),
                       ('kv_chunk_size', kv_chunk_size)):
      if size is not None and size <= 0:
        raise ValueError(f'{name} must be positive or None; got {size}.')
    if (q_chunk_size or q_len) >= q_len and (kv_chunk_size or kv_len) >= kv_len:
      # One chunk each way (e.g. the encoder's chunk sizes, sized for its
      # cross-attention, on the much shorter latent self-attention): the
      # chunk loops would only add work.
      out = _dense(q, k, v, 0.0, attention_mask, logit_bias)
    else:
      out = _attend_chunked(q, k, v, attention_mask, q_chunk_size,
                            kv_chunk_size, logit_bias)
  return _merge_heads(out, attention_mask, v_bias)


def attend_factored(q, inputs_kv, w_k, w_v, v_bias, *, kv_norm=None,
                    attention_mask=None, q_chunk_size: Optional[int] = None,
                    kv_chunk_size: Optional[int] = None,
                    chunk_projections: bool = False, logit_bias=None):
  """Single-head attention with the key and value projections moved to
  the queries' side:

    softmax(q (x W_k)^T / sqrt(D)) (x W_v)
      = [softmax((q W_k^T) x^T / sqrt(D)) x] W_v,     x = kv_norm(inputs_kv),

  i.e. attention of the queries q W_k^T [T, C] over x as both keys and
  values, then W_v on the [T, C] result. The only S-sized arrays are x's:
  no [S, D] keys or [S, V] values, two of the four S-sized matmuls fewer.
  `kernels.factored_attention_pays` says when that is less work. The key
  bias is left out and the value bias added to the output, as
  `kernels.KeyValueLinear` does (exact without attention dropout).

  Args:
    q: [B, T, 1, D] queries.
    inputs_kv: [B, S, C] key/value inputs, before kv_norm.
    w_k: [C, D] key projection.
    w_v: [C, V] value projection.
    v_bias: [V] value bias.
    kv_norm: optional function applied to inputs_kv (its LayerNorm).
    attention_mask, q_chunk_size, kv_chunk_size, logit_bias: as `attend`'s.
    chunk_projections: normalise x a key chunk at a time inside the loop
      over chunks, as `attend_projected` does (needs kv_chunk_size and the
      queries in one chunk).

  Returns:
    [B, T, V], as `attend` with v_bias; rows whose mask is all zero are
    exactly zero.
  """
  channels, qk_channels = w_k.shape
  if q.shape[2] != 1:
    raise ValueError(f'attend_factored takes one head; q has {q.shape[2]}.')
  # attend scales logits by 1/sqrt(C) (the queries' channels here); the
  # factor sqrt(C / D) leaves the release's 1/sqrt(D).
  q = jnp.einsum('bthd,cd->bthc', q, w_k) * jnp.asarray(
      (channels / qk_channels) ** 0.5, q.dtype)

  def keys_values(x):
    if kv_norm is not None:
      x = kv_norm(x)
    x = x[:, :, None, :]  # [B, S, 1, C]
    return x, x

  if chunk_projections:
    out = attend_projected(q, inputs_kv, keys_values, channels, kv_chunk_size,
                           attention_mask=attention_mask,
                           logit_bias=logit_bias)
  else:
    x, _ = keys_values(inputs_kv)
    out = attend(q, x, x, attention_mask=attention_mask,
                 q_chunk_size=q_chunk_size, kv_chunk_size=kv_chunk_size,
                 logit_bias=logit_bias)
  out = jnp.dot(out, w_v) + v_bias.astype(out.dtype)
  return _wipe_unattended(out, attention_mask)


def _wipe_unattended(out, attention_mask):
  """out [B, T, ...] with the rows whose mask is all zero set to zero."""
  if attention_mask is None:
    return out
  wipe = jnp.all(attention_mask == 0, axis=2, keepdims=True)  # [B, T, 1]
  return jnp.where(wipe, jnp.zeros_like(out), out)


def _merge_heads(out, attention_mask, v_bias=None):
  """[B, T, H, V] -> [B, T, H * V], plus v_bias [H * V] if given, with
  rows that may attend to nothing set to zero: they would otherwise get a
  uniform average of the values, and the release forces them to zero."""
  batch, q_len, num_heads, v_dim = out.shape
  out = jnp.reshape(out, [batch, q_len, num_heads * v_dim])
  if v_bias is not None:
    out = out + v_bias.astype(out.dtype)
  return _wipe_unattended(out, attention_mask)


def _logits(q, k):
  """Scaled logits [B, H, T, S] in float32."""
  scale = 1.0 / math.sqrt(q.shape[-1])
  logits = jnp.einsum('bthd,bshd->bhts', q, k,
                      preferred_element_type=jnp.float32)
  return logits * scale


def _dense(q, k, v, dropout_prob, attention_mask, logit_bias=None):
  """Dense attention: the fast kernel inside `kernels.fast_kernels()`
  (without attention dropout, which needs the normalised weights), else
  the release's."""
  if kernels.enabled() and not dropout_prob:
    return kernels.attend_dense(q, k, v, attention_mask, _MASK_VALUE,
                                logit_bias)
  return _attend_dense(q, k, v, dropout_prob, attention_mask, logit_bias)


def _attend_dense(q, k, v, dropout_prob, attention_mask, logit_bias=None):
  """The release's computation: [B, T, H, V]."""
  logits = _logits(q, k)
  if logit_bias is not None:  # [T, S] or [B, 1, T, S]
    logits = logits + logit_bias
  if attention_mask is not None:
    logits = jnp.where(attention_mask[:, None, :, :], logits, _MASK_VALUE)
  weights = jax.nn.softmax(logits)
  if dropout_prob > 0:
    weights = hk.dropout(hk.next_rng_key(), dropout_prob, weights)
  return jnp.einsum('bhts,bshv->bthv', weights.astype(v.dtype), v)


def _pad_axis(x, axis, size, value=0):
  pad = size - x.shape[axis]
  if pad == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, pad)
  return jnp.pad(x, widths, constant_values=value)


def even_chunk(length: int, requested: int) -> int:
  """A chunk size of at most `requested` that divides `length` into the
  fewest chunks, when one up to twice that many does; else `requested`
  (the last chunk is then padded). E.g. 182,528 keys (368 x 496) in chunks
  of 8192 -> 23 chunks of 7936: no padding, no padded copies of K and V."""
  if requested >= length:
    return length
  fewest = -(-length // requested)
  for count in range(fewest, 2 * fewest + 1):
    if length % count == 0:
      return length // count
  return requested


def _attend_chunked(q, k, v, attention_mask, q_chunk_size, kv_chunk_size,
                    logit_bias=None):
  """Memory-efficient attention: [B, T, H, V] without a [T, S] matrix."""
  batch, q_len, num_heads, _ = q.shape
  kv_len, v_dim = k.shape[1], v.shape[-1]
  cq = even_chunk(q_len, q_chunk_size or q_len)
  ckv = even_chunk(kv_len, kv_chunk_size or kv_len)
  nq, nkv = -(-q_len // cq), -(-kv_len // ckv)
  q_pad, kv_pad = nq * cq, nkv * ckv

  mask = attention_mask
  if mask is not None:
    mask = _pad_axis(_pad_axis(mask.astype(bool), 2, kv_pad, False),
                     1, q_pad, False)
    # [nq, B, cq, nkv, ckv]
    mask = jnp.reshape(mask, [batch, nq, cq, nkv, ckv]).transpose(1, 0, 2, 3, 4)
  bias = logit_bias  # [T, S] or [B, 1, T, S] -> [nq, nkv, (B, 1,) cq, ckv]
  if bias is not None:
    lead = bias.ndim - 2
    bias = _pad_axis(_pad_axis(bias, lead + 1, kv_pad), lead, q_pad)
    bias = jnp.reshape(bias, bias.shape[:lead] + (nq, cq, nkv, ckv))
    bias = jnp.moveaxis(bias, (lead, lead + 2), (0, 1))

  # The 1/sqrt(D) scale on the [T, D] queries once, not on every [cq, ckv]
  # logits chunk.
  q = q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype)
  q = jnp.reshape(_pad_axis(q, 1, q_pad), [batch, nq, cq, num_heads, -1])
  q = jnp.moveaxis(q, 1, 0)  # [nq, B, cq, H, D]
  k = jnp.moveaxis(jnp.reshape(_pad_axis(k, 1, kv_pad),
                               [batch, nkv, ckv, num_heads, -1]), 1, 0)
  v = jnp.moveaxis(jnp.reshape(_pad_axis(v, 1, kv_pad),
                               [batch, nkv, ckv, num_heads, v_dim]), 1, 0)
  # Padded keys (only when no chunk size divides S) are hidden by their
  # position, computed per chunk: no [B, T, S] mask is built for them.
  padded = kv_pad != kv_len

  @jax.checkpoint
  def fold_kv_chunk(carry, chunk):
    """Folds one key/value chunk into the running softmax statistics."""
    q_chunk, k_chunk, v_chunk, m_chunk, b_chunk, index = chunk
    keep = None if m_chunk is None else m_chunk[:, None, :, :]
    if padded:
      real = index * ckv + jnp.arange(ckv) < kv_len  # [ckv]
      keep = real if keep is None else keep & real
    return _fold(carry, q_chunk, k_chunk, v_chunk, keep, b_chunk), None

  def one_q_chunk(args):
    # [B, cq, H, D], [B, cq, nkv, ckv] or None, [nkv, (B, 1,) cq, ckv] or
    # None
    q_chunk, m_q, b_q = args
    m_kv = None if m_q is None else jnp.moveaxis(m_q, 2, 0)  # [nkv,B,cq,ckv]
    init = _initial_stats((q_chunk, k, v, m_kv), batch, num_heads, cq, v_dim)
    carry, _ = jax.lax.scan(
        lambda c, x: fold_kv_chunk(c, (q_chunk,) + x), init,
        (k, v, m_kv, b_q, jnp.arange(nkv)))
    return _normalise(carry, v.dtype)

  if nq == 1:
    # One query chunk (an encoder's N latents): no loop over query chunks,
    # whose while loop and stacked output cost time and memory.
    out = one_q_chunk((q[0], None if mask is None else mask[0],
                       None if bias is None else bias[0]))[None]
  else:
    out = jax.lax.map(one_q_chunk, (q, mask, bias))  # [nq, B, cq, H, V]
  out = jnp.reshape(jnp.moveaxis(out, 0, 1), [batch, q_pad, num_heads, v_dim])
  return out[:, :q_len]


def _initial_stats(inputs, batch, num_heads, q_len, v_dim):
  """The running max (-inf), normaliser (0) and accumulator (0) before any
  key is folded in: [B, H, T], [B, H, T], [B, T, H, V] in float32.

  The zero is made from every input: inside `jax.shard_map` the initial
  carry then varies over the mesh axes the inputs vary over, as the scan's
  output carry does (a constant init would not)."""
  zero = sum(jnp.zeros_like(jnp.ravel(x)[:1], jnp.float32)
             for x in inputs if x is not None)
  stats = jnp.broadcast_to(zero, (batch, num_heads, q_len))
  return (stats - jnp.inf, stats,
          jnp.broadcast_to(zero, (batch, q_len, num_heads, v_dim)))


def _fold(carry, q, k, v, keep, bias=None):
  """Folds keys k [B, c, H, D] and values v [B, c, H, V] into the running
  softmax statistics of the (already scaled) queries q [B, T, H, D]. keep,
  if given, broadcasts to [B, H, T, c]: False hides a key. bias, if given,
  is the chunk's [T, c] or [B, 1, T, c] logit bias."""
  running_max, running_sum, acc = carry
  logits = jnp.einsum('bthd,bshd->bhts', q, k,
                      preferred_element_type=jnp.float32)  # [B, H, T, c]
  if bias is not None:
    logits = logits + bias
  if keep is not None:
    logits = jnp.where(keep, logits, _MASK_VALUE)
  new_max = jnp.maximum(running_max, jnp.max(logits, axis=-1))
  p = jnp.exp(logits - new_max[..., None])
  correction = jnp.exp(running_max - new_max)
  running_sum = running_sum * correction + jnp.sum(p, axis=-1)
  acc = acc * jnp.moveaxis(correction, 1, 2)[..., None] + jnp.einsum(
      'bhts,bshv->bthv', p.astype(v.dtype), v,
      preferred_element_type=jnp.float32)
  return new_max, running_sum, acc


def _normalise(carry, dtype):
  """The attention output [B, T, H, V] from the final statistics."""
  _, total, acc = carry
  return (acc / jnp.moveaxis(total, 1, 2)[..., None]).astype(dtype)


def kv_chunking(length: int, requested: int) -> tuple[int, int]:
  """(chunk size, chunk count) covering `length` keys in chunks of at most
  `requested`, as evenly as possible: an exact divisor when `even_chunk`
  finds one, else ceil(length / count), the last chunk then overlapping
  the one before it by less than the chunk count."""
  size = even_chunk(length, requested)
  count = -(-length // size)
  if length % size:
    size = -(-length // count)
  return size, count


def attend_projected(q, inputs_kv, project_kv: Callable, v_head_channels: int,
                     kv_chunk_size: int, attention_mask=None, v_bias=None,
                     logit_bias=None):
  """Attention whose keys and values are computed a chunk at a time.

  Chunked attention (`attend` with kv_chunk_size) still takes K and V
  whole, so the [B, S, C] normalised inputs, the [B, S, H*D] and
  [B, S, H*V] projections and their gradients are all held at once. Here
  `project_kv` (a Haiku function: the key/value LayerNorm and projections)
  runs on one [B, c, C] slice of the inputs inside the loop over key
  chunks, and again in the backward pass, so besides the inputs and their
  gradient only one chunk of S-sized arrays is live at a time. The
  function is the same as `attend`'s; only rounding differs.

  Args:
    q: [B, T, H, D] queries, all in one chunk.
    inputs_kv: [B, S, C] key/value inputs, before `project_kv`.
    project_kv: [B, c, C] -> (k [B, c, H, D], v [B, c, H, V]).
    v_head_channels: V.
    kv_chunk_size: at most this many keys per chunk (see `kv_chunking`).
    attention_mask: optional [B, T, S]; truthy entries may be attended.
    v_bias: optional [H * V], as `attend`'s.
    logit_bias: optional [T, S] or [B, T, S], as `attend`'s.

  Returns:
    [B, T, H * V], as `attend`, in q's dtype.
  """
  batch, q_len, num_heads, _ = q.shape
  kv_len = inputs_kv.shape[1]
  check_attention_mask(attention_mask, batch, q_len, kv_len)
  # Cast once, not per chunk.
  logit_bias = _logit_bias_for_logits(logit_bias, batch, q_len, kv_len)
  if kv_chunk_size <= 0:
    raise ValueError(f'kv_chunk_size must be positive; got {kv_chunk_size}.')
  size, count = kv_chunking(kv_len, kv_chunk_size)
  overlaps = count * size != kv_len
  scaled_q = q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype)

  def fold_kv_chunk(carry, index):
    # The last chunk is moved back to end at S; the keys it shares with
    # the chunk before are hidden (no padded copy of the inputs).
    start = jnp.minimum(index * size, kv_len - size)
    k, v = project_kv(
        jax.lax.dynamic_slice_in_dim(inputs_kv, start, size, axis=1))
    keep = None
    if attention_mask is not None:
      keep = jax.lax.dynamic_slice_in_dim(
          attention_mask, start, size, axis=2).astype(bool)[:, None]
    if overlaps:
      fresh = start + jnp.arange(size) >= index * size  # [c]
      keep = fresh if keep is None else keep & fresh
    bias = None
    if logit_bias is not None:
      bias = jax.lax.dynamic_slice_in_dim(logit_bias, start, size,
                                          axis=logit_bias.ndim - 1)
    return _fold(carry, scaled_q, k, v, keep, bias), None

  init = _initial_stats((scaled_q, inputs_kv, attention_mask), batch,
                        num_heads, q_len, v_head_channels)
  carry, _ = hk.scan(hk.remat(fold_kv_chunk), init, jnp.arange(count))
  return _merge_heads(_normalise(carry, q.dtype), attention_mask, v_bias)
