r"""Greedy fill-in of masked spans with a Perceiver IO MLM ([P] §4.1).

What the release's MLM colab does, for any of our MLM configs: tokenize the
text, replace the masked tokens with MASK (id 3), pad to max_seq_len with
PAD (0) and input_mask 0, run the model once and take the argmax at each
masked position.

Shape glossary: B texts, T = max_seq_len, V vocabulary, L tokens of a text.

Mask syntax (`parse_masked_text`); counts are in tokens, i.e. bytes for the
bytes models (a non-ASCII character is 2-4 bytes), pieces for SentencePiece:
  [MASK]       one masked token.
  [MASK:n]     n masked tokens, n >= 1:  "The [MASK:3] sat on the mat."
  mask_char    optional: every occurrence of this one character (e.g. '_')
               is one masked token: "The ___ sat on the mat."
  \[           a literal '['  (so "\[MASK]" is the text "[MASK]").
  \<mask_char> a literal mask_char.
Adjacent masked tokens form one span. Any other "[MASK..." is an error, so a
typo never silently becomes text.

DEVIATION (the release colab does not restrict it): the argmax runs over ordinary ids only (`tokenizer.replacement_ids`:
bytes, or SentencePiece pieces); the reserved ids (PAD, BOS, EOS, MASK, CLS,
SEP, <unk>) are never filled in, so a span of n tokens is filled with n
tokens of text. The release's colab takes the argmax over all 262 ids.

`fill_mask(params, texts, config)` takes params from anywhere:
`load_release_params` reads a release-format .pickle/.pystate (such as the
released language_perceiver_io_bytes.pickle); a training workdir's params
can be passed in directly.
"""
import dataclasses
import functools
import os
import re
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from perceiver import checkpoint_io
from perceiver import checks
from perceiver import perceiver
from perceiver.tasks.language import models
from perceiver.tasks.language import tokenizers

_MASK_RE = r'\[MASK(?::(?P<count>\d+))?\]'
_BAD_MASK_RE = r'\[MASK[^\]\s]*\]?'


@dataclasses.dataclass(frozen=True)
class MaskedText:
  """A parsed text: token ids with MASK at the masked positions."""
  ids: np.ndarray                      # int32 [L]
  spans: Tuple[Tuple[int, int], ...]   # (start, length) of each masked span

  @property
  def mask(self) -> np.ndarray:
    """bool [L], True at masked positions."""
    mask = np.zeros(self.ids.shape, bool)
    for start, length in self.spans:
      mask[start:start + length] = True
    return mask


@dataclasses.dataclass(frozen=True)
class FillResult:
  source: str                          # The text as given, mask syntax and all.
  text: str                            # The text with every span filled.
  fills: Tuple[str, ...]               # The decoded fill of each span.
  fill_ids: Tuple[np.ndarray, ...]     # int32 [span length] for each span.


def check_mask_char(mask_char: str) -> str:
  """mask_char must be one character other than '[', ']' and '\\'."""
  if not isinstance(mask_char, str) or len(mask_char) != 1 or (
      mask_char in '[]\\'):
    raise ValueError(f'mask_char must be one character other than [, ] and '
                     f'\\; got {mask_char!r}.')
  return mask_char


def check_checkpoint_path(path: str) -> str:
  """A release-format .pickle/.pystate file that exists."""
  checkpoint_io.check_extension(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'No checkpoint file at {path}.')
  return path


def parse_masked_text(text: str, tokenizer: tokenizers.Tokenizer,
                      mask_char: Optional[str] = None) -> MaskedText:
  """Tokenizes `text`, turning the mask syntax (module docstring) into MASK.

  Raises:
    ValueError: a malformed "[MASK...]", [MASK:0], a mask_char that is not one
      character, or a text without any mask.
  """
  if not isinstance(text, str):
    raise TypeError(f'text must be a str; got {type(text).__name__}.')
  alternatives = [r'(?P<escape>\\\[)', f'(?P<mask>{_MASK_RE})',
                  f'(?P<bad>{_BAD_MASK_RE})']
  if mask_char is not None:
    check_mask_char(mask_char)
    alternatives += [f'(?P<char_escape>\\\\{re.escape(mask_char)})',
                     f'(?P<char>{re.escape(mask_char)})']
  pattern = re.compile('|'.join(alternatives))

  pieces = []  # Literal strings, or ints (a number of masked tokens).
  literal, pos = [], 0
  for match in pattern.finditer(text):
    literal.append(text[pos:match.start()])
    pos = match.end()
    group = {k: v for k, v in match.groupdict().items() if v is not None}
    if 'escape' in group:
      literal.append('[')
    elif 'char_escape' in group:
      literal.append(mask_char)
    elif 'bad' in group:
      raise ValueError(
          f'Malformed mask {group["bad"]!r} at character {match.start()} of '
          f'{text!r}; write [MASK] or [MASK:n] (n >= 1), or \\[ for a '
          'literal "[".')
    else:
      count = 1 if 'char' in group else int(group.get('count', 1))
      if count < 1:
        raise ValueError(f'{group["mask"]!r} in {text!r} masks no tokens; '
                         'use n >= 1.')
      pieces.append(''.join(literal))
      literal = []
      pieces.append(count)
  pieces.append(''.join(literal + [text[pos:]]))

  ids, spans, length = [], [], 0
  for piece in pieces:
    if isinstance(piece, int):
      if spans and spans[-1][0] + spans[-1][1] == length:
        spans[-1] = (spans[-1][0], spans[-1][1] + piece)  # Adjacent: merge.
      else:
        spans.append((length, piece))
      piece_ids = np.full([piece], tokenizer.mask_id, np.int32)
    elif piece:
      piece_ids = np.asarray(tokenizer.encode(piece), np.int32)
    else:
      continue
    ids.append(piece_ids)
    length += len(piece_ids)
  if not spans:
    raise ValueError(
        f'No masked span in {text!r}; mark one with [MASK] or [MASK:n]'
        + (f' or {mask_char!r}' if mask_char else '') + '.')
  return MaskedText(ids=np.concatenate(ids).astype(np.int32),
                    spans=tuple(spans))


def pad_batch(texts: Sequence[MaskedText], max_seq_len: int
              ) -> Tuple[np.ndarray, np.ndarray]:
  """-> (inputs int32 [B, T], input_mask int32 [B, T]), padded with PAD."""
  inputs = np.full([len(texts), max_seq_len], tokenizers.PAD_ID, np.int32)
  input_mask = np.zeros([len(texts), max_seq_len], np.int32)
  for i, masked in enumerate(texts):
    if len(masked.ids) > max_seq_len:
      raise ValueError(
          f'Text {i} has {len(masked.ids)} tokens, more than the model\'s '
          f'max_seq_len={max_seq_len}; shorten it.')
    inputs[i, :len(masked.ids)] = masked.ids
    input_mask[i, :len(masked.ids)] = 1
  return inputs, input_mask


def make_apply_fn(config: Mapping) -> Callable:
  """jitted (params, inputs [B, T], input_mask [B, T]) -> logits [B, T, V]."""
  transformed = hk.transform(
      functools.partial(models.mlm(config), is_training=False))
  return jax.jit(lambda params, inputs, input_mask: transformed.apply(
      params, None, inputs, input_mask))


@functools.lru_cache(maxsize=8)
def cached_apply_fn(config_name: str) -> Callable:
  """make_apply_fn for a named config, compiled once per process."""
  return make_apply_fn(models.get_config(config_name))


def init_params(config: Mapping, seed: int = 0):
  """Randomly initialised MLM params (for trying the pipeline out)."""
  transformed = hk.transform(
      functools.partial(models.mlm(config), is_training=False))
  t = config['max_seq_len']
  return transformed.init(jax.random.PRNGKey(seed),
                          jnp.zeros([1, t], jnp.int32),
                          jnp.ones([1, t], jnp.int32))


def load_release_params(path: str, config: Mapping):
  """Reads a release-format checkpoint and checks it against `config`.

  The released bytes model is `config=models.mlm_bytes()`. A config with
  `scan_layers=True` gets the per-layer release tree stacked.
  """
  params, _ = checkpoint_io.load_params(path)
  expected = models.param_shapes(config)
  if any(f'/{perceiver.SCAN_NAME}/' in m for m in expected):
    params = perceiver.from_release_layout(params)
  checkpoint_io.check_tree(params, expected, 'params')
  return checkpoint_io.check_dtypes(params, expected, path)


def tokenizer_for(config: Mapping, sentencepiece_model: Optional[str] = None
                  ) -> tokenizers.Tokenizer:
  """The bytes tokenizer for a 262-id model, else the given SPM model."""
  if sentencepiece_model:
    tok = tokenizers.SentencePieceTokenizer.from_file(sentencepiece_model)
    if tok.vocab_size > config['vocab_size']:
      raise ValueError(
          f'The SentencePiece model has {tok.vocab_size} ids but the MLM '
          f'config only {config["vocab_size"]}.')
    return tok
  if config['vocab_size'] != models.BYTES_VOCAB_SIZE:
    raise ValueError(
        f'A vocabulary of {config["vocab_size"]} is not the bytes model\'s '
        f'({models.BYTES_VOCAB_SIZE}); pass the SentencePiece model the MLM '
        'was trained with (--sentencepiece_model).')
  return tokenizers.ByteTokenizer()


def fill_mask(params, texts: Sequence[str], config: Mapping, *,
              tokenizer: Optional[tokenizers.Tokenizer] = None,
              mask_char: Optional[str] = None,
              apply_fn: Optional[Callable] = None) -> List[FillResult]:
  """Fills every masked span of each text greedily, in one forward pass.

  Args:
    params: MLM params for `config` (release tree, or scanned if the config
      scans), from any source.
    texts: texts in the mask syntax of the module docstring.
    config: the MLM config (`models.get_config`).
    tokenizer: default `tokenizer_for(config)` (bytes).
    mask_char: optional single mask character.
    apply_fn: default `make_apply_fn(config)`; pass one to reuse its jit.

  Returns:
    One FillResult per text.
  """
  tokenizer = tokenizer or tokenizer_for(config)
  apply_fn = apply_fn or make_apply_fn(config)
  parsed = [parse_masked_text(t, tokenizer, mask_char) for t in texts]
  inputs, input_mask = pad_batch(parsed, config['max_seq_len'])
  checks.token_ids('fill_mask', inputs, config['vocab_size'])  # jit clamps
  logits = np.asarray(apply_fn(params, inputs, input_mask), np.float32)
  allowed = np.full([logits.shape[-1]], -np.inf, np.float32)
  allowed[tokenizer.replacement_ids] = 0.0
  predictions = np.argmax(logits + allowed, axis=-1).astype(np.int32)  # [B, T]

  results = []
  for source, masked, predicted in zip(texts, parsed, predictions):
    filled = np.where(masked.mask, predicted[:len(masked.ids)], masked.ids)
    fill_ids = tuple(filled[s:s + n] for s, n in masked.spans)
    results.append(FillResult(
        source=source, text=tokenizer.decode(filled),
        fills=tuple(tokenizer.decode(ids) for ids in fill_ids),
        fill_ids=fill_ids))
  return results


def format_result(result: FillResult) -> str:
  fills = ', '.join(repr(f) for f in result.fills)
  return f'input:  {result.source}\nfilled: {result.text}\nspans:  {fills}'


def run(texts: Sequence[str], *, config: str = 'mlm_bytes',
        checkpoint: Optional[str] = None, params=None,
        random_init_seed: Optional[int] = None,
        mask_char: Optional[str] = None,
        sentencepiece_model: Optional[str] = None,
        print_fn: Callable[[str], None] = print) -> List[FillResult]:
  """The fill-mask program: choose params, fill, print.

  Exactly one source of params: `checkpoint` (a release-format
  .pickle/.pystate), `params` (e.g. restored from a training workdir), or
  `random_init_seed` (an untrained model, to try the pipeline).
  """
  # The cheap checks first: nothing is loaded or built before they pass.
  cfg = models.get_config(config)
  sources = [checkpoint is not None, params is not None,
             random_init_seed is not None]
  if sum(sources) != 1:
    raise ValueError('Give exactly one of checkpoint, params and '
                     'random_init_seed.')
  if mask_char is not None:
    check_mask_char(mask_char)
  if checkpoint is not None:
    check_checkpoint_path(checkpoint)
  if sentencepiece_model and not os.path.isfile(sentencepiece_model):
    raise FileNotFoundError(
        f'No SentencePiece model file at {sentencepiece_model}.')
  if checkpoint is not None:
    params = load_release_params(checkpoint, cfg)
  elif random_init_seed is not None:
    params = init_params(cfg, random_init_seed)
  results = fill_mask(params, texts, cfg,
                      tokenizer=tokenizer_for(cfg, sentencepiece_model),
                      mask_char=mask_char, apply_fn=cached_apply_fn(config))
  for result in results:
    print_fn(format_result(result))
  return results
