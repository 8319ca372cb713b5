"""bfloat16 mixed precision for the Perceiver modules (Haiku + jmp policies).

Parameters stay float32; matmuls run in bfloat16; the model's outputs are
float32. Numerically sensitive parts stay in float32 whatever the policy:
attention logits and softmax (perceiver.attention computes them in float32),
LayerNorm and BatchNorm (given a float32 policy here; `perceiver.layer_norm`
also upcasts its input).

  with mixed_precision.bf16_policy():
    logits, state = model.apply(params, state, rng, images, is_training=True)

The policy is read when a module is called, so the `with` must surround the
`apply` (or the jitted function's first trace).
"""
import contextlib

import haiku as hk
import jax.numpy as jnp
import jmp

from perceiver import io_processors
from perceiver import kernels
from perceiver import perceiver
from perceiver import position_encoding


@contextlib.contextmanager
def bf16_policy(compute_dtype=jnp.bfloat16):
  """Scopes a mixed-precision policy over the Perceiver modules."""
  f32 = jnp.float32
  top = jmp.Policy(param_dtype=f32, compute_dtype=compute_dtype,
                   output_dtype=f32)
  inner = jmp.Policy(param_dtype=f32, compute_dtype=compute_dtype,
                     output_dtype=compute_dtype)
  full = jmp.Policy(param_dtype=f32, compute_dtype=f32, output_dtype=f32)
  norm_to_stream = jmp.Policy(param_dtype=f32, compute_dtype=f32,
                              output_dtype=compute_dtype)
  policies = [
      (perceiver.Perceiver, top),
      (io_processors.EmbeddingDecoder, top),
      (hk.Embed, inner),
      (position_encoding.TrainablePositionEncoding, inner),
      (hk.LayerNorm, full),
      (kernels.LayerNorm, full),
      (hk.BatchNorm, norm_to_stream),
  ]
  with contextlib.ExitStack() as stack:
    for cls, policy in policies:
      stack.enter_context(hk.mixed_precision.push_policy(cls, policy))
    yield


@contextlib.contextmanager
def trace_scope(compute_dtype: str = 'float32', fast_kernels: bool = False):
  """Everything to hold while a model is traced: the bf16 policy when
  compute_dtype is 'bfloat16', and perceiver.kernels' fast kernels."""
  if compute_dtype not in ('float32', 'bfloat16'):
    raise ValueError(f"compute_dtype={compute_dtype!r}; use 'float32' or "
                     "'bfloat16'.")
  with kernels.fast_kernels(fast_kernels):
    if compute_dtype == 'bfloat16':
      with bf16_policy():
        yield
    else:
      yield
