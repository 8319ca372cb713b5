"""UTF-8 bytes tokenizer, compatible with DeepMind's release.

[P] §4.1: the bytes model reads raw UTF-8. The release reserves 6 ids
(PAD 0, BOS 1, EOS 2, MASK 3, CLS 4, SEP 5) and shifts every byte by 6, so the
vocabulary has 262 entries (the paper says 256 + 4; the released checkpoint
has 262, which is what we keep).
"""
from typing import Union

import numpy as np

_NUM_RESERVED = 6  # PAD, BOS, EOS, MASK, CLS, SEP


class BytesTokenizer:
  """Maps text to its UTF-8 bytes shifted past the reserved ids, and back."""

  def __init__(self):
    self._num_reserved_tokens = _NUM_RESERVED

  def to_string(self, inputs: np.ndarray) -> str:
    """Decodes ids to text; reserved ids are dropped, bad UTF-8 replaced."""
    ids = np.asarray(inputs)
    byte_ids = ids[ids >= self._num_reserved_tokens] - self._num_reserved_tokens
    return byte_ids.astype(np.uint8).tobytes().decode('utf-8', errors='replace')

  def to_int(self, inputs: Union[str, bytes]) -> np.ndarray:
    """Encodes text (or raw bytes) to int32 ids."""
    if isinstance(inputs, str):
      inputs = inputs.encode('utf-8')
    elif not isinstance(inputs, (bytes, bytearray)):
      raise TypeError(
          f'BytesTokenizer.to_int expects str or bytes, got {type(inputs)}.')
    raw = np.frombuffer(bytes(inputs), dtype=np.uint8).astype(np.int32)
    return raw + self._num_reserved_tokens

  @property
  def vocab_size(self) -> int:
    return 256 + self._num_reserved_tokens

  @property
  def pad_token(self) -> int:
    return 0

  @property
  def bos_token(self) -> int:
    return 1

  @property
  def eos_token(self) -> int:
    return 2

  @property
  def mask_token(self) -> int:
    return 3

  @property
  def cls_token(self) -> int:
    return 4

  @property
  def sep_token(self) -> int:
    return 5
