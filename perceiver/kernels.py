"""Fast kernels: the release's functions computed with less work.

Glossary of shapes: B batch, T query positions, S key positions, H heads,
D key channels per head, V value channels per head, C channels.

Inside `with fast_kernels():`, while a model is traced, eight pieces of the
release's computation graph are replaced by cheaper equivalents. Each
computes the same mathematical function; results agree with the release to
float rounding (tests/test_kernels.py), and the parameter tree is unchanged:

  * dense attention (`perceiver.attention.attend`, no dropout): the
    1/sqrt(D) scale is applied to the [T, D] queries rather than the
    [T, S] logits, and the softmax is normalised after the weighted sum,
    on [T, V] rather than on [T, S] (one pass over the [T, S] array
    fewer, forward and backward);
  * LayerNorm (`perceiver.layer_norm`): one module with a hand-written
    backward that keeps the normalised input and the reciprocal standard
    deviation, instead of XLA's differentiation of the mean/variance
    graph;
  * Fourier position features on the default grid
    (`position_encoding.FourierPositionEncoding`, no `pos`): computed once
    for the grid and broadcast over the batch, instead of once per example
    (bit-identical);
  * the key and value projections (`perceiver.Attention`, no attention
    dropout; `KeyValueLinear`): the key bias, which cannot change a
    softmax, is not applied, and the value bias is added once to the
    [T, H * V] output rather than to the [S, H * V] values;
  * single-head attention where it costs less (`factored_attention_pays`;
    e.g. the image, video and flow encoders' cross-attention onto their
    latents): the key and value projections are moved to the
    [T]-sized side, softmax((q W_k^T) x^T) x W_v, so no [S, D] keys or
    [S, V] values are computed (`perceiver.attention.attend_factored`);
  * the concatenation of inputs with position features
    (`concat_channels`): one fused pad-and-add instead of a materialised
    batch broadcast followed by a concatenation;
  * the batch broadcast of a learned table
    (`position_encoding.TrainablePositionEncoding`): its gradient, a sum
    over the batch, is taken with a matmul against ones instead of XLA's
    reduce over the leading axis, which XLA:CPU runs 20 to 50 times slower
    (benchmarks/speed/bench_batch_sum.py);
  * in bfloat16 only (perceiver.mixed_precision), the position-wise linear
    layers (`perceiver.conv_1d`, `KeyValueLinear`, the decoders' output
    layer) and the tied output embedding
    (`io_processors.EmbeddingDecoder`): the product is
    accumulated and returned in float32 and rounded to bfloat16 once,
    after the bias (`matmul`, `Linear`), the form XLA:CPU runs on AMX; in
    float32 they compute the release's graph.

Outside the scope (the default) every module runs the release's graph, so
the golden tests and `config_lib.release_exact` are untouched. The trainer
holds the scope for `config.fast_kernels` (perceiver/train/trainer.py);
benchmarks/speed/bench_paths.py measures it.

The scope is read at trace time, like Haiku's mixed-precision policies: a
function jitted inside it keeps the fast kernels.
"""
import contextlib
import contextvars
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

_FAST = contextvars.ContextVar('perceiver_fast_kernels', default=False)


@contextlib.contextmanager
def fast_kernels(enabled: bool = True):
  """Traces the Perceiver modules with the fast kernels (or, with
  enabled=False, the release's graph) for the duration of the block."""
  token = _FAST.set(bool(enabled))
  try:
    yield
  finally:
    _FAST.reset(token)


def enabled() -> bool:
  """Whether a `fast_kernels()` scope is active."""
  return _FAST.get()


# ---------------------------------------------------------------------------
# LayerNorm.
# ---------------------------------------------------------------------------

# hk.LayerNorm's default epsilon, which the release uses.
LAYER_NORM_EPS = 1e-5


@jax.custom_vjp
def _layer_norm(x, scale, offset):
  """LayerNorm over the last axis of x [..., C] with [C] scale and offset."""
  return _layer_norm_fwd(x, scale, offset)[0]


def _layer_norm_fwd(x, scale, offset):
  mean = jnp.mean(x, axis=-1, keepdims=True)
  centred = x - mean
  rstd = jax.lax.rsqrt(
      jnp.mean(centred * centred, axis=-1, keepdims=True) + LAYER_NORM_EPS)
  normed = centred * rstd
  return normed * scale + offset, (normed, rstd, scale)


def _layer_norm_bwd(residuals, dy):
  normed, rstd, scale = residuals
  dnormed = dy * scale
  dx = rstd * (dnormed - jnp.mean(dnormed, axis=-1, keepdims=True)
               - normed * jnp.mean(dnormed * normed, axis=-1, keepdims=True))
  batch_axes = tuple(range(dy.ndim - 1))
  return dx, jnp.sum(dy * normed, axis=batch_axes), jnp.sum(dy, axis=batch_axes)


_layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


class LayerNorm(hk.Module):
  """hk.LayerNorm(axis=-1, create_scale=True, create_offset=True) on
  float32 inputs, with the same module name ('layer_norm') and parameters
  ('scale' ones, 'offset' zeros, [C])."""

  def __call__(self, x):
    channels = x.shape[-1]
    scale = hk.get_parameter('scale', [channels], jnp.float32, init=jnp.ones)
    offset = hk.get_parameter('offset', [channels], jnp.float32,
                              init=jnp.zeros)
    return _layer_norm(x, scale, offset)


# ---------------------------------------------------------------------------
# Dense attention.
# ---------------------------------------------------------------------------


def attend_dense(q, k, v, attention_mask, mask_value, logit_bias=None):
  """softmax(Q K^T / sqrt(D) + bias) V per head: q [B, T, H, D], k [B, S, H,
  D], v [B, S, H, V], optional mask [B, T, S] and float32 logit bias
  [T, S] or [B, 1, T, S] -> [B, T, H, V] in v's dtype.

  Logits, softmax statistics and the weighted sum are accumulated in
  float32 whatever the input dtype.
  """
  q = q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype)
  # Logits laid out [B, H, S, T], keys first: 1.02x to 1.03x on the
  # 512-byte MLM's CPU train step against [B, H, T, S] (no change on the
  # classifier's); benchmarks/README.md.
  logits = jnp.einsum('bshd,bthd->bhst', k, q,
                      preferred_element_type=jnp.float32)
  if logit_bias is not None:
    logits = logits + jnp.swapaxes(logit_bias, -1, -2).astype(jnp.float32)
  if attention_mask is not None:
    logits = jnp.where(jnp.swapaxes(attention_mask, 1, 2)[:, None], logits,
                       mask_value)
  # The max only keeps exp() in range; it needs no gradient.
  query_max = jax.lax.stop_gradient(jnp.max(logits, axis=2, keepdims=True))
  unnormalised = jnp.exp(logits - query_max)  # [B, H, S, T]
  total = jnp.sum(unnormalised, axis=2)  # [B, H, T]
  out = jnp.einsum('bhst,bshv->bthv', unnormalised.astype(v.dtype), v,
                   preferred_element_type=jnp.float32)
  return (out / jnp.moveaxis(total, 1, 2)[..., None]).astype(v.dtype)


def factored_attention_pays(kv_len: int, q_len: int, kv_channels: int,
                            qk_channels: int, v_channels: int) -> bool:
  """Whether single-head attention costs fewer multiply-adds factored
  (`attention.attend_factored`: 2 S T C on the S side, plus T C (D + V) to
  move the projections to the queries and the output) than projected
  (S C (D + V) for the keys and values, S T (D + V) for the logits and the
  weighted sum). E.g. the ImageNet encoder (T = 512 latents, C = D = V =
  261): 2 x 512 x 261 per key against 2 x 261 x 773, 0.66x; a decoder with
  many more queries than channels stays projected."""
  width = qk_channels + v_channels
  factored = 2 * kv_len * q_len * kv_channels + q_len * kv_channels * width
  projected = kv_len * (kv_channels + q_len) * width
  return factored < projected


# ---------------------------------------------------------------------------
# Position-wise linear layers.
# ---------------------------------------------------------------------------


def matmul(x, w, bias=None):
  """x @ w (+ bias). In bfloat16 (perceiver.mixed_precision) XLA
  accumulates and returns the product in float32, the bias is added, and
  the sum is rounded to bfloat16 once: on CPUs with AMX, XLA:CPU runs only
  that form on the bfloat16 matrix units, and a bfloat16-out product on a
  generic path about 6x slower (benchmarks/README.md, Peer benchmark). In
  float32 it is jnp.dot, then the bias (the same HLO)."""
  out = jnp.dot(x, w, preferred_element_type=jnp.float32)
  if bias is not None:
    out = out + bias
  return out.astype(x.dtype)


class Linear(hk.Linear):
  """hk.Linear (same module name, parameters and initialisation) computed
  with `matmul`."""

  def __call__(self, inputs, *, precision=None):
    del precision  # hk.Linear's argument; the Perceiver modules never set it
    self.input_size = inputs.shape[-1]
    w_init = self.w_init or hk.initializers.TruncatedNormal(
        stddev=1. / np.sqrt(self.input_size))
    w = hk.get_parameter('w', [self.input_size, self.output_size],
                         inputs.dtype, init=w_init)
    b = None
    if self.with_bias:
      b = hk.get_parameter('b', [self.output_size], inputs.dtype,
                           init=self.b_init)
    return matmul(inputs, w, b)


def linear(*args, **kwargs) -> hk.Linear:
  """An hk.Linear, made as `Linear` inside the fast-kernels scope."""
  return (Linear if enabled() else hk.Linear)(*args, **kwargs)


# ---------------------------------------------------------------------------
# Key and value projections with their biases deferred.
# ---------------------------------------------------------------------------


class KeyValueLinear(hk.Module):
  """hk.Linear's parameters ('w' [C, O], drawn by `w_init`, then 'b'
  zeros [O]) for a key or value projection: it returns x @ w and leaves
  the bias to the attention. Give it name='linear': Haiku then numbers it
  with the hk.Linear modules around it ('linear_1', ...), as the release's
  projection is named.

  Without attention dropout, softmax weights are invariant to a constant
  added to a query's logits and sum to one over the keys, so:
    * the key bias b_k adds q . b_k to all of a query's logits: it changes
      nothing and is not applied (its gradient is zero, as it is
      mathematically in the release's graph);
    * the value bias comes out of the weighted sum unchanged: it is added to
      the [T, H * V] attention output (`bias()`, fused by XLA with the
      softmax's normalisation) instead of to the [S, H * V] values.
  This saves a broadcast and an add over every S-sized key and value array
  and the sums over S of their biases' gradients.
  """

  def __init__(self, output_size: int, w_init, name=None):
    super().__init__(name=name)
    self._output_size = output_size
    self._w_init = w_init

  def __call__(self, x):
    return matmul(x, self.weight(x.shape[-1], x.dtype))

  def weight(self, input_size: int, dtype=jnp.float32):
    """'w' [input_size, O] (made with 'b', as hk.Linear makes them)."""
    w = hk.get_parameter('w', [input_size, self._output_size], dtype,
                         init=self._w_init)
    self.bias(dtype)
    return w

  def bias(self, dtype=jnp.float32):
    return hk.get_parameter('b', [self._output_size], dtype, init=jnp.zeros)


# ---------------------------------------------------------------------------
# Batch broadcast.
# ---------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def broadcast_batch(x, batch_size: int):
  """x [...] -> [batch_size, ...], every example a copy of x."""
  return jnp.broadcast_to(x[None], (batch_size,) + x.shape)


def _broadcast_batch_fwd(x, batch_size):
  return broadcast_batch(x, batch_size), None


def sum_batch(x):
  """x [B, ...] summed over B as a [B] x [B, ...] contraction, accumulated
  in float32 at full precision (on TPU a default-precision float32 matmul
  would round to bfloat16); in x's dtype."""
  ones = jnp.ones((x.shape[0],), x.dtype)
  total = jnp.tensordot(ones, x, axes=(0, 0),
                        precision=jax.lax.Precision.HIGHEST,
                        preferred_element_type=jnp.float32)
  return total.astype(x.dtype)


def _broadcast_batch_bwd(batch_size, _, dy):
  del batch_size  # dy's leading axis
  return (sum_batch(dy),)


broadcast_batch.defvjp(_broadcast_batch_fwd, _broadcast_batch_bwd)


# ---------------------------------------------------------------------------
# Channel concatenation.
# ---------------------------------------------------------------------------


def concat_channels(x, y):
  """jnp.concatenate([x, y], axis=-1) for x [..., Cx] and y [..., Cy] as
  pad(x) + pad(y): XLA:CPU fuses the pads, the add and a broadcast
  producing y (position features broadcast over the batch) into one loop,
  where the concatenation would first materialise the broadcast. The
  values are the concatenation's (adding 0 is exact; a -0.0 becomes 0.0).
  """
  if x.shape[:-1] != y.shape[:-1]:
    raise ValueError(f'concat_channels: leading shapes differ: {x.shape} and '
                     f'{y.shape}.')
  keep = [(0, 0)] * (x.ndim - 1)
  y = y.astype(x.dtype)
  return (jnp.pad(x, keep + [(0, y.shape[-1])])
          + jnp.pad(y, keep + [(x.shape[-1], 0)]))
