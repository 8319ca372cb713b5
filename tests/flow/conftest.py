"""Shared fixtures of the flow tests: the smoke experiment's config."""
import pytest

from tests.training_fixtures import load_experiment


@pytest.fixture
def smoke_config():
  return load_experiment('optical_flow', 'smoke')
