"""Flow end to end on CPU: smoke training and eval through the one training
loop, and launch/flow.py on the trained run.

One session-scoped reference run (the smoke model, 8 steps on 4 forced host
devices) serves every test. Resuming after a SIGKILL is the trainer's
mechanism, tested once (tests/train/test_train_multiprocess.py); the flow
stream's exact resume is tested in tests/flow/test_task.py.
"""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from perceiver.tasks.flow import colorwheel
from perceiver.tasks.flow import flow_io
from perceiver.train import checkpoint
from perceiver.train import trainer
from tests.training_fixtures import load_experiment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
STEPS = 8
OVERRIDES = {'num_train_steps': STEPS, 'checkpoint_every': 4, 'log_every': 4,
             'eval_every': 0, 'input.num_eval_examples': 8}


def _config():
  config = load_experiment('optical_flow', 'smoke')
  config.update_from_flattened_dict(OVERRIDES)
  return config


def _env():
  return dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')


@pytest.fixture(scope='session')
def flow_run(tmp_path_factory):
  """(workdir, final metrics) of the uninterrupted reference run."""
  workdir = str(tmp_path_factory.mktemp('flow') / 'reference')
  metrics = trainer.train_and_evaluate(_config(), workdir)
  return workdir, metrics


def _final_params(workdir):
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                 read_only=True)
  step = ckpt.latest_step()
  params = ckpt.restore(step)['params']
  ckpt.close()
  return step, jax.device_get(params)


@pytest.mark.slow
def test_smoke_trains_and_evaluates(flow_run):
  workdir, metrics = flow_run
  assert metrics['eval/num_examples'] == 8
  assert 0 < metrics['eval/epe'] < 20
  for key in ('eval/out1px', 'eval/out3px', 'eval/out5px'):
    assert 0 <= metrics[key] <= 1
  assert metrics['eval/out1px'] >= metrics['eval/out3px'] >= metrics[
      'eval/out5px']
  step, params = _final_params(workdir)
  assert step == STEPS
  # The zero-initialised output layer has moved: the model predicts flow.
  out = [v for k, v in params.items() if k.endswith('flow_decoder/~/'
                                                    'basic_decoder/output')]
  assert out and np.abs(out[0]['w']).max() > 0


@pytest.mark.slow
def test_flow_cli_writes_flo_and_png_and_prints_epe(flow_run, tmp_path):
  """launch/flow.py on a real stereo pair (skimage's Motorcycle, cropped to
  a 40x60 patch: 36 tiles of the 12x16 smoke network, overlapping by 6),
  with its ground-truth disparity as a 16-bit PNG."""
  from perceiver.tasks.flow import datasets  # pylint: disable=g-import-not-at-top
  reference, _ = flow_run
  pair = datasets.downscale(datasets.motorcycle(), 4)
  crop = (slice(40, 80), slice(60, 120))
  paths = {}
  for i, name in enumerate(('left.png', 'right.png')):
    paths[name] = str(tmp_path / name)
    flow_io.write_png(paths[name], pair['images'][i][crop])
  disparity = np.where(pair['valid'], -pair['flow'][..., 0], 0)[crop]
  paths['disp'] = str(tmp_path / 'disp.png')
  flow_io.write_png(paths['disp'],
                    np.round(disparity * 256).astype(np.uint16))
  out_prefix = str(tmp_path / 'out' / 'moto')
  cmd = [sys.executable, os.path.join(REPO, 'launch', 'flow.py'),
         '--config=' + os.path.join(REPO, 'experiments',
                                    'optical_flow.py:smoke'),
         f'--checkpoint={reference}', f'--frame1={paths["left.png"]}',
         f'--frame2={paths["right.png"]}', f'--output={out_prefix}',
         f'--gt_disparity={paths["disp"]}']
  done = subprocess.run(cmd, env=_env(), capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'tile 36/36' in done.stderr  # progress over the tiles
  assert f'wrote {out_prefix}.flo' in done.stdout
  flow = flow_io.read_flo(out_prefix + '.flo')
  assert flow.shape == (40, 60, 2) and np.abs(flow).max() > 0
  png = flow_io.read_png(out_prefix + '.png')
  np.testing.assert_array_equal(png, colorwheel.flow_to_color(flow))
  # The printed EPE is the EPE of the written flow against the disparity.
  valid = disparity > 0
  epe = np.hypot(flow[..., 0] + disparity, flow[..., 1])[valid].mean()
  line = [l for l in done.stdout.splitlines() if l.startswith('EPE ')][0]
  assert abs(float(line.split()[1]) - epe) < 1e-3, line
  # A bad invocation explains itself.
  bad = subprocess.run(cmd + ['--random_init'], env=_env(),
                       capture_output=True, text=True, timeout=600)
  assert bad.returncode != 0 and 'exactly one of --checkpoint' in bad.stderr
