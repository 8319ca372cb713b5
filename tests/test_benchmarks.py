"""The benchmark scripts run, each in a tiny mode, from the repository root
as `python benchmarks/<room>/<script>.py` (so their own sys.path set-up is
tested too); bench_paths' batch search against a brute-force scan, the
accelerator benchmark's CPU mode and the plateau ablation arms' models in
process. `test_every_benchmark_script_is_covered` keeps the list whole."""
import functools
import glob
import json
import math
import os
import pathlib
import subprocess
import sys

import haiku as hk
import jax
import numpy as np
import pytest

from benchmarks.probes import mlm_ablations
from benchmarks.probes import mlm_plateau
from benchmarks.repro import language_repro
from benchmarks.speed import bench_accel
from benchmarks.speed import bench_batch_sum
from benchmarks.speed import bench_paths
from benchmarks.speed import bench_peer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(REPO, 'benchmarks')
ROOMS = ('speed', 'repro', 'probes')

# Every script of the rooms -> the test that runs it in its tiny mode.
TINY = {
    'speed/bench_accel.py': 'test_accel_benchmark_runs_on_cpu_in_tiny_mode',
    'speed/bench_batch_sum.py': 'test_batch_sum_script_runs',
    'speed/bench_core.py': 'test_core_benchmark_runs_small',
    'speed/bench_paths.py': 'test_paths_benchmark_runs_tiny',
    'speed/bench_peer.py': 'test_peer_benchmark_runs_tiny',
    'repro/language_repro.py': 'test_language_repro_runs_two_steps',
    'repro/mlm_baselines.py': 'test_mlm_baselines_count_the_eval_bytes',
    'repro/multimodal_repro.py': 'test_multimodal_repro_runs_two_steps',
    'repro/flow_repro.py': 'test_flow_repro_runs_at_init',
    'repro/entities.py': 'test_entities_benchmark_runs_small',
    'repro/train_curves.py': 'test_train_curves_reads_a_runs_events',
    'probes/mlm_plateau.py': 'test_mlm_plateau_runs_two_steps',
    'probes/mlm_ablations.py': 'test_mlm_ablations_run_one_arm',
    'probes/mlm_copy_probe.py': 'test_mlm_copy_probe_runs_two_steps',
    'probes/flow_learnability.py': 'test_flow_learnability_runs_two_steps',
}
# Modules the scripts import; covered through them.
LIBRARIES = ('speed/cases.py', 'probes/optimiser.py')


def _scripts():
  return sorted(os.path.relpath(p, BENCHMARKS) for room in ROOMS
                for p in glob.glob(os.path.join(BENCHMARKS, room, '*.py')))


def run_script(script, *args, timeout=900):
  """Runs benchmarks/<script> as a command from the repository root (no
  PYTHONPATH: the script puts the checkout on sys.path itself); returns
  its output."""
  env = dict(os.environ)
  env.pop('PYTHONPATH', None)
  done = subprocess.run(
      [sys.executable, os.path.join('benchmarks', script)] + list(args),
      cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
      check=False)
  assert done.returncode == 0, (
      f'{script} {" ".join(args)} exited {done.returncode}:\n'
      f'{done.stdout[-3000:]}\n{done.stderr[-3000:]}')
  return done.stdout


@pytest.mark.parametrize('script', _scripts())
def test_every_benchmark_script_is_covered(script):
  if script in LIBRARIES:
    room, name = os.path.dirname(script), os.path.basename(script)[:-3]
    line = f'from benchmarks.{room} import {name}'
    importers = [s for s in TINY
                 if line in pathlib.Path(BENCHMARKS, s).read_text()]
    assert importers, f'{script} is a library that no tested script imports'
  else:
    assert script in TINY, f'{script}: add a tiny-mode test to TINY'
    assert callable(globals().get(TINY[script])), TINY[script]


def test_no_script_outside_the_rooms():
  assert not glob.glob(os.path.join(BENCHMARKS, '*.py'))
  assert set(TINY) | set(LIBRARIES) == set(_scripts())


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


@pytest.mark.slow
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


def test_mlm_plateau_flags_map_onto_the_project_optimiser():
  args = mlm_plateau.parser().parse_args(['--steps=300'])
  c = mlm_plateau.optimizer_config(args)
  assert (c.optimizer.name, c.optimizer.weight_decay) == ('lamb', 0.01)
  assert (c.schedule.name, c.schedule.base_lr) == ('warmup_cosine', 2e-3)
  assert (c.schedule.warmup_steps, c.num_train_steps) == (30, 300)
  args = mlm_plateau.parser().parse_args(
      ['--optimizer=adamw', '--lr=1e-3', '--warmup=0', '--weight_decay=0'])
  c = mlm_plateau.optimizer_config(args)
  assert (c.optimizer.name, c.schedule.base_lr) == ('adamw', 1e-3)
  assert (c.schedule.warmup_steps, c.optimizer.weight_decay) == (0, 0.0)


# --- Each script, in its tiny mode, as a command ---------------------------


@pytest.mark.slow
def test_batch_sum_script_runs():
  out = run_script('speed/bench_batch_sum.py', '--shapes=2x8x4',
                   '--repeats=1')
  assert '2x8x4' in out


@pytest.mark.slow
def test_core_benchmark_runs_small():
  # scale_m is the same code as scale_o; core compiles the reduced configs.
  out = run_script('speed/bench_core.py', '--sections=scale_o,chunked',
                   '--min_log2=5', '--max_log2=6', '--fixed_log2=5',
                   '--chunk=32', '--scale_batch=1', '--warmup=0',
                   '--repeats=1')
  for section in ('scale_o', 'chunked'):
    assert f'## {section}' in out


@pytest.mark.slow
def test_paths_benchmark_runs_tiny(tmp_path):
  out = tmp_path / 'paths.json'
  run_script('speed/bench_paths.py', '--tiny', '--step_cases=mlm_bytes',
             '--compile_cases=mlm_bytes', '--cases=mlm_bytes', '--pairs=1',
             '--warmup=0', '--step_batch=1', '--compile_batch=1',
             '--budgets_gib=0.02', '--max_batch=4', f'--json_out={out}')
  results = json.loads(out.read_text())
  assert set(results) >= {'step', 'compile', 'batch'}
  assert results['step']['mlm_bytes']['speedup'] > 0


def _table_rows(out, first_header):
  """The rows of the printed table whose header starts with
  `first_header`, as lists of stripped cells."""
  lines = out.splitlines()
  start = next(i for i, line in enumerate(lines)
               if line.split('|')[0].strip() == first_header)
  rows = []
  for line in lines[start + 2:]:  # past the header and its rule
    if ' | ' not in line:
      break
    rows.append([cell.strip() for cell in line.split('|')])
  return rows


@pytest.mark.slow  # about 9 s for the first (torch's import)
@pytest.mark.parametrize('name,want', [('mlm', 9_934_086),
                                       ('classifier', 2_023_253),
                                       ('flow', 2_633_582)])
def test_peer_models_have_their_documented_sizes(name, want):
  """Our side counted from shapes (jax.eval_shape); transformers' side, when
  installed, on the meta device (nothing allocated)."""
  config = getattr(bench_peer, f'{name}_config')()
  spec = bench_peer.spec_of(name, config)
  batch = bench_peer.make_batch(name, config, spec, 1)
  case = bench_paths.cases_lib.from_config(config, 'fast',
                                           bench_peer.shapes_of(batch))
  params, _, _ = jax.eval_shape(bench_paths.cases_lib.init_fn(case),
                                jax.random.PRNGKey(0))
  ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  assert ours == want
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  plan = bench_peer.mapping.plan(spec)
  with torch.device('meta'):
    model = getattr(transformers, plan.hf_class)(
        transformers.PerceiverConfig(**plan.hf_config))
  assert sum(p.numel() for p in model.parameters()) == ours


def test_peer_profile_reads_xla_ops_and_their_phase():
  def loss(w, x):
    return -jax.nn.log_softmax(jax.nn.relu(x @ w)).sum()
  w, x = np.ones((8, 4), np.float32), np.ones((2, 8), np.float32)
  text = jax.jit(jax.grad(loss)).lower(w, x).compile().as_text()
  instructions, computations = bench_peer.parse_hlo(text)
  assert instructions and computations
  families, phases = set(), set()
  for inst in instructions.values():
    families.add(bench_peer.op_family(bench_peer.opcodes(
        inst, instructions, computations)))
    phases.add(bench_peer.phase(inst.op_name))
  assert 'dot (GEMM, incl. fused epilogues)' in families
  assert 'exp/log (softmax, cross-entropy)' in families
  assert {'forward', 'backward'} <= phases
  assert bench_peer.op_family({'copy', 'transpose'}) == 'copies/transposes'
  assert bench_peer.op_family({'multiply', 'rsqrt'}) == 'layer norm (rsqrt)'
  assert bench_peer.phase('jit(step)/checkpoint/rematted_computation/x') == (
      'remat recomputation')
  assert bench_peer.part('jit(step)/jvp(embedding_decoder)/dot_general') == (
      'output head (262-way logits) + loss')


@pytest.mark.slow
def test_peer_benchmark_bfloat16_runs_both_sides_in_bfloat16():
  torch = pytest.importorskip('torch')  # the hf extra (make test has it)
  pytest.importorskip('transformers')
  config = bench_peer.mlm_config(tiny=True)
  spec = bench_peer.spec_of('mlm', config)
  batch = bench_peer.make_batch('mlm', config, spec, 2)
  ours, initial = bench_peer.ours('mlm', config, batch,
                                  compute_dtype='bfloat16')
  theirs, _ = bench_peer.theirs('mlm', spec, initial, batch, 'bfloat16')
  assert 'bfloat16' in ours.switches
  assert 'bf16' in ours.step_hlo  # our step computes in bfloat16 ...
  float32, _ = bench_peer.theirs('mlm', spec, initial, batch)
  low, full = theirs.forward(), float32.forward()  # ... and so does theirs
  assert not torch.equal(low, full)
  torch.testing.assert_close(low.float(), full, rtol=0,
                             atol=0.05 * float(full.abs().max()))
  # The same model in both: equal losses to bfloat16 rounding.
  rel = bench_peer._check_losses('mlm', [ours.train()], [theirs.train()],
                                 'bfloat16')
  assert rel <= bench_peer.LOSS_RTOL['bfloat16']
  with pytest.raises(ValueError, match='float32 only'):
    bench_peer.ours('mlm', config, batch, path='exact',
                    compute_dtype='bfloat16')


@pytest.mark.slow
def test_peer_benchmark_runs_tiny(tmp_path):
  # The core install has no PyTorch; `make test` installs the hf extra.
  for module in ('torch', 'transformers'):
    try:
      __import__(module)
    except ImportError as e:
      pytest.skip(f'bench_peer.py compares with transformers (PyTorch): '
                  f"{e}; pip install -e '.[hf]'")
  out_json = tmp_path / 'peer.json'
  out = run_script('speed/bench_peer.py', '--tiny', '--profile=mlm',
                   f'--trace_dir={tmp_path / "trace"}',
                   f'--json_out={out_json}')
  rows = _table_rows(out, 'model')
  assert [(r[0], r[3]) for r in rows] == [
      (m, mode) for m in ('mlm', 'classifier', 'flow')
      for mode in ('train', 'forward')]
  for r in rows:
    ours, theirs = int(r[1].replace(',', '')), int(r[2].replace(',', ''))
    assert ours == theirs > 0
    for cell in r[4:8]:  # both medians (ms) and both ratios
      assert math.isfinite(float(cell)) and float(cell) > 0
  results = json.loads(out_json.read_text())
  assert results['machine']['torch_threads'] == len(os.sched_getaffinity(0))
  assert results['gemm']['xla_gflops'] > 0
  classes = {r['model']: r['hf_class'] for r in results['models']}
  assert classes == {'mlm': 'PerceiverForMaskedLM',
                     'classifier': 'PerceiverForImageClassificationFourier',
                     'flow': 'PerceiverForOpticalFlow'}
  for r in results['models']:
    assert r['params'] == r['hf_params']
    assert r['step_flops'] > r['forward_flops'] > 0
    # Same weights, same batch: the first train-step losses agree.
    jax_loss, torch_loss = r['losses']['jax'][0], r['losses']['torch'][0]
    assert jax_loss == pytest.approx(torch_loss, rel=1e-4)
    for mode in ('train', 'forward'):
      assert r[mode]['ratio'] == pytest.approx(
          r[mode]['torch_s'] / r[mode]['jax_s'])
  # The profile: every traced XLA op of the step falls in one row of each
  # grouping; the step has GEMMs, a backward pass and Adam's update.
  profile = results['profile']
  assert profile['model'] == 'mlm' and profile['thunk_s_per_step'] > 0
  for group in ('family', 'phase', 'part'):
    assert sum(profile['shares'][group].values()) == pytest.approx(1.0)
  assert profile['shares']['family']['dot (GEMM, incl. fused epilogues)'] > 0
  assert profile['shares']['phase']['backward'] > 0
  assert profile['shares']['phase']['optimizer (Adam) and glue'] > 0
  assert '## profile: our mlm train step' in out


def test_repro_config_overrides_parse_and_make_missing_parents():
  """The reproductions' KEY=VALUE overrides: numbers and booleans parsed,
  a missing parent (e.g. the multimodal model's decoder_kwargs) made."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  overrides = language_repro.parse_overrides(
      ['a.n=3', 'a.x=0.5', 'b.flag=true', 'b.off=False', 'c=l2'])
  assert overrides == {'a.n': 3, 'a.x': 0.5, 'b.flag': True, 'b.off': False,
                       'c': 'l2'}
  config = ml_collections.ConfigDict({'a': {'n': 1, 'x': 0.1}, 'c': 'l1'})
  language_repro.set_overrides(config, overrides)
  assert config.b.flag is True and config.b.off is False
  assert (config.a.n, config.a.x, config.c) == (3, 0.5, 'l2')
  with pytest.raises(SystemExit, match='not KEY=VALUE'):
    language_repro.parse_overrides(['a.n'])


@pytest.mark.slow
def test_language_repro_runs_two_steps(tmp_path):
  # Batch 4: the trainer splits it over the 4 host devices of conftest.py.
  # With the locality prior (a model variant): the checkpoint must load
  # into the fine-tuned classifier, which has the same prior.
  run_script('repro/language_repro.py', f'--workdir={tmp_path}',
             '--pretrain_steps=2', '--pretrain_batch=4',
             '--finetune_steps=2', '--finetune_batch=4',
             '--model_variants=local=2')
  results = json.loads((tmp_path / 'results.json').read_text())
  assert len(results['runs']) == 1
  run = results['runs'][0]
  for stage in ('pretrain', 'finetune_pretrained', 'finetune_scratch'):
    assert 'local=2' in run[stage]['command'], run[stage]['command']


@pytest.mark.slow
def test_mlm_baselines_count_the_eval_bytes(tmp_path):
  out = run_script('repro/mlm_baselines.py', '--variants=smoke',
                   f'--workdir={tmp_path}', '--train_batches=2',
                   '--config=input.mask_unit=token')
  result = json.loads(out[out.index('{'):])
  assert result['masked_bytes'] > 0
  for name in ('unigram', 'context'):
    accuracy, nll = result[name]
    assert 0.0 <= accuracy <= 1.0 and 0.0 < nll < math.log(262) + 1, result


@pytest.mark.slow
def test_multimodal_repro_runs_two_steps(tmp_path):
  from perceiver.tasks.multimodal import embedded  # pylint: disable=g-import-not-at-top
  # The reproduction's dataset (embedded_av/cpu) needs a second real film,
  # Megamind.avi, which the bootstrap does not fetch (it comes from Debian's
  # opencv-doc: scripts/fetch_video_data.sh). Without it the script stops at
  # once with that instruction, so there is nothing to run.
  try:
    embedded.megamind_path()
  except FileNotFoundError as e:
    pytest.skip(str(e))
  picture = tmp_path / 'picture.png'
  # With a variant and a config override, which the reconstructions (a
  # checkpoint loaded into the same model) must also get.
  run_script('repro/multimodal_repro.py', f'--workdir={tmp_path}',
             '--steps=2', '--latents=22', f'--picture={picture}',
             '--variants=local=1',
             '--config=model.encoder_kwargs.num_cross_attend_heads=2')
  assert picture.exists()
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['config'] == ['model.encoder_kwargs.num_cross_attend_heads=2']
  assert np.isfinite(results['runs']['22']['metrics']['eval/audio_psnr'])


@pytest.mark.slow
def test_flow_repro_runs_at_init(tmp_path):
  out = tmp_path / 'flow.json'
  run_script('repro/flow_repro.py', '--arm=init=smoke@',
             '--arm=stem init=smoke,stem,qres,head_init@',
             '--num_generated=2', '--real=motorcycle', '--noopencv',
             f'--json={out}')
  results = json.loads(out.read_text())
  assert set(results) == {'generated (held-out)', 'motorcycle /8'}
  for rows in results.values():
    assert set(rows) == {'zero flow', 'Perceiver IO, init',
                         'Perceiver IO, stem init'}
    # The release's zero-initialised head predicts zero flow exactly.
    assert rows['Perceiver IO, init']['epe'] == rows['zero flow']['epe']
    assert rows['Perceiver IO, stem init']['epe'] != rows['zero flow']['epe']


@pytest.mark.slow
def test_train_curves_reads_a_runs_events(tmp_path):
  """The events the trainer's MetricWriter writes, read back as a ratio."""
  from perceiver.train import metric_writer  # pylint: disable=g-import-not-at-top
  writer = metric_writer.MetricWriter(str(tmp_path / 'run' / 'tensorboard'),
                                      enabled=True, total_steps=30)
  for step in (10, 20, 30):
    writer.write_scalars(step, {'train/loss': step / 10,
                                'train/zero_loss': 4.0})
  out = run_script('repro/train_curves.py', f'--run=a={tmp_path / "run"}',
                   '--over=train/zero_loss', '--at=10,25,30,40',
                   '--hline=unigram=0.6')
  assert '| a | 0.250 | 0.500 | 0.750 |  |' in out, out
  assert '| unigram (reference) | 0.600 | 0.600 | 0.600 | 0.600 |' in out, out
  with pytest.raises(AssertionError, match='No TensorBoard events'):
    run_script('repro/train_curves.py', f'--run=a={tmp_path}')


@pytest.mark.slow
def test_entities_benchmark_runs_small(tmp_path):
  out = tmp_path / 'entities.json'
  run_script('repro/entities.py', '--sections=table,scaling,baselines',
             '--entities=32', '--batch=2', '--warmup=0', '--repeats=1',
             '--scale_batch=1', '--min_log2=4', '--max_log2=5',
             '--baseline_examples=4', f'--json_out={out}')
  assert set(json.loads(out.read_text())) == {'table', 'scaling',
                                              'baselines'}


@pytest.fixture(scope='module')
def plateau_run(tmp_path_factory):
  """One two-step mlm_plateau.py run; its workdir holds the cached batches
  the copy probe and the ablations read."""
  workdir = tmp_path_factory.mktemp('mlm_plateau')
  out = workdir / 'runs.jsonl'
  run_script('probes/mlm_plateau.py', f'--workdir={workdir}', '--steps=2',
             '--batch=2', '--seq_len=32', '--eval_every=1', f'--out={out}')
  return workdir, [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.slow
def test_mlm_plateau_runs_two_steps(plateau_run):
  _, records = plateau_run
  assert len(records) == 1 and len(records[0]['curve']) == 2
  assert np.isfinite(records[0]['curve'][-1]['val_nll'])


@pytest.mark.slow
def test_mlm_copy_probe_runs_two_steps(plateau_run):
  workdir, _ = plateau_run
  out = run_script('probes/mlm_copy_probe.py',
                   f'--cache={workdir}/batches_T32_B2_p0.15_word.npz',
                   '--T=32', '--steps=2', '--every=1')
  assert 'step 2: copy loss' in out


@pytest.mark.slow
def test_mlm_ablations_run_one_arm(plateau_run, tmp_path):
  workdir, _ = plateau_run
  out = run_script('probes/mlm_ablations.py', '--arms=release', '--steps=2',
                   f'--out={tmp_path}/ab.jsonl', f'--workdir={workdir}',
                   '--', '--batch=2', '--seq_len=32', '--eval_every=1')
  assert '| release | 1 |' in out


@pytest.mark.slow
@pytest.mark.parametrize('model', ['fixed', 'cnn'])
def test_flow_learnability_runs_two_steps(model):
  out = run_script('probes/flow_learnability.py', f'--model={model}',
                   '--steps=2')
  assert out.splitlines()[-1].split()[0] == '2'
