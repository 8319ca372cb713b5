"""Tokenizers: lossless round trips, special ids, word ids ([P] §4.1)."""
import random

import numpy as np
import pytest

from perceiver.tasks.language import tokenizers

_PIECES = [
    'the', 'Lord', 'said', 'unto', 'thee', "o'er", 'x', '42', '3.14', ',',
    '.', '?', '--', '[MASK]', '<s>', '<unk>', '<0x41>', ' ', '  ', '\n',
    '\n\n', '\t', '\r\n', '\u3000', '\xa0', '\u2028', '\x1f', '\x00',
    '\u2581', '\u2581\u2581', 'é', 'e\u0301', 'n\u0303\u0323', 'ﬁ', 'Ⅻ',
    '日本語', '中文字符', '한국어', 'ひらがな', 'Привет', 'مرحبا', 'שלום',
    '😀', '👍🏽', '👨\u200d👩\u200d👧', '🇫🇷', '\U0001F9EA', '\ufeff',
    '\U0010FFFD', '\u0300', '\ud7ff',
]


def _random_strings(n, seed=0):
  rng = random.Random(seed)
  out = []
  for _ in range(n):
    parts = []
    for _ in range(rng.randint(0, 12)):
      if rng.random() < 0.15:  # any non-surrogate code point
        c = rng.randint(0, 0x10FFFF)
        while 0xD800 <= c <= 0xDFFF:
          c = rng.randint(0, 0x10FFFF)
        parts.append(chr(c))
      else:
        parts.append(rng.choice(_PIECES))
    out.append(''.join(parts))
  return out


STRINGS = _random_strings(400) + [
    '', ' ', '   ', '\n', 'a', ' leading', 'trailing ', 'a  b', '▁', '▁▁ ▁',
    'To be, or not to be: that is the question.',
]


def test_round_trip_arbitrary_utf8(tokenizer):
  for s in STRINGS:
    ids = tokenizer.encode(s)
    assert ids.dtype == np.int32
    assert ((ids >= 0) & (ids < tokenizer.vocab_size)).all()
    # Text never produces special ids.
    assert not np.isin(ids, tokenizer.special_ids).any(), repr(s)
    assert tokenizer.decode(ids) == s, repr(s)


def test_byte_ids_are_release_ids(byte_tokenizer):
  s = 'Aé😀'
  assert byte_tokenizer.encode(s).tolist() == [b + 6 for b in s.encode()]
  assert byte_tokenizer.vocab_size == 262
  assert byte_tokenizer.decode([1, 71, 2, 0]) == 'A'  # Specials dropped.


def test_special_ids_shared(byte_tokenizer, spm_tokenizer):
  for tok in (byte_tokenizer, spm_tokenizer):
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id, tok.cls_id,
            tok.sep_id) == (0, 1, 2, 3, 4, 5)
  pieces = [spm_tokenizer.id_to_piece(i) for i in range(8)]
  assert pieces == ['<pad>', '<s>', '</s>', '[MASK]', '[CLS]', '[SEP]',
                    '<unk>', '<0x00>']
  assert spm_tokenizer.id_to_piece(262) == '<0xFF>'
  # Literal special-token text is ordinary text, not the special id.
  assert spm_tokenizer.mask_id not in spm_tokenizer.encode('[MASK]').tolist()
  assert spm_tokenizer.decode([3, 4, 5, 0]) == ''


def test_spm_vocab_bound_and_compression(spm_tokenizer, corpus):
  assert 263 < spm_tokenizer.vocab_size <= 2000
  text = corpus[0].text
  # A learned vocabulary must compress English prose well below bytes.
  assert len(spm_tokenizer.encode(text)) < 0.5 * len(text.encode())


def test_small_corpus_gives_smaller_vocab():
  tok = tokenizers.SentencePieceTokenizer(
      tokenizers.train_sentencepiece(['a tiny corpus of words'] * 3,
                                     vocab_size=32000))
  assert tok.vocab_size < 32000
  assert tok.decode(tok.encode('unseen ✓ text')) == 'unseen ✓ text'


def _surface(tokenizer, i):
  if isinstance(tokenizer, tokenizers.ByteTokenizer):
    return bytes([i - 6])
  piece = tokenizer.id_to_piece(i)
  if piece.startswith('<0x') and len(piece) == 6:
    return bytes([int(piece[3:5], 16)])
  return piece.replace('\u2581', ' ').encode()


def test_word_ids_match_str_split(tokenizer):
  for s in STRINGS:
    ids, word_ids = tokenizer.encode_with_word_ids(s)
    words = s.split()
    assert ids.shape == word_ids.shape
    assert sorted(set(word_ids.tolist()) - {-1}) == list(range(len(words)))
    # Word ids never decrease along the sequence.
    w = word_ids[word_ids >= 0]
    assert (np.diff(w) >= 0).all()
    for k, word in enumerate(words):
      surface = b''.join(_surface(tokenizer, i) for i in ids[word_ids == k])
      # A word's tokens spell the word, preceded at most by whitespace
      # (SentencePiece's "▁word" pieces).
      assert surface.decode().lstrip() == word, (repr(s), k)
      assert not surface.decode()[-1].isspace()
    for i in ids[word_ids < 0]:
      assert _surface(tokenizer, i).decode('utf-8', 'ignore').strip() == ''


def test_literal_sentencepiece_space_round_trips(spm_tokenizer):
  ids = spm_tokenizer.encode('a\u2581b')
  assert spm_tokenizer.decode(ids) == 'a\u2581b'
  assert spm_tokenizer.decode(spm_tokenizer.encode('a b')) == 'a b'


def test_save_and_load(spm_tokenizer, tmp_path):
  path = str(tmp_path / 'spm.model')
  spm_tokenizer.save(path)
  loaded = tokenizers.make_tokenizer('sentencepiece', path)
  s = 'Thou art more lovely and more temperate'
  assert loaded.encode(s).tolist() == spm_tokenizer.encode(s).tolist()


def test_bad_inputs(byte_tokenizer, spm_tokenizer):
  with pytest.raises(TypeError, match='text'):
    byte_tokenizer.encode(b'bytes')
  with pytest.raises(ValueError, match=r'ids.*\[0, 262\)'):
    byte_tokenizer.decode([300])
  with pytest.raises(ValueError, match='1-D'):
    spm_tokenizer.decode(np.zeros([2, 2], np.int32))
  with pytest.raises(ValueError, match='vocab_size'):
    tokenizers.train_sentencepiece(['x'], vocab_size=100)
  with pytest.raises(ValueError, match='sentencepiece_model'):
    tokenizers.make_tokenizer('sentencepiece')
  with pytest.raises(ValueError, match="'bytes' or 'sentencepiece'"):
    tokenizers.make_tokenizer('wordpiece')
