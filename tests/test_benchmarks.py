"""The benchmark scripts run: bench_accel's CPU tiny mode end to end,
bench_paths' batch search against a brute-force scan, bench_batch_sum on a
small shape, and every plateau ablation arm's flags build its model."""
import functools
import math

import haiku as hk
import jax
import numpy as np
import pytest

from benchmarks.probes import mlm_ablations
from benchmarks.probes import mlm_plateau
from benchmarks.speed import bench_accel
from benchmarks.speed import bench_batch_sum
from benchmarks.speed import bench_paths


@pytest.mark.parametrize('per_example,fixed,budget', [
    (3.0, 1.0, 16.0), (0.6, 1.7, 16.0), (0.6, 1.7, 80.0), (20.0, 1.0, 16.0),
    (0.001, 0.5, 16.0), (1.0, 20.0, 16.0)])
@pytest.mark.parametrize('guess_error', [0, 1, -1, 7, -13, 500])
def test_largest_batch_matches_a_brute_force_scan(per_example, fixed, budget,
                                                  guess_error):
  # A staircase, as XLA's plans are (padding, buffer reuse), not a line.
  peak = lambda b: fixed + per_example * b + 0.3 * math.floor(b / 5)
  calls = []

  def counted(b):
    calls.append(b)
    return peak(b)

  limit = 4096
  want = max([b for b in range(1, limit + 1) if peak(b) <= budget], default=0)
  guess = max(want + guess_error, 1)
  got = bench_paths.largest_batch(counted, budget, guess=guess, limit=limit)
  assert got == want
  if guess_error == 0 and 0 < want < limit:
    assert len(set(calls)) <= 3  # B = 1, the guess and the guess + 1


def test_batch_sum_benchmark_times_two_equal_sums():
  r = bench_batch_sum.measure((4, 16, 8), repeats=2)
  assert set(r) == {'reduce_ms', 'matmul_ms', 'reduce_grad_ms',
                    'matmul_grad_ms', 'max_abs_difference'}
  assert all(r[k] > 0 for k in r if k.endswith('_ms'))
  assert r['max_abs_difference'] < 1e-5


def test_accel_benchmark_runs_on_cpu_in_tiny_mode():
  # One case (the MLM smoke model) keeps the test short; the ImageNet case
  # goes through the same code with another recipe.
  results = bench_accel.run(['mlm_bytes'], tiny=True, steps=2, warmup=1,
                            peak=0.5)
  assert [r['case'] for r in results] == ['mlm_bytes']
  for r in results:
    assert r['batch'] == bench_accel.TINY_BATCH
    assert r['compute_dtype'] == 'bfloat16'
    assert 'scan_layers' in r['fast_path'] and 'remat' in r['fast_path']
    assert np.isfinite(r['final_loss'])
    assert r['steps_per_s'] > 0
    assert r['examples_per_s'] == pytest.approx(r['steps_per_s'] * 2)
    assert r['step_tflop'] > 0
    assert r['mfu'] == pytest.approx(
        r['achieved_tflops'] / r['peak_tflops'])
    assert r['planned_peak_gib'] > 0
  table = bench_accel.format_results(results)
  assert 'mlm_bytes' in table and 'MFU' in table


def test_peak_rates_by_device_kind():
  class Device:
    device_kind = 'NVIDIA H100 80GB HBM3'
  assert bench_accel.peak_tflops(Device()) == 989.0
  Device.device_kind = 'TPU v5 lite'
  assert bench_accel.peak_tflops(Device()) == 197.0
  Device.device_kind = 'cpu'
  assert bench_accel.peak_tflops(Device()) is None
  assert bench_accel.peak_tflops(Device(), 12.5) == 12.5


@pytest.mark.parametrize('arm', sorted(mlm_ablations.ARMS))
def test_mlm_ablation_arm_builds_its_model(arm):
  """Each arm's flags parse and give a model that takes a [B, T] batch and
  returns [B, T, 262] logits (shapes only: jax.eval_shape)."""
  flags, what = mlm_ablations.ARMS[arm]
  assert what
  args = mlm_plateau.parser().parse_args(flags)
  build = (mlm_plateau.perceiver_mlm if args.arch == 'perceiver'
           else mlm_plateau.bert_mlm)
  forward = hk.transform(functools.partial(build(args), is_training=True))
  ids = jax.ShapeDtypeStruct((2, args.seq_len), np.int32)
  params = jax.eval_shape(forward.init, jax.random.PRNGKey(0), ids, ids)
  logits = jax.eval_shape(forward.apply, params, None, ids, ids)
  assert logits.shape == (2, args.seq_len, mlm_plateau.V)
