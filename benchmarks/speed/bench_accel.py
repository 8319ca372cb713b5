r"""Training throughput on an accelerator (a script, not a test).

Shapes: B per-device batch.

For each case (benchmarks/speed/cases.py; default the full-size MLM on bytes and
ImageNet with Fourier features, as their experiments train them: the fast
path, bfloat16 compute), on one device:
  * steps/s and examples/s of the jitted train step (parameters, state and
    optimiser state donated), timed over --steps calls after --warmup;
  * model FLOPs utilisation: the step's FLOPs / time / the device's peak
    bfloat16 rate. The FLOPs are XLA's cost analysis of the *release-exact*
    step (`compiled`-free: the lowered program), because the fast path's
    loops (`hk.layer_stack`, chunked attention) are counted once by the cost
    analysis and its remat recomputation is not model work. The peak comes
    from PEAK_BF16_TFLOPS by `device_kind`, or --peak_tflops;
  * peak device memory (`device.memory_stats()['peak_bytes_in_use']`, where
    the backend reports it) and XLA's planned peak of the step.

The paper's reference: MLM bytes trains at 7.6 steps/s at batch 2048 ([P]
Table 11; hardware unstated), i.e. ~15.6k examples/s in all.

  python benchmarks/speed/bench_accel.py                # full size
  python benchmarks/speed/bench_accel.py --tiny         # CPU smoke run
  python benchmarks/speed/bench_accel.py --cases=mlm_bytes --batch=64 \
      --steps=20
"""
import json
import os
import sys
import time
from typing import Any, Optional, Sequence

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax

from benchmarks.speed import cases as cases_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

DEFAULT_CASES = ('mlm_bytes', 'imagenet_fourier')
# Per-device batch when --batch is 0: fits 16 GiB on the fast path in
# bfloat16 (bench_paths' float32 search fits 21 / 24 there).
DEFAULT_BATCH = {'mlm_bytes': 32, 'imagenet_fourier': 32}
TINY_BATCH = 2

# Dense bfloat16 peak of one device (a chip; a TPU v2/v3 chip has 2 cores,
# each its own JAX device), TFLOP/s, from the vendors' datasheets. Matched
# against jax.Device.device_kind by substring, first match wins.
PEAK_BF16_TFLOPS = (
    ('TPU v2', 45.0 / 2),
    ('TPU v3', 123.0 / 2),
    ('TPU v4', 275.0),
    ('TPU v5 lite', 197.0),
    ('TPU v5e', 197.0),
    ('TPU v5p', 459.0),
    ('TPU v5', 459.0),
    ('TPU v6 lite', 918.0),
    ('TPU v6e', 918.0),
    ('H200', 989.0),
    ('H100 PCIe', 756.0),
    ('H100', 989.0),
    ('A100', 312.0),
    ('L40S', 362.0),
    ('L4', 121.0),
    ('A10G', 70.0),
    ('V100', 125.0),  # float16 tensor cores; no bfloat16
)

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line (only when run as a script: the module's functions
  take plain arguments, so tests can import it)."""
  flags.DEFINE_list('cases', list(DEFAULT_CASES),
                    'Cases of benchmarks/speed/cases.py.')
  flags.DEFINE_integer('batch', 0, 'Per-device batch (0: DEFAULT_BATCH, or 2 '
                       'with --tiny).')
  flags.DEFINE_integer('steps', 10, 'Timed steps.')
  flags.DEFINE_integer('warmup', 2, 'Untimed steps after compilation.')
  flags.DEFINE_float('peak_tflops', 0.0, 'Peak bf16 TFLOP/s of the device '
                     '(0: from PEAK_BF16_TFLOPS by device kind).')
  flags.DEFINE_enum('compute_dtype', 'bfloat16', ['bfloat16', 'float32'],
                    'Compute dtype of the fast path.')
  flags.DEFINE_bool('tiny', False, 'The smoke-size models (a CPU check).')
  flags.DEFINE_string('json_out', '', 'Also write the results here.')


def peak_tflops(device: jax.Device, override: float = 0.0) -> Optional[float]:
  """The device's peak bf16 TFLOP/s: `override` if given, else the table."""
  if override > 0:
    return override
  kind = getattr(device, 'device_kind', '')
  for name, tflops in PEAK_BF16_TFLOPS:
    if name.lower() in kind.lower():
      return tflops
  return None


def step_flops(name: str, batch: int, tiny: bool) -> float:
  """FLOPs of one train step: XLA's cost analysis of the release-exact step
  (lowered, not compiled; no loops, no remat)."""
  cost = cases_lib.lower(cases_lib.get(name, 'exact', batch, tiny=tiny)
                         ).cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost['flops'])


def measure(name: str, *, batch: int, steps: int, warmup: int, tiny: bool,
            compute_dtype: str = 'bfloat16', peak: float = 0.0,
            device: Optional[jax.Device] = None) -> dict[str, Any]:
  """Throughput, MFU and memory of one case's fast-path train step."""
  device = device or jax.devices()[0]
  case = cases_lib.get(name, 'fast', batch, tiny=tiny,
                       compute_dtype=compute_dtype)
  start = time.perf_counter()
  with jax.default_device(device):
    compiled = cases_lib.lower(case).compile()
    compile_s = time.perf_counter() - start
    params, state, opt_state = jax.jit(cases_lib.init_fn(case))(
        jax.random.PRNGKey(0))
    batch_arrays = jax.device_put(cases_lib.sample_batch(case), device)
    rng = jax.random.PRNGKey(1)
    for _ in range(warmup):
      params, state, opt_state, loss = compiled(params, state, opt_state,
                                                batch_arrays, rng)
    jax.block_until_ready(loss if warmup else params)
    start = time.perf_counter()
    for _ in range(steps):
      params, state, opt_state, loss = compiled(params, state, opt_state,
                                                batch_arrays, rng)
    loss = float(jax.block_until_ready(loss))
    seconds = time.perf_counter() - start
  flops = step_flops(name, batch, tiny)
  steps_per_s = steps / seconds
  peak_rate = peak_tflops(device, peak)
  stats = device.memory_stats() or {}
  result = {
      'case': name, 'device': getattr(device, 'device_kind', str(device)),
      'platform': device.platform, 'batch': batch, 'steps': steps,
      'compute_dtype': case.compute_dtype, 'fast_path': case.switches,
      'compile_s': compile_s, 'seconds': seconds, 'final_loss': loss,
      'steps_per_s': steps_per_s, 'examples_per_s': steps_per_s * batch,
      'step_tflop': flops / 1e12,
      'achieved_tflops': flops * steps_per_s / 1e12,
      'peak_tflops': peak_rate,
      'mfu': (flops * steps_per_s / (peak_rate * 1e12)) if peak_rate else None,
      'device_peak_gib': (stats['peak_bytes_in_use'] / 2 ** 30
                          if 'peak_bytes_in_use' in stats else None),
      'planned_peak_gib': cases_lib.planned_bytes(compiled)['peak'] / 2 ** 30,
  }
  return result


def format_results(results: Sequence[dict[str, Any]]) -> str:
  header = ('case', 'device', 'B', 'dtype', 'steps/s', 'examples/s',
            'TFLOP/step', 'TFLOP/s', 'peak TFLOP/s', 'MFU',
            'device peak GiB', 'XLA plan GiB', 'compile s')
  rows = []
  fmt = lambda x, f: '-' if x is None else format(x, f)
  for r in results:
    rows.append((r['case'], r['device'], str(r['batch']), r['compute_dtype'],
                 f'{r["steps_per_s"]:.3g}', f'{r["examples_per_s"]:.4g}',
                 f'{r["step_tflop"]:.4g}', f'{r["achieved_tflops"]:.3g}',
                 fmt(r['peak_tflops'], 'g'), fmt(r['mfu'], '.1%'),
                 fmt(r['device_peak_gib'], '.2f'),
                 f'{r["planned_peak_gib"]:.2f}', f'{r["compile_s"]:.1f}'))
  widths = [max(len(x[i]) for x in rows + [header]) for i in range(len(header))]
  lines = [' | '.join(h.rjust(w) for h, w in zip(header, widths)),
           '-+-'.join('-' * w for w in widths)]
  lines += [' | '.join(c.rjust(w) for c, w in zip(row, widths))
            for row in rows]
  return '\n'.join(lines)


def run(case_names: Sequence[str], *, batch: int = 0, steps: int = 10,
        warmup: int = 2, tiny: bool = False, compute_dtype: str = 'bfloat16',
        peak: float = 0.0) -> list[dict[str, Any]]:
  """measure() for every case; batch 0 picks the default of each."""
  unknown = sorted(set(case_names) - set(cases_lib.CASES))
  if unknown:
    raise ValueError(f'Unknown cases {unknown}; known: '
                     f'{sorted(cases_lib.CASES)}.')
  results = []
  for name in case_names:
    b = batch or (TINY_BATCH if tiny else DEFAULT_BATCH.get(name, 8))
    results.append(measure(name, batch=b, steps=steps, warmup=warmup,
                           tiny=tiny, compute_dtype=compute_dtype, peak=peak))
  return results


def main(argv):
  del argv
  device = jax.devices()[0]
  print(f'bench_accel: jax {jax.__version__}, {device.platform} '
        f'{getattr(device, "device_kind", "")}, {jax.device_count()} '
        f'device(s) (one is used); load average '
        f'{"/".join(f"{x:.1f}" for x in os.getloadavg())}', flush=True)
  results = run(FLAGS.cases, batch=FLAGS.batch, steps=FLAGS.steps,
                warmup=FLAGS.warmup, tiny=FLAGS.tiny,
                compute_dtype=FLAGS.compute_dtype, peak=FLAGS.peak_tflops)
  print(format_results(results))
  for r in results:
    print(f'{r["case"]}: fast path = {r["fast_path"]}')
  print('Reference: [P] Table 11, MLM bytes 7.6 steps/s at batch 2048 '
        '(~15.6k examples/s; hardware unstated).')
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump(results, f, indent=1)
    print(f'Wrote {FLAGS.json_out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
