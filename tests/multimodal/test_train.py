"""Multimodal autoencoding end to end on real video (embedded_av/tiny):
smoke training through perceiver.train.trainer.train_and_evaluate with the
full-decode evaluation, 1 device == 4 devices, export to the release format,
and launch/train.py (resuming == uninterrupted) + launch/reconstruct.py as a
user runs them."""
import json
import os
import shutil
import subprocess
import sys
import wave

import av
import jax
import numpy as np
import pytest

from perceiver import perceiver
from perceiver.tasks.multimodal import reconstruct
from perceiver.tasks.multimodal import task
from perceiver.train import trainer
from tests import golden
from tests.training_fixtures import REPO
from tests.training_fixtures import load_experiment

EXPERIMENT = 'multimodal_autoencoding'
# The smoke model for 4 steps. AdamW's eps = 1 keeps its update linear in
# the gradient: the tiny model has many gradients far below the default eps,
# where Adam's m / (sqrt(v) + eps) turns float differences between device
# layouts (summation order) into visible ones; see tests/training_fixtures.py.
# Also the flags of the launch/train.py run, which then reuses the compiled
# steps from the persistent cache.
OVERRIDES = {'num_train_steps': 4, 'checkpoint_every': 2, 'log_every': 2,
             'optimizer.eps': 1.0, 'schedule.base_lr': 1e-2}


def _smoke(data_dir):
  c = load_experiment(EXPERIMENT, 'smoke')
  c.input.data_dir = data_dir
  c.update_from_flattened_dict(OVERRIDES)
  return c


def _state(config, workdir, step='latest'):
  ts, _ = trainer.restore_state(config, workdir, step=step,
                                devices=jax.devices()[:1])
  return jax.device_get(ts)


def _max_diff(a, b):
  return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope='module')
def four_device_run(tmp_path_factory, tiny_data_dir):
  """The smoke model trained on 4 devices: (config, workdir, final metrics)."""
  config = _smoke(tiny_data_dir)
  workdir = str(tmp_path_factory.mktemp('mm_four'))
  final = trainer.train_and_evaluate(config, workdir,
                                     devices=jax.devices()[:4])
  return config, workdir, final


@pytest.mark.slow
def test_one_device_equals_four(tmp_path, four_device_run):
  """Per-example queries and label masks come with the data, so the device
  layout does not change training (AdamW's eps = 1 keeps the update close
  to linear in the gradient: a gradient summed instead of averaged over
  devices would show)."""
  config, four, final = four_device_run
  # The full-decode evaluation of the 6 held-out clips (eval batch 4: one
  # full batch, one padded).
  assert final['eval/num_examples'] == 6
  for key in ('video_psnr', 'audio_psnr', 'label_top1', 'video_l1',
              'audio_l1', 'label_ce', 'loss'):
    assert np.isfinite(final[f'eval/{key}']), key
  assert 0 < final['eval/video_psnr'] < 60

  one_config = config.copy_and_resolve_references()
  one_config.input.eval_split = ''
  trainer.train_and_evaluate(one_config, str(tmp_path / 'one'),
                             devices=jax.devices()[:1])
  a, b = _state(config, str(tmp_path / 'one')), _state(config, four)
  assert int(a.step) == int(b.step) == 4
  assert _max_diff(a.params, b.params) < 1e-6
  assert _max_diff(b.params, _state(config, four, '2').params) > 1e-3  # moved


def test_export_loads_back_in_the_release_layout(tmp_path, four_device_run):
  """Scanned training -> the release's per-layer .pystate -> the same
  parameters, as launch/reconstruct.py loads a release checkpoint."""
  config, four, _ = four_device_run
  path = trainer.export(config, four, str(tmp_path / 'mm.pystate'))
  params, _ = reconstruct.load_params(config, path)
  ours, _ = reconstruct.load_params(config, four)
  assert _max_diff(params, ours) == 0
  unscanned = config.copy_and_resolve_references()
  unscanned.scan_layers = False
  release_params, _ = reconstruct.load_params(unscanned, path)
  assert not perceiver.is_scanned(release_params)


def test_paper_config_fits_the_released_checkpoint(experiment):
  """The default experiment (N = 784) has the released checkpoint's tree,
  in the release's per-layer layout."""
  config = experiment(EXPERIMENT)
  model = task.make_model(config)
  params, _ = jax.eval_shape(
      lambda b: model.init(jax.random.PRNGKey(0), b, is_training=True),
      task.example_batch(config, 1))
  spec = golden.load_json('full_video_autoencoding')
  assert golden.manifest(perceiver.to_release_layout(params)) == (
      spec['param_manifest'])


def test_config_errors_are_clear(tmp_path, tiny_data_dir, experiment):
  config = _smoke(tiny_data_dir)
  config.model.image_size = 64
  with pytest.raises(ValueError, match=r'holds clips video \(8, 32, 32, 3\)'):
    task.prepare_data(config, str(tmp_path))
  with pytest.raises(ValueError, match=r'latents=100.*\(784, 392, 196\)'):
    experiment(EXPERIMENT, 'latents=100')
  assert experiment(EXPERIMENT, 'cpu,latents=22').model.z_index_dim == 22


@pytest.mark.slow
def test_deviation_switches_train_two_steps(tmp_path, tiny_data_dir,
                                           experiment):
  """The audio_gain and local variants and the squared-error audio loss
  (DEVIATIONs) reach the model and train through the trainer, together;
  the recipes write nothing without them."""
  plain = experiment(EXPERIMENT, 'cpu').model
  assert 'audio_gain' not in plain and 'local_width' not in plain
  both = experiment(EXPERIMENT, 'cpu,audio_gain=32,local=1.5').model
  assert (both.audio_gain, both.local_width) == (32, 1.5)
  for bad in ('audio_gain=0', 'local=0'):
    with pytest.raises(ValueError, match=bad.split('=')[0]):
      experiment(EXPERIMENT, f'cpu,{bad}')
  config = _smoke(tiny_data_dir)
  config.num_train_steps = 2
  config.model.audio_gain = 8.0
  config.model.local_width = 1.0
  config.task.audio_loss = 'l2'
  final = trainer.train_and_evaluate(config, str(tmp_path),
                                     devices=jax.devices()[:2])
  assert np.isfinite(final['eval/audio_psnr']), final


def _run(*args):
  env = dict(os.environ, PYTHONPATH=REPO)
  done = subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


@pytest.mark.slow
def test_launch_train_resumes_exactly_then_reconstruct(
    tmp_path, tiny_data_dir, bigbuckbunny, four_device_run):
  """The commands of the experiment's docstring, on the smoke model.
  launch/train.py resumes from the 4-device run's step-2 checkpoint (a new
  process, 4 devices): steps 3-4 repeat the uninterrupted run bit for bit,
  queries included. Then the outputs a person would open: the frame grid,
  the WAVs, the MP4."""
  config, four, _ = four_device_run
  workdir, out = tmp_path / 'run', str(tmp_path / 'recon')
  (workdir / 'checkpoints').mkdir(parents=True)
  shutil.copytree(os.path.join(four, 'checkpoints', '2'),
                  workdir / 'checkpoints' / '2')
  experiment = f'experiments/{EXPERIMENT}.py:smoke'
  flags = [f'--config.{k}={v}' for k, v in OVERRIDES.items()]
  _run('launch/train.py', f'--config={experiment}', f'--workdir={workdir}',
       f'--config.input.data_dir={tiny_data_dir}', *flags)
  resumed, uninterrupted = _state(config, str(workdir)), _state(config, four)
  assert int(resumed.step) == 4
  for x, y in zip(jax.tree.leaves(uninterrupted), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

  stdout = _run('launch/reconstruct.py', f'--config={experiment}',
                f'--checkpoint={workdir}', '--step=best',
                f'--video={bigbuckbunny}', '--start=1.0', '--num_clips=2',
                f'--output={out}')
  report = json.loads(stdout[stdout.index('{'):])
  assert len(report['clips']) == 2
  for clip in report['clips']:
    assert clip['label_name'] == 'bigbuckbunny'
    assert 0 < clip['video_psnr'] < 60 and 0 < clip['baseline_video_psnr']
  # frames.png: 3 rows (original, reconstruction, baseline) of 8 frames of
  # 32 x 32 px shown 4x larger, 2 px gaps.
  with av.open(report['files']['frames']) as f:
    grid = next(f.decode(video=0)).to_ndarray(format='rgb24')
  assert grid.shape == (4 * (3 * 34 - 2), 4 * (8 * 34 - 2), 3)
  assert grid.std() > 10  # a picture, not a blank
  # The WAVs: 2 clips of 8 frames at 25 fps = 0.64 s of 8 kHz mono.
  for name in ('original_wav', 'reconstruction_wav'):
    with wave.open(report['files'][name]) as w:
      assert (w.getframerate(), w.getnchannels(), w.getsampwidth(),
              w.getnframes()) == (8000, 1, 2, 2 * 8 * 320)
  with av.open(report['files']['video']) as f:
    frames = [fr.to_ndarray(format='rgb24') for fr in f.decode(video=0)]
    assert f.streams.audio[0].codec_context.sample_rate == 8000
  assert len(frames) == 16 and frames[0].shape == (128, 256, 3)
