"""Test session setup.

Four forced host devices let the suite compare one device with many in a
single process. The flag must be set before JAX is imported anywhere.

`make test` runs the suite on two pytest-xdist workers (--dist loadgroup).
Tests that share a module-, class- or session-scoped fixture are sent to one
worker as a group, so that the fixture is built once, except the fixtures in
WORKER_SHARED, which every worker may use: they are cheap, or build what they
share on disk once for the whole run (training_fixtures.built_once). Tests
marked `alone` run with no other test beside them.
"""
import contextlib
import fcntl
import json
import os

import pytest

# XLA's backend (LLVM) optimisation level 0 in every test process (and the
# subprocesses, which inherit it; training_fixtures.subprocess_xla_flags):
# the same HLO optimisations, so results agree with the default level
# within the tests' tolerances (the golden, parity and seeded-init tests
# pass unchanged), and compiling, most of the suite's time, is faster: the
# quick tier took 2.5 to 2.8 min (4.4 to 4.9 min of CPU) instead of 3.4
# (6.2 of CPU) on 2 idle cores (2026-12-07).
# Benchmarks and users run at XLA's default level.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=4 '
                      '--xla_backend_optimization_level=0')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# Tests never touch a GPU/TPU even where one exists; results must match the
# golden float32 CPU outputs.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

# Fixtures every test folder shares (the embedded MNIST built once, the XLA
# compilation cache, experiment loading, the tiny training config).
# pylint: disable=unused-import,wrong-import-position
from tests.training_fixtures import compilation_cache  # noqa: E402,F401
from tests.training_fixtures import experiment  # noqa: E402,F401
from tests.training_fixtures import mnist_data_dir  # noqa: E402,F401
from tests.training_fixtures import tiny_config  # noqa: E402,F401


# Fixtures that train a model or build a dataset (15-40 s each): a test that
# needs one is in the slow tier (pytest.ini), whatever its own duration, so
# that `make quick` builds none of them.
TRAINED_FIXTURES = frozenset({
    'reference_run', 'one_step_each_way', 'two_process_run', 'mlm_run',
    'exported', 'four_device_run', 'flow_run', 'mnist_data_dir', 'multitask',
    'mlm_checkpoint', 'plateau_run', 'wheel',
})


# Session fixtures that need not keep their tests on one worker.
WORKER_SHARED = frozenset({
    'compilation_cache', 'mnist_data_dir', 'reference_run', 'tiny_data_dir',
    'bigbuckbunny', 'tmp_path_factory', 'worker_id', 'testrun_uid',
})


def _shared_instances(item):
  """Keys of the fixture instances `item` shares with other tests: (name,
  where it is defined[, the module or class it is built for])."""
  info = getattr(item, '_fixtureinfo', None)
  if info is None:
    return []
  module = item.nodeid.split('::')[0]
  keys = []
  for name in item.fixturenames:
    defs = info.name2fixturedefs.get(name)
    if not defs or defs[-1].scope == 'function' or name in WORKER_SHARED:
      continue
    fixture = defs[-1]
    if fixture.scope == 'session':
      keys.append((name, fixture.baseid))
    elif fixture.scope == 'class' and item.cls is not None:
      keys.append((name, fixture.baseid, f'{module}::{item.cls.__name__}'))
    else:  # module, package: per module is the same or finer
      keys.append((name, fixture.baseid, module))
  return keys


def pytest_collection_modifyitems(config, items):
  for item in items:
    if TRAINED_FIXTURES & set(getattr(item, 'fixturenames', ())):
      item.add_marker('slow')
  # Tests that share a fixture instance, directly or through a chain of
  # tests, form one group: the connected components of a union-find.
  parent = {}

  def find(key):
    while parent.setdefault(key, key) != key:
      key = parent[key]
    return key

  item_keys = [(item, _shared_instances(item)) for item in items]
  for _, keys in item_keys:
    for key in keys[1:]:
      parent[find(key)] = find(keys[0])
  groups = {}
  for item, keys in item_keys:
    if keys:
      root = find(keys[0])
      groups[item.nodeid] = f'{root[0]}:{root[-1]}'
  if os.environ.get('PYTEST_XDIST_WORKER'):
    # For _GroupScheduling in the controller, which collects nothing. Every
    # worker writes the same file.
    path = _run_root(config) / _GROUPS
    part = path.with_suffix(f'.{os.environ["PYTEST_XDIST_WORKER"]}')
    part.write_text(json.dumps(groups))
    part.replace(path)


def _run_root(config):
  """The run's temporary folder, above the workers' basetemps."""
  factory = config._tmp_path_factory  # pylint: disable=protected-access
  base = factory.getbasetemp()
  return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


_GROUPS = 'xdist_groups.json'


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
  """--dist loadgroup, with the groups of pytest_collection_modifyitems
  (xdist's own reads xdist_group marks into node ids, which pytest 9.2's
  node ids no longer take)."""
  if config.getvalue('dist') != 'loadgroup':
    return None
  from xdist.scheduler import LoadScopeScheduling  # pylint: disable=g-import-not-at-top

  class _GroupScheduling(LoadScopeScheduling):
    """Sends each group to one worker, and the other tests one by one."""
    groups = None

    def _split_scope(self, nodeid):
      if self.groups is None:  # every worker has collected by now
        self.groups = json.loads((_run_root(config) / _GROUPS).read_text())
      return self.groups.get(nodeid, nodeid)

  return _GroupScheduling(config, log)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  """Under pytest-xdist, a test marked `alone` waits until the other
  workers' tests end, and they wait for it (a readers-writer lock between
  the workers: flock on two files of the run's temporary folder)."""
  del nextitem  # unused
  if not os.environ.get('PYTEST_XDIST_WORKER'):
    yield
    return
  root = _run_root(item.config)
  alone = item.get_closest_marker('alone') is not None
  with contextlib.ExitStack() as stack:
    gate = stack.enter_context(open(root / 'alone.gate', 'a'))
    held = stack.enter_context(open(root / 'alone.held', 'a'))
    if alone:
      fcntl.flock(gate, fcntl.LOCK_EX)  # no new test starts
      fcntl.flock(held, fcntl.LOCK_EX)  # the running ones have ended
    else:
      fcntl.flock(gate, fcntl.LOCK_SH)
      fcntl.flock(held, fcntl.LOCK_SH)
      fcntl.flock(gate, fcntl.LOCK_UN)
    yield  # the files' locks go when they are closed
