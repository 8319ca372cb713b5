"""Real processes: SIGKILL mid-run, a save killed mid-write, and two JAX
processes on localhost (jax.distributed + gloo) against one process."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from perceiver.train import checkpoint
from perceiver.train import trainer
from tests import training_fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PY = sys.executable


def _env(devices=None):
  env = dict(os.environ)
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  env['JAX_PLATFORMS'] = 'cpu'
  env['TF_CPP_MIN_LOG_LEVEL'] = '3'
  if devices:
    env['XLA_FLAGS'] = training_fixtures.subprocess_xla_flags(devices)
  return env


def _final_params(workdir, config):
  ts, step = trainer.restore_state(config, workdir,
                                   devices=jax.devices()[:1])
  return step, jax.device_get(ts.params)


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_parameters(
    tmp_path, mnist_data_dir, tiny_config, tiny_flags):
  steps = 80  # killed once step 40 is saved, with ~40 steps to go
  overrides = dict(num_train_steps=steps, checkpoint_every=20)
  workdir = str(tmp_path / 'killed')
  cmd = [PY, os.path.join(REPO, 'launch', 'train.py'),
         '--config=' + os.path.join(REPO, 'experiments', 'mnist.py:smoke'),
         f'--workdir={workdir}'] + tiny_flags(mnist_data_dir, **overrides)
  proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + 240
  try:
    while not os.path.isdir(os.path.join(ckpt_dir, '40')):
      assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
      assert time.time() < deadline, 'no checkpoint within 240 s'
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait()
  assert proc.returncode == -signal.SIGKILL
  done = checkpoint.Checkpointer(ckpt_dir, read_only=True).all_steps()
  assert steps not in done and max(done) < steps, done

  config = tiny_config(mnist_data_dir, **overrides)
  trainer.train_and_evaluate(config, workdir)  # resumes from max(done)
  straight = str(tmp_path / 'straight')
  trainer.train_and_evaluate(config, straight)
  step_a, a = _final_params(workdir, config)
  step_b, b = _final_params(straight, config)
  assert step_a == step_b == steps
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


_SAVER = r'''
import sys, numpy as np
from perceiver.train import checkpoint
ckpt = checkpoint.Checkpointer(sys.argv[1], keep=5)
ckpt.save(1, {'w': np.arange(10, dtype=np.float32)})
ckpt.wait()
big = {f'w{i}': np.full((1 << 22,), i, np.float32) for i in range(64)}
print('saving', flush=True)
ckpt.save(2, big)  # 1 GiB: killed while it is written
import time; time.sleep(600)
'''


@pytest.mark.slow
def test_interrupted_save_is_never_picked_up(tmp_path):
  directory = str(tmp_path / 'ckpts')
  proc = subprocess.Popen([PY, '-c', _SAVER, directory], env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  seen_tmp = False
  deadline = time.time() + 120
  try:
    while time.time() < deadline:
      names = os.listdir(directory) if os.path.isdir(directory) else []
      if any(n.startswith('2.') or 'tmp' in n and n.startswith('2')
             for n in names):
        seen_tmp = True
        break
      assert '2' not in names, 'step 2 finished before it could be killed'
      assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
      time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait()
  assert seen_tmp, 'the save of step 2 never started'
  assert '2' not in os.listdir(directory)
  reader = checkpoint.Checkpointer(directory, read_only=True)
  assert list(reader.all_steps()) == [1]
  np.testing.assert_array_equal(reader.restore(1)['w'], np.arange(10))
  # A new writer removes the partial directory and keeps going.
  writer = checkpoint.Checkpointer(directory, keep=5)
  writer.save(3, {'w': np.ones(3, np.float32)})
  writer.wait()
  assert list(writer.all_steps()) == [1, 3]
  assert not [n for n in os.listdir(directory) if 'tmp' in n]


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _launch_two(workdir, flags, extra=()):
  """Both processes of a 2-process localhost job (one CPU device each)."""
  port = _free_port()
  return [subprocess.Popen(
      [PY, os.path.join(REPO, 'launch', 'train.py'),
       '--config=' + os.path.join(REPO, 'experiments', 'mnist.py:smoke'),
       f'--workdir={workdir}', f'--coordinator_address=localhost:{port}',
       '--num_processes=2', f'--process_id={i}', *extra] + flags,
      env=_env(devices=1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
          for i in range(2)]


def _finish(procs, timeout):
  """Waits for every process; fails (killing them) past `timeout` s."""
  try:
    errs = [p.communicate(timeout=timeout)[1].decode() for p in procs]
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
      p.wait()
    pytest.fail(f'a two-process run did not finish within {timeout} s')
  for p, err in zip(procs, errs):
    assert p.returncode == 0, err[-4000:]


@pytest.fixture(scope='module')
def two_process_run(tmp_path_factory, mnist_data_dir):
  """The tiny config trained by 2 processes x 1 CPU device through
  jax.distributed (gloo), uninterrupted: the workdir."""
  from tests.training_fixtures import TINY  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path_factory.mktemp('two_processes'))
  flags = [f'--config.{k}={v}' for k, v in
           {**TINY, 'input.data_dir': mnist_data_dir}.items()]
  _finish(_launch_two(workdir, flags), timeout=240)
  return workdir


@pytest.mark.slow
@pytest.mark.alone  # time limits that assume no process is starved
def test_two_processes_train_like_one(two_process_run, mnist_data_dir,
                                      tiny_config, reference_run):
  """2 processes x 1 CPU device through jax.distributed (gloo) == 1 process
  with 2 devices (the reference run). input.num_shards=2 makes the global
  batch the same: each process reads only its own shard."""
  config = tiny_config(mnist_data_dir)
  step_a, a = _final_params(two_process_run, config)
  step_b, b = _final_params(reference_run, config)
  assert step_a == step_b == 8
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.alone
def test_lost_process_ends_the_job_and_a_relaunch_resumes(
    tmp_path, mnist_data_dir, tiny_config, tiny_flags, two_process_run):
  """SIGKILL process 1 mid-run: process 0 exits non-zero within the
  heartbeat timeout (+ a 3 s roll call), naming process 1 and the last
  checkpoint; relaunching both ends bit-identical to the uninterrupted
  two-process run. A checkpoint every step (the same training: saving does
  not touch the numbers) keeps the run busy long enough to be killed in."""
  heartbeat, bound = 10, 60
  flags = tiny_flags(mnist_data_dir, checkpoint_every=1)
  extra = [f'--heartbeat_timeout_seconds={heartbeat}']
  workdir = str(tmp_path / 'broken')
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  procs = _launch_two(workdir, flags, extra)
  deadline = time.time() + 240
  try:
    while not [n for n in (os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir)
                           else []) if n.isdigit() and int(n) >= 2]:
      for p in procs:
        assert p.poll() is None, p.stderr.read().decode()[-3000:]
      assert time.time() < deadline, 'no checkpoint within 240 s'
      time.sleep(0.01)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    try:
      _, err = procs[0].communicate(timeout=bound + 30)
    except subprocess.TimeoutExpired:
      pytest.fail(f'process 0 still runs {bound + 30} s after process 1 was '
                  'killed')
    waited = time.time() - killed
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.wait()
  err = err.decode()
  assert procs[1].returncode == -signal.SIGKILL
  assert procs[0].returncode != 0, err[-4000:]
  assert waited < bound, f'process 0 took {waited:.1f} s to stop'
  done = checkpoint.Checkpointer(ckpt_dir, read_only=True).all_steps()
  assert 8 not in done, f'the run ended before the kill: {done}'
  # Killed in a collective (gloo fails at once), process 0 reports itself;
  # waiting in an Orbax barrier, it is ended by the coordination service,
  # whose line names the task, after our line of its latest save.
  ours = 'Lost process 1 of 2' in err
  assert ours or re.search(r'Task 1 heartbeat timeout|stopped sending '
                           r'heartbeats\):\s+1\b', err), err[-4000:]
  named = re.findall(r'[Ll]ast checkpoint: step (\d+) at (\S+?)\.?\s', err)
  assert named, err[-4000:]
  step, path = named[-1]
  assert int(step) in done and path == os.path.join(ckpt_dir, step), named
  print(f'process 0 exited {waited:.1f} s after the SIGKILL of process 1 '
        f'({"its own report" if ours else "the coordination service"})')

  _finish(_launch_two(workdir, flags, extra), timeout=240)  # the same command
  config = tiny_config(mnist_data_dir)
  step_a, a = _final_params(workdir, config)
  step_b, b = _final_params(two_process_run, config)
  assert step_a == step_b == 8
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
