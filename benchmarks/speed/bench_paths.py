r"""The release-exact path against the fast path (a script, not a test).

Shapes: B per-device batch.

Both paths train the same model (benchmarks/speed/cases.py): 'exact' is the
release's computation (no scan, dense attention, no remat, the release's
kernels, float32), 'fast' the switches the experiments train with
(perceiver/tasks/*/recipes.py: `hk.layer_stack`, perceiver.kernels, and
chunked attention and remat where they pay). Every
number is a ratio measured in one run, so that a loaded machine skews both
paths alike.

Sections (--sections, comma-separated; default all):
  step     train-step time of the reduced configs (64x64 classifier, 512-byte
           MLM; bench_core's 'core' models), the two paths compiled, then
           called alternately; median of the per-pair ratios.
  compile  trace+lower and compile time of the full-size MLM and
           ImageNet-Fourier train steps, and their XLA-planned peak memory.
  batch    the largest batch per device whose train step fits a memory
           budget (--budgets_gib, default 16 and 80), for each path and each
           full-size model (ImageNet-Fourier, MLM bytes, optical flow, video
           autoencoding), by bisection over compile-only memory analysis.

Memory is `compiled.memory_analysis()`: XLA's plan for one call, arguments +
outputs + temporaries - donated (aliased) bytes; it does not depend on the
machine's load. The batch search uses the default compiler options;
`--search_compiler_options` turns LLVM's optimisation off (code generation
only, not the buffer plan: the search checks that against the default
compile of the 'compile' section where both compiled the same batch). It is
off by default: on the 2-core CPU of benchmarks/README.md it made the
release-exact ImageNet-Fourier compile slower, not faster (5 min 21 s at
batch 2 against 54 s for the default compile at batch 8, same load).

  python benchmarks/speed/bench_paths.py                     # everything
  python benchmarks/speed/bench_paths.py --sections=step --pairs=9
  python benchmarks/speed/bench_paths.py --sections=batch --cases=optical_flow
  python benchmarks/speed/bench_paths.py --sections=batch --paths=fast
"""
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Optional, Sequence

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks.speed import cases as cases_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

SECTIONS = ('step', 'compile', 'batch')
STEP_CASES = ('imagenet_small', 'mlm_small')
COMPILE_CASES = ('mlm_bytes', 'imagenet_fourier')
BATCH_CASES = ('imagenet_fourier', 'mlm_bytes', 'optical_flow',
               'video_autoencoding')
# LLVM codegen settings for --search_compiler_options (same buffers).
SEARCH_COMPILER_OPTIONS = {'xla_backend_optimization_level': 0,
                           'xla_llvm_disable_expensive_passes': True}

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line (only when run as a script: the module's functions
  take plain arguments, so tests can import it)."""
  flags.DEFINE_list('sections', list(SECTIONS), f'Any of {SECTIONS}.')
  flags.DEFINE_list('step_cases', list(STEP_CASES),
                    'Cases of the step section.')
  flags.DEFINE_integer('step_batch', 8, 'Batch of the step section.')
  flags.DEFINE_integer('pairs', 7, 'Timed (exact, fast) call pairs.')
  flags.DEFINE_integer('warmup', 1, 'Untimed calls of each path first.')
  flags.DEFINE_list('compile_cases', list(COMPILE_CASES),
                    'Cases of the compile section.')
  flags.DEFINE_integer('compile_batch', 8, 'Batch of the compile section.')
  flags.DEFINE_list('cases', list(BATCH_CASES), 'Cases of the batch section.')
  flags.DEFINE_list('budgets_gib', ['16', '80'], 'Memory budgets per device.')
  flags.DEFINE_list('paths', list(cases_lib.PATHS),
                    'Paths of the batch section (e.g. fast alone: the '
                    'release-exact compiles are the slow ones).')
  flags.DEFINE_integer('max_batch', 8192, 'The batch search stops here.')
  flags.DEFINE_bool('search_compiler_options', False,
                    'Compile the batch search with LLVM optimisation off.')
  flags.DEFINE_string('json_out', '', 'Also write every number here.')
  flags.DEFINE_bool('tiny', False, 'The smoke-size models where a case has '
                    'them (mlm_bytes, imagenet_fourier): a CPU check of the '
                    'script, not a measurement.')


GiB = 2.0 ** 30


def _load() -> str:
  return '/'.join(f'{x:.1f}' for x in os.getloadavg())


def _log(msg: str) -> None:
  print(msg, flush=True)


# ---------------------------------------------------------------------------
# step: alternating train-step timing.
# ---------------------------------------------------------------------------


def _runnable(case: cases_lib.Case, seed: int = 0):
  """(compiled step, mutable [params, state, opt_state], batch, rng,
  compile seconds)."""
  start = time.perf_counter()
  compiled = cases_lib.lower(case).compile()
  compile_s = time.perf_counter() - start
  params, state, opt_state = jax.jit(cases_lib.init_fn(case))(
      jax.random.PRNGKey(seed))
  batch = jax.device_put(cases_lib.sample_batch(case, seed))
  return compiled, [params, state, opt_state], batch, jax.random.PRNGKey(
      seed + 1), compile_s


def time_paths(make: Callable[[str], cases_lib.Case], pairs: int,
               warmup: int) -> dict[str, Any]:
  """Compiles both paths, then times `pairs` alternating (exact, fast)
  calls, each ended by block_until_ready."""
  runs = {path: _runnable(make(path)) for path in cases_lib.PATHS}
  times = {path: [] for path in cases_lib.PATHS}

  def call(path):
    compiled, st, batch, rng, _ = runs[path]
    start = time.perf_counter()
    st[0], st[1], st[2], loss = compiled(st[0], st[1], st[2], batch, rng)
    jax.block_until_ready(loss)
    return time.perf_counter() - start

  for _ in range(warmup):
    for path in cases_lib.PATHS:
      call(path)
  for i in range(pairs):
    order = cases_lib.PATHS if i % 2 == 0 else cases_lib.PATHS[::-1]
    for path in order:
      times[path].append(call(path))
  ratios = [e / f for e, f in zip(times['exact'], times['fast'])]
  return {'exact_s': statistics.median(times['exact']),
          'fast_s': statistics.median(times['fast']),
          'exact_min_s': min(times['exact']), 'fast_min_s': min(times['fast']),
          'speedup': statistics.median(ratios),
          'speedup_of_minima': min(times['exact']) / min(times['fast']),
          'compile_exact_s': runs['exact'][4],
          'compile_fast_s': runs['fast'][4]}


def run_step(results: dict[str, Any]) -> None:
  batch = FLAGS.step_batch
  _log(f'\n## step: train-step time, batch {batch}, float32; '
       f'{FLAGS.pairs} alternating pairs after {FLAGS.warmup} warm-up calls')
  rows = []
  for name in FLAGS.step_cases:
    fast_switches = cases_lib.get(name, 'fast', batch,
                                  tiny=FLAGS.tiny).switches
    r = time_paths(lambda path, n=name: cases_lib.get(n, path, batch,
                                                      tiny=FLAGS.tiny),
                   FLAGS.pairs, FLAGS.warmup)
    r['fast_switches'] = fast_switches
    r['load'] = _load()
    results.setdefault('step', {})[name] = r
    rows.append((name, f'{1e3 * r["exact_s"]:.0f}', f'{1e3 * r["fast_s"]:.0f}',
                 f'{r["speedup"]:.2f}x', f'{r["speedup_of_minima"]:.2f}x',
                 f'{r["compile_exact_s"]:.1f}', f'{r["compile_fast_s"]:.1f}',
                 r['load'], fast_switches))
    _log(f'  {name}: done [load {r["load"]}]')
  _log(_table(('case', 'exact ms', 'fast ms', 'exact/fast (median of pairs)',
               'exact/fast (minima)', 'compile exact s', 'compile fast s',
               'load', 'fast path'), rows))


# ---------------------------------------------------------------------------
# compile: full-size compile time and planned memory.
# ---------------------------------------------------------------------------


def compile_times(case: cases_lib.Case,
                  options: Optional[dict[str, Any]] = None) -> dict[str, Any]:
  """Seconds to trace+lower and to compile the case's step (no arrays are
  allocated), and the XLA-planned memory of the result."""
  start = time.perf_counter()
  lowered = cases_lib.lower(case)
  lower_s = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile(compiler_options=options) if options else (
      lowered.compile())
  compile_s = time.perf_counter() - start
  return {'lower_s': lower_s, 'compile_s': compile_s,
          'bytes': cases_lib.planned_bytes(compiled)}


def run_compile(results: dict[str, Any]) -> None:
  batch = FLAGS.compile_batch
  _log(f'\n## compile: full-size train steps, batch {batch}, float32, '
       'default compiler options')
  rows = []
  for name in FLAGS.compile_cases:
    out = {}
    for path in cases_lib.PATHS:
      case = cases_lib.get(name, path, batch, tiny=FLAGS.tiny)
      out[path] = compile_times(case)
      out[path]['switches'] = case.switches
      out[path]['load'] = _load()
      _log(f'  {name} {path}: lower {out[path]["lower_s"]:.1f} s, compile '
           f'{out[path]["compile_s"]:.1f} s [load {out[path]["load"]}]')
    results.setdefault('compile', {})[name] = out
    ex, fa = out['exact'], out['fast']
    total = lambda r: r['lower_s'] + r['compile_s']
    rows.append((name, f'{total(ex):.1f}', f'{total(fa):.1f}',
                 f'{total(fa) / total(ex):.2f}x',
                 f'{ex["compile_s"]:.1f}', f'{fa["compile_s"]:.1f}',
                 f'{ex["bytes"]["peak"] / GiB:.2f}',
                 f'{fa["bytes"]["peak"] / GiB:.2f}',
                 f'{ex["bytes"]["peak"] / fa["bytes"]["peak"]:.2f}x'))
  _log(_table(('case', 'exact s', 'fast s', 'fast/exact time',
               'exact compile-only s', 'fast compile-only s',
               f'exact peak GiB @{batch}', f'fast peak GiB @{batch}',
               'exact/fast memory'), rows))


# ---------------------------------------------------------------------------
# batch: the largest batch per device under a memory budget.
# ---------------------------------------------------------------------------


def largest_batch(peak_bytes: Callable[[int], float], budget: float, *,
                  guess: int = 1, limit: int = 8192) -> int:
  """The largest B in [1, limit] with peak_bytes(B) <= budget (0 if even
  B = 1 does not fit; `limit` if it still fits), by bisection. peak_bytes
  must be non-decreasing in B. `guess` (e.g. an affine extrapolation) only
  places the first bracket: a good guess costs two evaluations."""
  fits = lambda b: peak_bytes(b) <= budget
  if not fits(1):
    return 0
  lo, hi = 1, None  # fits(lo); not fits(hi)
  guess = min(max(int(guess), 1), limit)
  if guess > lo:
    if fits(guess):
      lo = guess
    else:
      hi = guess
  # Bracket: walk away from the guess in doubling steps.
  step = 1
  while hi is None:
    probe = min(lo + step, limit)
    if probe == lo:
      return limit
    if fits(probe):
      lo = probe
      step *= 2
    else:
      hi = probe
  step = 1
  while hi - lo > 1:
    probe = hi - step
    if probe <= lo:
      break
    if fits(probe):
      lo = probe
      break
    hi = probe
    step *= 2
  while hi - lo > 1:  # plain bisection
    mid = (lo + hi) // 2
    if fits(mid):
      lo = mid
    else:
      hi = mid
  return lo


class _PeakOfBatch:
  """peak_bytes(B) of one case and path, compiled on demand and cached."""

  def __init__(self, name: str, path: str, options: Optional[dict]):
    self.name, self.path, self.options = name, path, options
    self.cache: dict[int, float] = {}
    self.seconds = 0.0

  def __call__(self, batch: int) -> float:
    if batch not in self.cache:
      start = time.perf_counter()
      r = compile_times(cases_lib.get(self.name, self.path, batch,
                                      tiny=FLAGS.tiny), self.options)
      self.seconds += time.perf_counter() - start
      self.cache[batch] = r['bytes']['peak']
      _log(f'    {self.name} {self.path} B={batch}: planned peak '
           f'{self.cache[batch] / GiB:.2f} GiB ({r["lower_s"]:.0f} + '
           f'{r["compile_s"]:.0f} s) [load {_load()}]')
    return self.cache[batch]

  def affine_guess(self, budget: float) -> int:
    """B where the line through B = 1 and 2 meets the budget."""
    per = self(2) - self(1)
    if per <= 0:
      return 1
    return int((budget - (self(1) - per)) // per)


def run_batch(results: dict[str, Any]) -> None:
  budgets = [float(b) for b in FLAGS.budgets_gib]
  options = SEARCH_COMPILER_OPTIONS if FLAGS.search_compiler_options else None
  _log(f'\n## batch: largest batch per device within {budgets} GiB (XLA '
       f'plan of the float32 train step, compile only)')
  rows = []
  paths = [p for p in cases_lib.PATHS if p in FLAGS.paths]
  for name in FLAGS.cases:
    found = {}
    peaks = {}
    for path in paths:
      peak = _PeakOfBatch(name, path, options)
      for budget in budgets:
        found[(path, budget)] = largest_batch(
            peak, budget * GiB, guess=peak.affine_guess(budget * GiB),
            limit=FLAGS.max_batch)
      peaks[path] = peak
      _check_against_compile_section(results, name, path, peak)
    out = {'per_example_MiB': {p: (peaks[p](2) - peaks[p](1)) / 2 ** 20
                               for p in paths},
           'peak_at_1_GiB': {p: peaks[p](1) / GiB for p in paths},
           'largest': {f'{p}@{b:g}GiB': found[(p, b)]
                       for p in paths for b in budgets},
           'peaks_GiB': {p: {b: v / GiB for b, v in sorted(peaks[p].cache.items())}
                         for p in paths},
           'compiles': {p: len(peaks[p].cache) for p in paths},
           'search_s': {p: peaks[p].seconds for p in paths},
           'fast_switches': cases_lib.get(name, 'fast', 1,
                                          tiny=FLAGS.tiny).switches}
    results.setdefault('batch', {})[name] = out
    for budget in budgets:
      e, f = found.get(('exact', budget)), found.get(('fast', budget))
      if e is None or f is None:
        ratio = '-'
      else:
        ratio = f'{f / e:.1f}x' if e else ('fits only fast' if f else '-')
      mib = out['per_example_MiB']
      rows.append((name, f'{budget:g}', str(e if e is not None else '-'),
                   str(f if f is not None else '-'), ratio,
                   f'{mib["exact"]:.0f}' if 'exact' in mib else '-',
                   f'{mib["fast"]:.0f}' if 'fast' in mib else '-',
                   out['fast_switches']))
    _log(f'  {name}: done [load {_load()}]')
  _log(_table(('case', 'budget GiB', 'exact B', 'fast B', 'fast/exact',
               'exact MiB/example', 'fast MiB/example', 'fast path'), rows))


def _check_against_compile_section(results, name, path, peak):
  """The search's compiler options must not change the buffer plan."""
  done = results.get('compile', {}).get(name, {}).get(path)
  if not done:
    return
  batch = FLAGS.compile_batch
  searched = peak.cache.get(batch)
  if searched is None:
    return
  if searched != done['bytes']['peak']:
    _log(f'  WARNING: {name} {path} B={batch}: the search compile plans '
         f'{searched / GiB:.3f} GiB, the default compile '
         f'{done["bytes"]["peak"] / GiB:.3f} GiB.')


# ---------------------------------------------------------------------------
# Output.
# ---------------------------------------------------------------------------


_table = cases_lib.table


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.sections) - set(SECTIONS))
  if unknown:
    raise app.UsageError(f'Unknown sections {unknown}; choose from {SECTIONS}.')
  bad_paths = sorted(set(FLAGS.paths) - set(cases_lib.PATHS))
  if bad_paths or not FLAGS.paths:
    raise app.UsageError(f'--paths={FLAGS.paths}: choose from '
                         f'{cases_lib.PATHS}.')
  for name in FLAGS.step_cases + FLAGS.compile_cases + FLAGS.cases:
    if name not in cases_lib.CASES:
      raise app.UsageError(f'Unknown case {name!r}; known: '
                           f'{sorted(cases_lib.CASES)}.')
  start = time.perf_counter()
  _log(f'bench_paths: jax {jax.__version__}, backend {jax.default_backend()}, '
       f'{os.cpu_count()} CPU cores; load average {_load()}')
  results: dict[str, Any] = {'jax': jax.__version__,
                             'backend': jax.default_backend()}
  for section in SECTIONS:
    if section in FLAGS.sections:
      {'step': run_step, 'compile': run_compile, 'batch': run_batch}[section](
          results)
      _log(f'[{time.perf_counter() - start:.0f} s so far; load average '
           f'{_load()}]')
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump(results, f, indent=1, default=str)
    _log(f'Wrote {FLAGS.json_out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
