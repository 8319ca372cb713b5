"""Whole-word masking and MLM examples ([P] §4.1, App. F.3)."""
import numpy as np
import pytest

from perceiver.tasks.language import masking
from perceiver.tasks.language import tokenizers


def _surface(tokenizer, i):
  """Bytes a token stands for; special ids act as a word boundary."""
  if i < tokenizers.NUM_SPECIAL or (
      isinstance(tokenizer, tokenizers.SentencePieceTokenizer) and i < 7):
    return b' '
  if isinstance(tokenizer, tokenizers.ByteTokenizer):
    return bytes([i - 6])
  piece = tokenizer.id_to_piece(i)
  if piece.startswith('<0x') and len(piece) == 6:
    return bytes([int(piece[3:5], 16)])
  return piece.replace('\u2581', ' ').encode()


def _check_word_boundaries(tokenizer, targets, masked):
  """Checks masks against words found in the text itself (not word_ids).

  Every maximal run of non-whitespace characters is masked entirely or not
  at all, and tokens holding only whitespace are never masked.
  """
  surfaces = [_surface(tokenizer, int(i)) for i in targets]
  byte_mask = np.concatenate(
      [np.full(len(s), m) for s, m in zip(surfaces, masked)])
  text = b''.join(surfaces)
  # Unicode whitespace per character, spread over its UTF-8 bytes. The
  # window may cut a character; decode leniently per byte run.
  is_space = np.zeros(len(text), bool)
  pos = 0
  for ch in text.decode('utf-8', errors='surrogateescape'):
    n = len(ch.encode('utf-8', errors='surrogateescape'))
    is_space[pos:pos + n] = ch.isspace()
    pos += n
  assert pos == len(text)
  for s, m in zip(surfaces, masked):
    if m:
      assert s.decode('utf-8', 'ignore').strip() or not s.isascii(), s
  # Runs of non-space bytes must carry one mask value.
  boundaries = np.flatnonzero(np.diff(is_space.astype(np.int8)) != 0) + 1
  for run_mask, run_space in zip(np.split(byte_mask, boundaries),
                                 np.split(is_space, boundaries)):
    if run_space[0]:
      continue
    assert run_mask.all() or not run_mask.any()
  return int(np.sum(~is_space[1:] & is_space[:-1]) + (not is_space[0]))


def test_masking_statistics_and_word_boundaries(tokenizer, corpus):
  config = masking.MlmConfig()  # p = 0.15, T = 2048 bytes / 512 SPM.
  num_words = num_masked = 0
  docs = [d.text for d in corpus[:600]]
  for index in range(60):
    rng = masking.example_rng(1, index)
    group = [docs[(index * 10 + k) % len(docs)] for k in range(10)]
    ids, word_ids, valid = masking.pack_documents(group, tokenizer, config,
                                                  rng)
    assert ids.shape == (config.length_for(tokenizer),)
    inputs, masked = masking.mask_words(ids, word_ids, tokenizer, config, rng)
    assert (inputs[masked] == tokenizer.mask_id).all()
    assert (inputs[~masked] == ids[~masked]).all()
    assert not masked[~valid].any()
    assert not masked[ids == tokenizer.eos_id].any()
    # Whole words: one mask value per word id.
    for w in np.unique(word_ids[word_ids >= 0]):
      assert len(set(masked[word_ids == w].tolist())) == 1
    assert not masked[word_ids < 0].any()
    _check_word_boundaries(tokenizer, ids[valid], masked[valid])
    present = np.unique(word_ids[word_ids >= 0])
    num_words += present.size
    num_masked += np.unique(word_ids[masked]).size
  p = 0.15
  fraction = num_masked / num_words
  # Words are masked independently: Binomial(num_words, p). 4.5 sigma.
  tolerance = 4.5 * np.sqrt(p * (1 - p) / num_words)
  assert num_words > 10_000
  assert abs(fraction - p) < tolerance, (fraction, tolerance, num_words)


def test_example_fields(tokenizer, corpus):
  config = masking.MlmConfig(sequence_length=256)
  ex = masking.make_mlm_example([d.text for d in corpus[:10]], tokenizer,
                                config, masking.example_rng(0, 0))
  assert set(ex) == set(masking.MLM_FEATURES)
  for k in masking.MLM_FEATURES:
    assert ex[k].shape == (256,)
  assert ex['inputs'].dtype == np.int32 and ex['targets'].dtype == np.int32
  assert ex['loss_weights'].dtype == np.float32
  assert ex['input_mask'].all()  # 10 chapters fill 256 tokens.
  # Loss only on masked positions (default), equal to target_mask.
  np.testing.assert_array_equal(ex['loss_weights'], ex['target_mask'])
  changed = ex['inputs'] != ex['targets']
  np.testing.assert_array_equal(changed, ex['target_mask'].astype(bool))
  # Same composition as pack_documents + mask_words with the same rng.
  rng = masking.example_rng(0, 0)
  ids, words, _ = masking.pack_documents([d.text for d in corpus[:10]],
                                         tokenizer, config, rng)
  inputs, _ = masking.mask_words(ids, words, tokenizer, config, rng)
  np.testing.assert_array_equal(inputs, ex['inputs'])


def test_padding_and_loss_on_all_positions(byte_tokenizer):
  config = masking.MlmConfig(sequence_length=32, loss_on_masked_only=False,
                             mask_prob=1.0)
  ex = masking.make_mlm_example(['ab c', 'de'], byte_tokenizer, config,
                                masking.example_rng(0, 0))
  # 'ab c' EOS 'de' = 7 tokens, then 25 PAD.
  expected = [b + 6 for b in b'ab c'] + [2] + [b + 6 for b in b'de']
  assert ex['targets'][:7].tolist() == expected
  assert (ex['targets'][7:] == 0).all()
  assert ex['input_mask'].tolist() == [1] * 7 + [0] * 25
  # p = 1: every word byte masked; space, EOS and padding not.
  assert ex['target_mask'].tolist() == [1, 1, 0, 1, 0, 1, 1] + [0] * 25
  assert ex['inputs'][:7].tolist() == [3, 3, expected[2], 3, 2, 3, 3]
  np.testing.assert_array_equal(ex['loss_weights'], ex['input_mask'])


def test_crop_is_random_window(byte_tokenizer):
  docs = ['0123456789abcdefghij']
  starts = set()
  for i in range(30):
    ids, _, valid = masking.pack_documents(
        docs, byte_tokenizer, masking.MlmConfig(sequence_length=5),
        masking.example_rng(0, i))
    assert valid.all()
    text = byte_tokenizer.decode(ids)
    assert text in docs[0]
    starts.add(docs[0].index(text))
  assert len(starts) > 5
  ids, _, _ = masking.pack_documents(
      docs, byte_tokenizer,
      masking.MlmConfig(sequence_length=5, random_crop=False),
      masking.example_rng(0, 0))
  assert byte_tokenizer.decode(ids) == '01234'


def test_bert_replacement_per_word(tokenizer, corpus):
  config = masking.MlmConfig(sequence_length=512, bert_replacement=True,
                             mask_prob=0.5)
  counts = np.zeros(3)
  for i in range(40):
    rng = masking.example_rng(2, i)
    ids, words, _ = masking.pack_documents(
        [d.text for d in corpus[i * 10:i * 10 + 10]], tokenizer, config, rng)
    inputs, masked = masking.mask_words(ids, words, tokenizer, config, rng)
    for w in np.unique(words[masked]):
      sel = words == w
      if (inputs[sel] == tokenizer.mask_id).all():
        counts[0] += 1
      elif (inputs[sel] == ids[sel]).all():
        counts[2] += 1  # kept (or, rarely, random equal to the original)
      else:
        counts[1] += 1
        # Random replacements never draw special ids.
        changed = sel & (inputs != ids)
        assert not np.isin(inputs[changed], tokenizer.special_ids).any()
        assert not (inputs[sel] == tokenizer.mask_id).any()
  fractions = counts / counts.sum()
  n = counts.sum()
  assert n > 1500
  expected = np.array([0.8, 0.1, 0.1])
  # Per-word decisions: binomial tolerance, 4.5 sigma.
  np.testing.assert_array_less(
      np.abs(fractions - expected), 4.5 * np.sqrt(expected * (1 - expected) / n))


def test_mlm_batches_deterministic(byte_tokenizer, corpus):
  config = masking.MlmConfig(sequence_length=64)
  docs = [d.text for d in corpus[:80]]
  a = list(masking.mlm_batches(docs, byte_tokenizer, config, 4, seed=3))
  b = list(masking.mlm_batches(docs, byte_tokenizer, config, 4, seed=3))
  c = list(masking.mlm_batches(docs, byte_tokenizer, config, 4, seed=4))
  assert len(a) == 2 and a[0]['inputs'].shape == (4, 64)
  np.testing.assert_array_equal(a[1]['inputs'], b[1]['inputs'])
  assert not np.array_equal(a[1]['inputs'], c[1]['inputs'])


def test_config_errors():
  with pytest.raises(ValueError, match='mask_prob'):
    masking.MlmConfig(mask_prob=1.5)
  with pytest.raises(ValueError, match='docs_per_example'):
    masking.MlmConfig(docs_per_example=0)
  with pytest.raises(ValueError, match='bert_'):
    masking.MlmConfig(bert_mask_fraction=0.95, bert_random_fraction=0.1)
  with pytest.raises(TypeError, match='documents'):
    masking.pack_documents('one string', tokenizers.ByteTokenizer(),
                           masking.MlmConfig(), masking.example_rng(0, 0))


def test_mask_unit_token_masks_bytes_inside_words(byte_tokenizer):
  """mask_unit='token' (the DEVIATION for small runs): each in-word byte on
  its own, so words end up partly masked; whitespace and EOS never."""
  text = ' '.join(['abcdefghij'] * 12)
  ids = {}
  for unit in masking.MASK_UNITS:
    config = masking.MlmConfig(sequence_length=128, mask_prob=0.5,
                               mask_unit=unit, random_crop=False)
    ex = masking.make_mlm_example([text], byte_tokenizer, config,
                                  masking.example_rng(0, 0))
    cells = ex['target_mask'][:121].reshape(11, 11)  # 11 x (word, space)
    assert not cells[:, 10].any()  # spaces are never masked
    ids[unit] = cells[:, :10]
  assert set(ids['word'].sum(1).tolist()) <= {0, 10}  # whole words
  partly = (ids['token'].sum(1) > 0) & (ids['token'].sum(1) < 10)
  assert partly.sum() >= 6  # P(a word is all or nothing) = 2 / 1024
  assert 0.35 < ids['token'].mean() < 0.65
  with pytest.raises(ValueError, match='mask_unit'):
    masking.MlmConfig(mask_unit='byte')
