r"""Speed and memory of the core Perceiver IO (a script, not a test).

Sections (--sections, comma-separated; default all):
  core       forward and train-step time, FLOPs and XLA memory for two
             reduced configs: a small ImageNet-like classifier and a small MLM.
  scale_m    a small Perceiver IO (D = 64, N = 64 latents, 2 self-attention
             layers, a BasicDecoder with 1D Fourier queries) as the number of
             inputs M grows 2^10 .. 2^16 at fixed O; fitted log-log slopes.
  scale_o    the same as the number of outputs O grows at fixed M.
  chunked    XLA memory of the chunked attention path (q/kv_chunk_size)
             against the unchunked one at the largest M and O.

Times: jitted, compiled ahead of time, `--warmup` calls, then the median of
`--repeats` calls, each ended by `block_until_ready`. The train step is
`value_and_grad` of the loss plus an optax SGD update, with the parameters
and optimiser state donated. Memory: `compiled.memory_analysis()`, the sizes
XLA plans for one call of the compiled program: arguments, outputs and
temporaries ('temp'); 'peak' = argument + output + temp - aliased (donated)
bytes, an upper bound on what one call holds live. On CPU
`jax.Device.memory_stats()` is None, so there is no measured peak.

  python benchmarks/speed/bench_core.py                # everything, ~5 min
  python benchmarks/speed/bench_core.py --sections=scale_m --max_log2=14
"""
import os
import statistics
import sys
import time
from typing import Any, Callable, Sequence

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.speed import cases as cases_lib
from perceiver import builders
from perceiver import perceiver
# pylint: enable=g-import-not-at-top,wrong-import-position

SECTIONS = ('core', 'scale_m', 'scale_o', 'chunked')

FLAGS = flags.FLAGS
flags.DEFINE_list('sections', list(SECTIONS), f'Any of {SECTIONS}.')
flags.DEFINE_integer('warmup', 1, 'Untimed calls after compilation.')
flags.DEFINE_integer('repeats', 5, 'Timed calls; the median is reported.')
flags.DEFINE_integer('core_batch', 8, 'Batch of the core section.')
flags.DEFINE_integer('scale_batch', 2, 'Batch of the scaling sections.')
flags.DEFINE_integer('min_log2', 10, 'Smallest M or O is 2^min_log2.')
flags.DEFINE_integer('max_log2', 16, 'Largest M or O is 2^max_log2.')
flags.DEFINE_integer('fixed_log2', 10, 'The fixed O (scale_m) or M (scale_o).')
flags.DEFINE_integer('chunked_batch', 1, 'Batch of the chunked section.')
flags.DEFINE_integer('chunked_repeats', 1,
                     'Timed calls in the chunked section (its dense N=512 '
                     'train step takes seconds; memory is its point).')
flags.DEFINE_integer('chunk', 2048, 'q/kv chunk size of the chunked section.')

MiB = 2.0 ** 20

#  ------------------------------------------------------------
#  -------------------------  Timing  -------------------------
#  ------------------------------------------------------------


def _times(call: Callable[[], Any], warmup: int,
           repeats: int) -> tuple[float, float]:
  """(median, min) seconds of `repeats` calls after `warmup` calls."""
  for _ in range(warmup):
    jax.block_until_ready(call())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - start)
  return statistics.median(times), min(times)


def _memory(compiled) -> dict[str, float]:
  """XLA's planned bytes for one call, in MiB."""
  stats = compiled.memory_analysis()
  arg = stats.argument_size_in_bytes
  out = stats.output_size_in_bytes
  temp = stats.temp_size_in_bytes
  alias = stats.alias_size_in_bytes
  return {'arg': arg / MiB, 'out': out / MiB, 'temp': temp / MiB,
          'peak': (arg + out + temp - alias) / MiB}


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get('flops', float('nan')))


def benchmark(transformed: hk.Transformed, inputs: Sequence[Any],
              loss_fn: Callable[[Any, Any], jax.Array], targets: Any, *,
              repeats: int = 0) -> dict[str, Any]:
  """Forward and SGD train-step time, FLOPs and memory of one model.

  Args:
    transformed: hk.transform(forward(*inputs, is_training)).
    inputs: the forward's array inputs (the batch).
    loss_fn: (outputs, targets) -> scalar.
    targets: the loss's targets.
    repeats: timed calls (0: --repeats).
  """
  params = transformed.init(jax.random.PRNGKey(0), *inputs, is_training=True)
  optimiser = optax.sgd(1e-3)
  opt_state = optimiser.init(params)

  def forward(p, *a):
    return transformed.apply(p, None, *a, is_training=False)

  def train_step(p, o, t, *a):
    def loss(p):
      return loss_fn(transformed.apply(p, None, *a, is_training=True), t)
    value, grads = jax.value_and_grad(loss)(p)
    updates, o = optimiser.update(grads, o, p)
    return optax.apply_updates(p, updates), o, value

  start = time.perf_counter()
  fwd = jax.jit(forward).lower(params, *inputs).compile()
  step = jax.jit(train_step, donate_argnums=(0, 1)).lower(
      params, opt_state, targets, *inputs).compile()
  result = {'params': sum(x.size for x in jax.tree.leaves(params)),
            'compile_s': time.perf_counter() - start,
            'fwd_flops': _flops(fwd), 'step_flops': _flops(step),
            'fwd_mem': _memory(fwd), 'step_mem': _memory(step),
            }
  repeats = repeats or FLAGS.repeats
  result['fwd_s'], result['fwd_min_s'] = _times(
      lambda: fwd(params, *inputs), FLAGS.warmup, repeats)
  state = [params, opt_state]

  def one_step():
    state[0], state[1], value = step(state[0], state[1], targets, *inputs)
    return value

  result['step_s'], result['step_min_s'] = _times(one_step, FLAGS.warmup,
                                                  repeats)
  return result


#  ------------------------------------------------------------
#  ----------------------  Core configs  ----------------------
#  ------------------------------------------------------------


def small_classifier(batch: int):
  """ImageNet-like: 64x64 RGB + 2D Fourier (32 bands), M = 4096, C = 133;
  N = 128, D = 256, 2 blocks x 2 shared self-attention layers; 100 classes."""
  forward = builders.image_classifier(**cases_lib.SMALL_CLASSIFIER)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.normal(size=(batch, 64, 64, 3)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 100, size=(batch,)))

  def loss(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, labels).mean()

  return hk.transform(forward), (images,), loss, labels


def small_mlm(batch: int):
  """Bytes MLM: T = M = O = 512, d_model 256; N = 128, D = 384, 4 layers,
  8 heads, qk 128; decoder 8 heads, qk 128, v 256; tied logits."""
  seq = cases_lib.SMALL_MLM_SEQ
  forward = builders.mlm(**cases_lib.SMALL_MLM)
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(6, 262, size=(batch, seq)), jnp.int32)
  mask = jnp.ones((batch, seq), jnp.int32)

  def loss(logits, targets):
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, targets).mean()

  return hk.transform(forward), (tokens, mask), loss, tokens


def run_core():
  batch = FLAGS.core_batch
  print(f'\n## core: reduced configs, batch {batch}, float32')
  header = ('config', 'params', 'compile s', 'fwd ms', 'step ms', 'fwd GFLOP',
            'fwd GFLOP/s', 'step GFLOP', 'fwd temp MiB', 'fwd peak MiB',
            'step temp MiB', 'step peak MiB')
  rows = []
  for name, make in (('imagenet-small 64x64', small_classifier),
                     ('mlm-small T=512', small_mlm)):
    transformed, inputs, loss, targets = make(batch)
    r = benchmark(transformed, inputs, loss, targets)
    rows.append((name, f'{r["params"] / 1e6:.2f}M', f'{r["compile_s"]:.1f}',
                 f'{1e3 * r["fwd_s"]:.1f}',
                 f'{1e3 * r["step_s"]:.1f}', f'{r["fwd_flops"] / 1e9:.2f}',
                 f'{r["fwd_flops"] / 1e9 / r["fwd_s"]:.1f}',
                 f'{r["step_flops"] / 1e9:.2f}',
                 f'{r["fwd_mem"]["temp"]:.1f}', f'{r["fwd_mem"]["peak"]:.1f}',
                 f'{r["step_mem"]["temp"]:.1f}',
                 f'{r["step_mem"]["peak"]:.1f}'))
  print(_table(header, rows))


#  ------------------------------------------------------------
#  -------------------  Scaling in M and O  -------------------
#  ------------------------------------------------------------

SCALE_D = 64  # Latent and input channels.
SCALE_N = 64  # Latents.
QUERY_BANDS = 16  # 1D Fourier queries: 2 * 16 + 1 = 33 channels.


def small_perceiver_io(num_inputs: int, num_outputs: int, batch: int, *,
                       latents: int = SCALE_N, chunk: int = 0):
  """Inputs [B, M, 64] -> outputs [B, O, 1]; MSE against zeros.

  D = 64, `latents` latents, 2 self-attention layers (4 heads), 1-head
  cross-attentions, a BasicDecoder with 1D Fourier queries. chunk > 0 uses
  the chunked attention with q_chunk_size = kv_chunk_size = chunk.
  """
  chunks = dict(q_chunk_size=chunk or None, kv_chunk_size=chunk or None)

  def forward(x, *, is_training):
    encoder = perceiver.PerceiverEncoder(
        num_self_attends_per_block=2, num_blocks=1, z_index_dim=latents,
        num_z_channels=SCALE_D, num_cross_attend_heads=1,
        num_self_attend_heads=4, cross_attend_widening_factor=1,
        self_attend_widening_factor=1, **chunks)
    decoder = perceiver.BasicDecoder(
        output_num_channels=1, output_index_dims=(num_outputs,),
        num_z_channels=SCALE_D, position_encoding_type='fourier',
        fourier_position_encoding_kwargs=dict(
            num_bands=QUERY_BANDS, max_resolution=(num_outputs,),
            concat_pos=True, sine_only=False), **chunks)
    return perceiver.Perceiver(encoder=encoder, decoder=decoder)(
        x, is_training=is_training)

  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(batch, num_inputs, SCALE_D)), jnp.float32)
  targets = jnp.zeros((batch, num_outputs, 1), jnp.float32)

  def loss(out, t):
    return jnp.mean(jnp.square(out - t))

  return hk.transform(forward), (x,), loss, targets


def _slope(xs, ys) -> float:
  """Least-squares slope of log2(y) against log2(x)."""
  return float(np.polyfit(np.log2(xs), np.log2(ys), 1)[0])


def run_scaling(axis: str):
  batch, fixed = FLAGS.scale_batch, 2 ** FLAGS.fixed_log2
  sizes = [2 ** k for k in range(FLAGS.min_log2, FLAGS.max_log2 + 1)]
  other = 'O' if axis == 'M' else 'M'
  print(f'\n## scale_{axis.lower()}: D={SCALE_D}, N={SCALE_N}, 2 self-attention'
        f' layers, Fourier queries; {other} = {fixed}, batch {batch}')
  header = (axis, 'fwd ms', 'step ms', 'fwd GFLOP', 'fwd temp MiB',
            'step temp MiB', 'step peak MiB')
  rows, results = [], []
  for size in sizes:
    m, o = (size, fixed) if axis == 'M' else (fixed, size)
    r = benchmark(*small_perceiver_io(m, o, batch))
    results.append(r)
    rows.append((str(size), f'{1e3 * r["fwd_s"]:.2f}',
                 f'{1e3 * r["step_s"]:.2f}', f'{r["fwd_flops"] / 1e9:.3f}',
                 f'{r["fwd_mem"]["temp"]:.2f}', f'{r["step_mem"]["temp"]:.2f}',
                 f'{r["step_mem"]["peak"]:.2f}'))
  print(_table(header, rows))
  series = {
      'fwd time': [r['fwd_s'] for r in results],
      'fwd time (min)': [r['fwd_min_s'] for r in results],
      'step time': [r['step_s'] for r in results],
      'step time (min)': [r['step_min_s'] for r in results],
      'fwd FLOPs': [r['fwd_flops'] for r in results],
      'fwd temp mem': [r['fwd_mem']['temp'] for r in results],
      'step temp mem': [r['step_mem']['temp'] for r in results],
      'step peak mem': [r['step_mem']['peak'] for r in results],
  }
  top = max(2, len(sizes) // 2)
  print(f'log-log slope vs {axis} (1 = linear): all {len(sizes)} points | '
        f'largest {top} points')
  for name, ys in series.items():
    print(f'  {name:15s} {_slope(sizes, ys):5.2f} | '
          f'{_slope(sizes[-top:], ys[-top:]):5.2f}')


def run_chunked():
  batch, fixed = FLAGS.chunked_batch, 2 ** FLAGS.fixed_log2
  repeats = FLAGS.chunked_repeats
  big, chunk = 2 ** FLAGS.max_log2, FLAGS.chunk
  print(f'\n## chunked: XLA memory, unchunked vs q_chunk_size = kv_chunk_size'
        f' = {chunk}; D={SCALE_D}, batch {batch}, median of {repeats}')
  header = ('case', 'attention', 'fwd ms', 'step ms', 'fwd temp MiB',
            'step temp MiB', 'step peak MiB')
  rows = []
  cases = ((f'M={big}, O={fixed}, N={SCALE_N}', big, fixed, SCALE_N),
           (f'M={fixed}, O={big}, N={SCALE_N}', fixed, big, SCALE_N),
           (f'M={big}, O={fixed}, N=512', big, fixed, 512))
  for label, m, o, n in cases:
    fwd_temps, temps = [], []
    for c in (0, chunk):
      r = benchmark(*small_perceiver_io(m, o, batch, latents=n, chunk=c),
                    repeats=repeats)
      fwd_temps.append(r['fwd_mem']['temp'])
      temps.append(r['step_mem']['temp'])
      rows.append((label, f'chunk {c}' if c else 'dense',
                   f'{1e3 * r["fwd_s"]:.1f}', f'{1e3 * r["step_s"]:.1f}',
                   f'{r["fwd_mem"]["temp"]:.2f}',
                   f'{r["step_mem"]["temp"]:.2f}',
                   f'{r["step_mem"]["peak"]:.2f}'))
    rows.append(('', 'dense / chunked', '', '',
                 f'{fwd_temps[0] / fwd_temps[1]:.2f}x',
                 f'{temps[0] / temps[1]:.2f}x', ''))
  print(_table(header, rows))


#  ------------------------------------------------------------
#  ------------------------  Output  --------------------------
#  ------------------------------------------------------------


_table = cases_lib.table


def _load() -> str:
  """1/5/15-minute load averages: other processes skew the timings."""
  return '/'.join(f'{x:.1f}' for x in os.getloadavg())


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.sections) - set(SECTIONS))
  if unknown:
    raise app.UsageError(f'Unknown sections {unknown}; choose from {SECTIONS}.')
  start = time.perf_counter()
  print(f'bench_core: jax {jax.__version__}, backend '
        f'{jax.default_backend()}, {len(jax.devices())} device(s), '
        f'{os.cpu_count()} CPU cores; warmup {FLAGS.warmup}, median of '
        f'{FLAGS.repeats}; load average {_load()}')
  for section in SECTIONS:
    if section not in FLAGS.sections:
      continue
    if section == 'core':
      run_core()
    elif section in ('scale_m', 'scale_o'):
      run_scaling(section[-1].upper())
    else:
      run_chunked()
    print(f'[{time.perf_counter() - start:.0f}s so far; load average '
          f'{_load()}]', flush=True)


if __name__ == '__main__':
  app.run(main)
