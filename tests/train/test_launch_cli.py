"""launch/eval.py and launch/export.py as a user runs them (real subprocesses
on the session's reference run)."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from perceiver import checkpoint_io
from perceiver import perceiver
from perceiver.train import checkpoint
from tests import training_fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def _run(script, workdir, flags, extra):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  # One device is enough here.
  env['XLA_FLAGS'] = training_fixtures.subprocess_xla_flags()
  return subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch', script),
       '--config=' + os.path.join(REPO, 'experiments', 'mnist.py:smoke'),
       f'--workdir={workdir}'] + flags + extra,
      env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_export_writes_the_checkpoint_in_release_format(
    reference_run, mnist_data_dir, tiny_flags, tmp_path):
  out_path = str(tmp_path / 'exported.pystate')
  out = _run('export.py', reference_run, tiny_flags(mnist_data_dir),
             [f'--output={out_path}'])
  assert out.returncode == 0, out.stderr[-3000:]
  assert checkpoint_io.verify_checksum(out_path)  # <output>.sha256, matching
  params, _ = checkpoint_io.load_params(out_path)
  # The run was saved on 2 devices; export restores it on one.
  ckpt = checkpoint.Checkpointer(os.path.join(reference_run, 'checkpoints'),
                                 read_only=True)
  saved = ckpt.restore(max(ckpt.all_steps()))['params']
  ckpt.close()
  # Trained scanned (the fast path), exported in the release's per-layer
  # layout.
  saved = perceiver.to_release_layout(saved)
  assert sorted(params) == sorted(saved)
  for module, leaves in saved.items():
    for name, value in leaves.items():
      np.testing.assert_array_equal(params[module][name], np.asarray(value))


@pytest.mark.slow
def test_eval_reports_test_accuracy(reference_run, mnist_data_dir, tiny_flags):
  out = _run('eval.py', reference_run, tiny_flags(mnist_data_dir),
             ['--split=test'])
  assert out.returncode == 0, out.stderr[-3000:]
  assert '"accuracy"' in out.stdout and '"num_examples": 10000' in out.stdout
  # The restore's Orbax INFO lines stay off the terminal by default (its
  # warnings are kept). Only Python's absl lines count: TensorFlow's C++
  # runtime may print its own INFO lines (oneDNN's notice on CPUs that have
  # it) before absl's log level is read, and those are not ours to silence.
  python_info = re.compile(r'^I\d{4} [\d:.]+ +\d+ [\w.]+\.py:\d+\]')
  info = [l for l in out.stderr.splitlines() if python_info.match(l)]
  assert info and all('trainer.py' in l for l in info), out.stderr[-3000:]


# --- Bad input ---------------------------------------------------------------


@pytest.mark.slow
def test_bad_step_flag_stops_at_flag_parsing(tmp_path):
  out = _run('eval.py', str(tmp_path / 'no_run'), [], ['--step=last'])
  assert out.returncode == 1
  assert ("--step='last': give 'latest', 'best' or a step number"
          in out.stderr), out.stderr[-3000:]
  assert 'Traceback' not in out.stderr  # absl's usage error, nothing built
  assert not os.path.exists(tmp_path / 'no_run')


@pytest.mark.slow
def test_failed_resume_prints_its_error_once(
    reference_run, mnist_data_dir, tiny_flags, tmp_path):
  """A changed model config on resume (it used to end in Orbax's shape error
  and a cascade of 'Event loop is closed' tracebacks): one error, printed
  last, naming the entry, the workdir and the way out."""
  workdir = tmp_path / 'run'
  shutil.copytree(os.path.join(reference_run, 'checkpoints'),
                  workdir / 'checkpoints')
  out = _run('train.py', str(workdir), tiny_flags(
      mnist_data_dir, **{'model.encoder.z_index_dim': 4}), [])
  assert out.returncode == 1, out.stderr[-3000:]
  assert out.stderr.count('checkpoint.ConfigMismatchError: The checkpoint of '
                          'step 8') == 1, out.stderr[-3000:]
  assert ('trainable_position_encoding/pos_embs  stored (8, 16), requested '
          '(4, 16)') in out.stderr
  assert 'give a new --workdir' in out.stderr
  assert out.stderr.count('Traceback') == 1
  assert 'Event loop is closed' not in out.stderr
  # The error is the last thing printed.
  assert 'init_from.include' in out.stderr.strip().splitlines()[-1]
