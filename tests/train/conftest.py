"""Fixtures for the training tests (the shared ones are in
tests/conftest.py): the reference run and the tiny config as flags."""
import pytest

from tests.training_fixtures import TINY, _tiny_config, built_once


@pytest.fixture(scope='session')
def reference_run(tmp_path_factory, mnist_data_dir):
  """tiny_config trained once on 2 devices under jit(shard_map): the run the
  other layouts (1, 4 devices, pmap, 2 processes, resumed) must match. One
  for the whole run (built_once): tests read it and copy from it, never
  write into it."""
  import jax  # pylint: disable=g-import-not-at-top
  from perceiver.train import trainer  # pylint: disable=g-import-not-at-top
  config = _tiny_config(mnist_data_dir)
  return built_once(
      tmp_path_factory, 'reference',
      lambda workdir: trainer.train_and_evaluate(config, workdir,
                                                 devices=jax.devices()[:2]))


@pytest.fixture
def tiny_flags():
  """Factory: the tiny config as --config.<key>=<value> flags (subprocesses)."""
  def make(data_dir, **overrides):
    values = {**TINY, 'input.data_dir': data_dir, **overrides}
    return [f'--config.{k}={v}' for k, v in values.items()]
  return make
