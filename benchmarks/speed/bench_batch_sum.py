r"""The sum over a leading batch axis, as XLA's reduce and as a matmul.

The gradient of a learned table broadcast over the batch (the latents, the
MLM's decoder queries) is such a sum. XLA:CPU's reduce over the leading
axis of a [B, T, C] array with large T * C is far slower than the same sum
as a [B] x [B, T * C] contraction; perceiver.kernels.broadcast_batch takes
the gradient that way under the fast kernels. This script times both (and
the gradient of both broadcasts) for the shapes of the small MLM:

  python benchmarks/speed/bench_batch_sum.py
  python benchmarks/speed/bench_batch_sum.py --shapes=8x512x256,8x128x384 \
      --repeats=20
"""
import os
import sys
import time
from typing import Sequence

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=wrong-import-position
from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from perceiver import kernels

_SHAPES = flags.DEFINE_list(
    'shapes', ['8x512x256', '8x128x384', '64x512x256'],
    'B x T x C arrays to sum over B.')
_REPEATS = flags.DEFINE_integer('repeats', 10, 'Timed calls (median).')


def _median_ms(fn, *args, repeats):
  jax.block_until_ready(fn(*args))  # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def measure(shape: Sequence[int], repeats: int = 10) -> dict[str, float]:
  """Milliseconds of each way of summing x [B, ...] over B, and of the
  gradient of a table broadcast over B; the largest difference between the
  sums' results."""
  batch = shape[0]
  x = jax.random.normal(jax.random.PRNGKey(0), shape, jnp.float32)
  table = x[0]
  reduce_sum = jax.jit(lambda x: jnp.sum(x, axis=0))
  matmul_sum = jax.jit(kernels.sum_batch)

  def grad_of(broadcast):
    return jax.jit(jax.grad(lambda t, x: jnp.vdot(broadcast(t), x)))
  reduce_grad = grad_of(
      lambda t: jnp.broadcast_to(t[None], (batch,) + t.shape))
  matmul_grad = grad_of(lambda t: kernels.broadcast_batch(t, batch))
  return {
      'reduce_ms': _median_ms(reduce_sum, x, repeats=repeats),
      'matmul_ms': _median_ms(matmul_sum, x, repeats=repeats),
      'reduce_grad_ms': _median_ms(reduce_grad, table, x, repeats=repeats),
      'matmul_grad_ms': _median_ms(matmul_grad, table, x, repeats=repeats),
      'max_abs_difference': float(jnp.max(jnp.abs(
          reduce_sum(x) - matmul_sum(x)))),
  }


def main(argv):
  del argv
  print(f'bench_batch_sum: jax {jax.__version__}, backend '
        f'{jax.default_backend()}; median of {_REPEATS.value} calls')
  print(f'{"B x T x C":>12} | reduce ms | matmul ms | reduce/matmul | '
        'grad of broadcast_to ms | grad of broadcast_batch ms | ratio | '
        'max |difference|')
  for text in _SHAPES.value:
    shape = tuple(int(n) for n in text.split('x'))
    r = measure(shape, _REPEATS.value)
    print(f'{text:>12} | {r["reduce_ms"]:9.2f} | {r["matmul_ms"]:9.2f} | '
          f'{r["reduce_ms"] / r["matmul_ms"]:12.1f}x | '
          f'{r["reduce_grad_ms"]:23.2f} | {r["matmul_grad_ms"]:26.2f} | '
          f'{r["reduce_grad_ms"] / r["matmul_grad_ms"]:4.1f}x | '
          f'{r["max_abs_difference"]:.2e}')


if __name__ == '__main__':
  app.run(main)
