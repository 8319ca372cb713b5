"""Fixtures for the data tests: the shared ones (tests/training_fixtures.py)."""
# pylint: disable=unused-import
from tests.training_fixtures import TINY, _tiny_config, compilation_cache
from tests.training_fixtures import experiment, load_experiment
from tests.training_fixtures import mnist_data_dir, tiny_config
