"""launch/eval.py and launch/export.py as a user runs them (real subprocesses
on the session's reference run)."""
import os
import subprocess
import sys

import numpy as np

from perceiver import checkpoint_io
from perceiver.train import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def _run(script, workdir, flags, extra):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)  # one device is enough here
  return subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch', script),
       '--config=' + os.path.join(REPO, 'experiments', 'mnist.py:smoke'),
       f'--workdir={workdir}'] + flags + extra,
      env=env, capture_output=True, text=True, timeout=300)


def test_export_writes_the_checkpoint_in_release_format(
    reference_run, mnist_data_dir, tiny_flags, tmp_path):
  out_path = str(tmp_path / 'exported.pystate')
  out = _run('export.py', reference_run, tiny_flags(mnist_data_dir),
             [f'--output={out_path}'])
  assert out.returncode == 0, out.stderr[-3000:]
  params, _ = checkpoint_io.load_params(out_path)
  # The run was saved on 2 devices; export restores it on one.
  ckpt = checkpoint.Checkpointer(os.path.join(reference_run, 'checkpoints'),
                                 read_only=True)
  saved = ckpt.restore(max(ckpt.all_steps()))['params']
  ckpt.close()
  assert sorted(params) == sorted(saved)
  for module, leaves in saved.items():
    for name, value in leaves.items():
      np.testing.assert_array_equal(params[module][name], np.asarray(value))


def test_eval_reports_test_accuracy(reference_run, mnist_data_dir, tiny_flags):
  out = _run('eval.py', reference_run, tiny_flags(mnist_data_dir),
             ['--split=test'])
  assert out.returncode == 0, out.stderr[-3000:]
  assert '"accuracy"' in out.stdout and '"num_examples": 10000' in out.stdout
  # The restore's Orbax INFO lines stay off the terminal by default (its
  # warnings are kept).
  info = [l for l in out.stderr.splitlines() if l.startswith('I')]
  assert info and all('trainer.py' in l for l in info), out.stderr[-3000:]
