"""Test session setup.

Four forced host devices let the suite compare one device with many in a
single process. The flag must be set before JAX is imported anywhere.
"""
import os

os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=4')
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


def pytest_collection_modifyitems(config, items):
  del config  # unused
  for item in items:
    if TRAINED_FIXTURES & set(getattr(item, 'fixturenames', ())):
      item.add_marker('slow')
