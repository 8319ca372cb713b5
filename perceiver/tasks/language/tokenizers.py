"""Tokenizers for Perceiver IO language experiments ([P] §4.1, Table 11).

[P] §4.1, Table 11: the bytes models read raw UTF-8 (vocabulary 262 in the release:
PAD 0, BOS 1, EOS 2, MASK 3, CLS 4, SEP 5, then byte b at id b + 6); the
"Base" models read a 32k SentencePiece (SPM) unigram vocabulary.

Both tokenizers here share one interface, `Tokenizer`:

  encode(text) -> ids                       # int32 [L]
  encode_with_word_ids(text) -> (ids, wid)  # int32 [L], int32 [L]
  decode(ids) -> text
  vocab_size, pad_id, bos_id, eos_id, mask_id, cls_id, sep_id

`word_ids` drive whole-word masking (`perceiver.tasks.language.masking`): a word is
a maximal run of non-whitespace characters (Python `str.split()`), words are
numbered 0, 1, ... in order, and a token gets the number of the word it
overlaps, or -1 if it holds whitespace only.

Shape glossary: L number of tokens of one text.

SentencePiece decisions (the paper says only "SentencePiece, 32k"):
* DEVIATION: the vocabulary is trained offline here, on whatever corpus is
  given (the paper trained on C4+Wikipedia; its vocabulary was not released).
  `train_sentencepiece` defaults to 32,000 pieces and treats the number as an
  upper bound (`hard_vocab_limit=False`) so that small corpora give a smaller
  vocabulary instead of an error.
* Special ids match the bytes tokenizer: PAD 0, BOS 1, EOS 2, MASK 3, CLS 4,
  SEP 5. SPM also needs an unknown piece: it sits at 6 and is never produced,
  because `byte_fallback` spells any character outside the vocabulary as its
  UTF-8 bytes (ids 7..262, pieces <0x00>..<0xFF>). MASK/CLS/SEP are *control*
  symbols: literal text such as "[MASK]" is never turned into them.
* Lossless: identity normalisation (no NFKC), no whitespace collapsing, no
  dummy prefix, so decode(encode(s)) == s for every valid Unicode string.
  SPM writes a space as U+2581 ("▁"); a literal U+2581 in the input is
  therefore spelled with its three byte pieces so that it decodes back to
  U+2581 rather than to a space.
* Word boundaries: text is cut into chunks "leading whitespace + one word"
  (regex `\\s*\\S+`) and each chunk is encoded on its own, so no piece ever
  spans two words (SPM itself splits only at U+0020, not at newlines or tabs).
  Within a chunk, SPM's usual "▁word" pieces keep their leading space; such a
  piece belongs to the word. Pieces that hold whitespace only belong to no
  word. The trainer is fed the same chunks, so training and encoding agree.
"""
import abc
import io
import re
from typing import Iterable, Optional, Tuple

import numpy as np

from perceiver import bytes_tokenizer

# Ids shared by both tokenizers (the release's reserved ids).
PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
MASK_ID = 3
CLS_ID = 4
SEP_ID = 5
NUM_SPECIAL = 6
# SentencePiece only.
SPM_UNK_ID = 6
SPM_FIRST_BYTE_ID = 7

# Leading whitespace plus one word, or trailing whitespace.
_CHUNK_RE = re.compile(r'\s*\S+|\s+')
# Every code point for which str.isspace() is true (as used by str.split()).
_WHITESPACE_CODEPOINTS = np.array(
    [c for c in range(0x110000) if chr(c).isspace()], dtype=np.uint32)
_SPM_SPACE = '\u2581'


def _codepoints(text: str) -> np.ndarray:
  """Unicode code points of `text` as uint32 [number of characters]."""
  return np.frombuffer(text.encode('utf-32-le'), dtype=np.uint32)


def _check_text(text, fn_name: str) -> str:
  if not isinstance(text, str):
    raise TypeError(
        f'{fn_name}: `text` must be a str, got {type(text).__name__}; decode '
        'bytes first (e.g. text.decode("utf-8")).')
  return text


def _check_ids(ids, vocab_size: int, fn_name: str) -> np.ndarray:
  ids = np.asarray(ids)
  if ids.ndim == 1 and ids.size == 0:
    return ids.astype(np.int32)
  if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(
        f'{fn_name}: `ids` must be a 1-D integer array, got shape {ids.shape} '
        f'and dtype {ids.dtype}; decode one sequence at a time.')
  if ids.min() < 0 or ids.max() >= vocab_size:
    raise ValueError(
        f'{fn_name}: `ids` must lie in [0, {vocab_size}), got values in '
        f'[{ids.min()}, {ids.max()}].')
  return ids.astype(np.int32)


class Tokenizer(abc.ABC):
  """Common interface of the byte-level and SentencePiece tokenizers."""

  pad_id: int = PAD_ID
  bos_id: int = BOS_ID
  eos_id: int = EOS_ID
  mask_id: int = MASK_ID
  cls_id: int = CLS_ID
  sep_id: int = SEP_ID

  @property
  @abc.abstractmethod
  def name(self) -> str:
    """Short name used in configs: 'bytes' or 'sentencepiece'."""

  @property
  @abc.abstractmethod
  def vocab_size(self) -> int:
    """Number of ids, special ids included."""

  @property
  @abc.abstractmethod
  def default_sequence_length(self) -> int:
    """Pretraining length T ([P] §4.1): 2048 bytes or 512 SPM tokens."""

  @abc.abstractmethod
  def encode_with_word_ids(self, text: str) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (ids int32 [L], word_ids int32 [L]); -1 marks whitespace."""

  @abc.abstractmethod
  def decode(self, ids) -> str:
    """Inverse of `encode`; special ids are dropped."""

  def encode(self, text: str) -> np.ndarray:
    """Returns ids int32 [L] (no BOS/EOS added)."""
    return self.encode_with_word_ids(text)[0]

  @property
  def special_ids(self) -> np.ndarray:
    """Ids that never stand for text."""
    return np.arange(NUM_SPECIAL, dtype=np.int32)

  @property
  def replacement_ids(self) -> np.ndarray:
    """Ids that BERT-style random replacement may draw (all ordinary ids)."""
    return np.arange(NUM_SPECIAL, self.vocab_size, dtype=np.int32)


class ByteTokenizer(Tokenizer):
  """Adapter over the release-compatible `perceiver.bytes_tokenizer`."""

  def __init__(self):
    self._tok = bytes_tokenizer.BytesTokenizer()
    ours = (PAD_ID, BOS_ID, EOS_ID, MASK_ID, CLS_ID, SEP_ID)
    theirs = (self._tok.pad_token, self._tok.bos_token, self._tok.eos_token,
              self._tok.mask_token, self._tok.cls_token, self._tok.sep_token)
    if ours != theirs:
      raise RuntimeError(
          f'perceiver.bytes_tokenizer special ids {theirs} differ from the '
          f'ids {ours} this module assumes; update perceiver/tasks/language.')

  @property
  def name(self) -> str:
    return 'bytes'

  @property
  def vocab_size(self) -> int:
    return self._tok.vocab_size

  @property
  def default_sequence_length(self) -> int:
    return 2048

  def encode(self, text: str) -> np.ndarray:
    return self._tok.to_int(_check_text(text, 'ByteTokenizer.encode'))

  def encode_with_word_ids(self, text: str) -> Tuple[np.ndarray, np.ndarray]:
    text = _check_text(text, 'ByteTokenizer.encode_with_word_ids')
    ids = self._tok.to_int(text)
    cp = _codepoints(text)
    is_space = np.isin(cp, _WHITESPACE_CODEPOINTS)
    previous_is_space = np.concatenate([[True], is_space[:-1]])
    word_start = ~is_space & previous_is_space
    char_word = np.where(is_space, -1, np.cumsum(word_start) - 1)
    utf8_len = (1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800)
                + (cp >= 0x10000))
    word_ids = np.repeat(char_word, utf8_len).astype(np.int32)
    assert word_ids.shape == ids.shape, (word_ids.shape, ids.shape)
    return ids, word_ids

  def decode(self, ids) -> str:
    ids = _check_ids(ids, self.vocab_size, 'ByteTokenizer.decode')
    return self._tok.to_string(ids)


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int = 32000,
    *,
    character_coverage: float = 0.9995,
    max_sentence_chunks: int = 5_000_000,
    num_threads: int = 2,
) -> bytes:
  """Trains a SentencePiece unigram model offline; returns the model proto.

  Args:
    texts: the training corpus, one document per item.
    vocab_size: upper bound on the vocabulary ([P] Base: 32,000). Small
      corpora yield fewer pieces. Must be at least 300: 7 special/unknown ids
      and 256 byte pieces come first.
    character_coverage: fraction of characters that get their own piece; the
      rest are spelled with byte pieces.
    max_sentence_chunks: cap on the word chunks passed to the trainer.
    num_threads: trainer threads.

  Returns:
    The serialized model; pass it to `SentencePieceTokenizer`.
  """
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  if vocab_size < 300:
    raise ValueError(
        f'train_sentencepiece: `vocab_size` must be >= 300 (7 reserved ids + '
        f'256 byte pieces + some learned pieces), got {vocab_size}.')

  def chunks():
    count = 0
    for text in texts:
      for chunk in _CHUNK_RE.findall(_check_text(text, 'train_sentencepiece')):
        yield chunk.replace(_SPM_SPACE, ' ')
        count += 1
        if count >= max_sentence_chunks:
          return

  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=chunks(),
      model_writer=model,
      model_type='unigram',
      vocab_size=vocab_size,
      hard_vocab_limit=False,
      pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=SPM_UNK_ID,
      pad_piece='<pad>', bos_piece='<s>', eos_piece='</s>', unk_piece='<unk>',
      control_symbols=['[MASK]', '[CLS]', '[SEP]'],
      byte_fallback=True,
      normalization_rule_name='identity',
      remove_extra_whitespaces=False,
      add_dummy_prefix=False,
      allow_whitespace_only_pieces=True,
      split_digits=False,
      character_coverage=character_coverage,
      num_threads=num_threads,
      minloglevel=2,
  )
  return model.getvalue()


class SentencePieceTokenizer(Tokenizer):
  """Lossless, word-boundary-respecting wrapper of a SentencePiece model.

  Expects a model laid out by `train_sentencepiece` (special ids 0..5, unknown
  6, byte pieces 7..262).
  """

  def __init__(self, model_proto: bytes):
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    if not isinstance(model_proto, (bytes, bytearray)) or not model_proto:
      raise TypeError(
          'SentencePieceTokenizer: `model_proto` must be the non-empty bytes '
          'returned by train_sentencepiece(); to load a file use '
          'SentencePieceTokenizer.from_file(path).')
    self._sp = spm.SentencePieceProcessor(model_proto=bytes(model_proto))
    self._proto = bytes(model_proto)
    expected = {PAD_ID: '<pad>', BOS_ID: '<s>', EOS_ID: '</s>',
                MASK_ID: '[MASK]', CLS_ID: '[CLS]', SEP_ID: '[SEP]',
                SPM_UNK_ID: '<unk>', SPM_FIRST_BYTE_ID: '<0x00>',
                SPM_FIRST_BYTE_ID + 255: '<0xFF>'}
    for i, piece in expected.items():
      if self._sp.id_to_piece(i) != piece:
        raise ValueError(
            f'SentencePieceTokenizer: id {i} is {self._sp.id_to_piece(i)!r}, '
            f'expected {piece!r}; train the model with train_sentencepiece().')
    n = self._sp.get_piece_size()
    # Bytes of text that each id stands for (0 for control/unknown ids).
    lengths = np.zeros([n], np.int64)
    for i in range(n):
      if self._sp.is_byte(i):
        lengths[i] = 1
      elif not (self._sp.is_control(i) or self._sp.is_unknown(i)):
        lengths[i] = len(
            self._sp.id_to_piece(i).replace(_SPM_SPACE, ' ').encode('utf-8'))
    self._surface_bytes = lengths
    self._literal_space_ids = [
        SPM_FIRST_BYTE_ID + b for b in _SPM_SPACE.encode('utf-8')]

  @classmethod
  def from_file(cls, path: str) -> 'SentencePieceTokenizer':
    with open(path, 'rb') as f:
      return cls(f.read())

  def save(self, path: str) -> None:
    with open(path, 'wb') as f:
      f.write(self._proto)

  @property
  def model_proto(self) -> bytes:
    return self._proto

  @property
  def name(self) -> str:
    return 'sentencepiece'

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def default_sequence_length(self) -> int:
    return 512

  @property
  def special_ids(self) -> np.ndarray:
    return np.arange(SPM_UNK_ID + 1, dtype=np.int32)

  @property
  def replacement_ids(self) -> np.ndarray:
    return np.arange(SPM_UNK_ID + 1, self.vocab_size, dtype=np.int32)

  def id_to_piece(self, i: int) -> str:
    return self._sp.id_to_piece(int(i))

  def _encode_chunks(self, chunks):
    """Encodes each chunk on its own; literal U+2581 becomes byte pieces."""
    if not any(_SPM_SPACE in c for c in chunks):
      return self._sp.encode(chunks)
    out = []
    for chunk in chunks:
      parts = chunk.split(_SPM_SPACE)
      encoded = self._sp.encode(parts)
      ids = list(encoded[0])
      for part_ids in encoded[1:]:
        ids.extend(self._literal_space_ids)
        ids.extend(part_ids)
      out.append(ids)
    return out

  def encode_with_word_ids(self, text: str) -> Tuple[np.ndarray, np.ndarray]:
    text = _check_text(text, 'SentencePieceTokenizer.encode_with_word_ids')
    chunks = _CHUNK_RE.findall(text)
    if not chunks:
      return np.zeros([0], np.int32), np.zeros([0], np.int32)
    encoded = self._encode_chunks(chunks)
    counts = np.array([len(c) for c in encoded], np.int64)
    ids = np.fromiter((i for c in encoded for i in c), np.int32,
                      count=int(counts.sum()))
    chunk_bytes = np.array([len(c.encode('utf-8')) for c in chunks], np.int64)
    space_bytes = np.array(
        [len(c.encode('utf-8')) - len(c.lstrip().encode('utf-8'))
         for c in chunks], np.int64)
    chunk_start = np.cumsum(chunk_bytes) - chunk_bytes
    token_chunk = np.repeat(np.arange(len(chunks)), counts)
    token_end = np.cumsum(self._surface_bytes[ids])
    if token_end[-1] != chunk_bytes.sum():
      raise RuntimeError(
          'SentencePieceTokenizer: pieces do not cover the text byte for byte; '
          'the model must use identity normalisation (train_sentencepiece).')
    # A token belongs to its chunk's word iff it ends past the leading spaces.
    in_word = token_end > (chunk_start + space_bytes)[token_chunk]
    word_ids = np.where(in_word, token_chunk, -1).astype(np.int32)
    return ids, word_ids

  def decode(self, ids) -> str:
    ids = _check_ids(ids, self.vocab_size, 'SentencePieceTokenizer.decode')
    ids = ids[ids > SPM_UNK_ID]  # Drop special ids, as ByteTokenizer does.
    return self._sp.decode(ids.tolist())


def make_tokenizer(kind: str,
                   sentencepiece_model: Optional[str] = None) -> Tokenizer:
  """Builds a tokenizer by config name.

  Args:
    kind: 'bytes' or 'sentencepiece'.
    sentencepiece_model: path to a model file written by
      `SentencePieceTokenizer.save` (required for 'sentencepiece').
  """
  if kind == 'bytes':
    return ByteTokenizer()
  if kind == 'sentencepiece':
    if not sentencepiece_model:
      raise ValueError(
          "make_tokenizer: kind='sentencepiece' needs `sentencepiece_model`, "
          'the path of a model saved from train_sentencepiece(); train one '
          'with perceiver.tasks.language.tokenizers.train_sentencepiece.')
    return SentencePieceTokenizer.from_file(sentencepiece_model)
  raise ValueError(
      f"make_tokenizer: `kind` must be 'bytes' or 'sentencepiece', got {kind!r}.")
