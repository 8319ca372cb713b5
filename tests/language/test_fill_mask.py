"""Fill-mask: the mask syntax, padding, and greedy fills on a tiny MLM."""
import numpy as np
import pytest

from perceiver import checkpoint_io
from perceiver.tasks.language import fill_mask
from perceiver.tasks.language import models
from perceiver.tasks.language import tokenizers
from tests import golden

TOK = tokenizers.ByteTokenizer()
CONFIG_NAME = 'mlm_bytes:smoke'
CONFIG = models.get_config(CONFIG_NAME)
MASK = tokenizers.MASK_ID


def _ids(text):
  return list(TOK.encode(text))


#  ------------------------  Syntax  ------------------------


def test_parse_counted_mask():
  parsed = fill_mask.parse_masked_text('The [MASK:9] sat on the mat', TOK)
  assert parsed.spans == ((4, 9),)
  assert list(parsed.ids) == _ids('The ') + [MASK] * 9 + _ids(' sat on the mat')
  assert parsed.mask.sum() == 9 and parsed.mask[4:13].all()
  assert parsed.ids.dtype == np.int32


def test_parse_single_masks_and_merging():
  parsed = fill_mask.parse_masked_text('a[MASK]b [MASK][MASK:2]c', TOK)
  assert parsed.spans == ((1, 1), (4, 3))
  assert list(parsed.ids) == _ids('a') + [MASK] + _ids('b ') + [MASK] * 3 + (
      _ids('c'))


def test_parse_mask_char_and_escapes():
  parsed = fill_mask.parse_masked_text(r'The ___ cat\_s \[MASK] x_', TOK,
                                       mask_char='_')
  assert parsed.spans == ((4, 3), (22, 1))
  assert list(parsed.ids) == (_ids('The ') + [MASK] * 3 +
                              _ids(' cat_s [MASK] x') + [MASK])
  # Without mask_char, '_' is text.
  plain = fill_mask.parse_masked_text('a_b [MASK]', TOK)
  assert plain.spans == ((4, 1),)


def test_mask_counts_are_tokens_not_characters():
  parsed = fill_mask.parse_masked_text('é[MASK:2]é', TOK)
  assert parsed.spans == ((2, 2),)  # 'é' is two bytes.


@pytest.mark.parametrize('text, match', [
    ('The [MASK:x] cat', 'Malformed mask'),
    ('The [MASK :3] cat', 'Malformed mask'),
    ('The [MASK:3 cat', 'Malformed mask'),
    ('The [MASK:0] cat', 'masks no tokens'),
    ('No mask here', 'No masked span'),
])
def test_parse_errors(text, match):
  with pytest.raises(ValueError, match=match):
    fill_mask.parse_masked_text(text, TOK)


def test_bad_mask_char():
  with pytest.raises(ValueError, match='one character'):
    fill_mask.parse_masked_text('a__', TOK, mask_char='__')


def test_pad_batch():
  parsed = [fill_mask.parse_masked_text(t, TOK)
            for t in ('ab[MASK]', 'x[MASK]')]
  inputs, mask = fill_mask.pad_batch(parsed, 8)
  assert inputs.shape == mask.shape == (2, 8)
  assert list(mask.sum(1)) == [3, 2]
  assert list(inputs[1]) == _ids('x') + [MASK] + [tokenizers.PAD_ID] * 6
  with pytest.raises(ValueError, match='max_seq_len=2'):
    fill_mask.pad_batch(parsed, 2)


#  ------------------------  Filling  ------------------------


@pytest.fixture(scope='module')
def release_tiny():
  """(params, inputs, input_mask, logits) of the release's tiny bytes MLM."""
  params, _, inputs, outputs = golden.load_npz('language_mlm_tiny')
  return params, inputs['inputs'], inputs['input_mask'], outputs['out']


@pytest.fixture(scope='module')
def params(release_tiny):
  return release_tiny[0]


@pytest.fixture(scope='module')
def apply_fn():
  return fill_mask.cached_apply_fn(CONFIG_NAME)  # Shared with run().


def test_apply_fn_matches_the_release(release_tiny, apply_fn):
  params, inputs, input_mask, logits = release_tiny
  np.testing.assert_allclose(apply_fn(params, inputs, input_mask), logits,
                             rtol=1e-4, atol=1e-5)


def test_tiny_model_fills_every_masked_token(params, apply_fn):
  texts = ['The [MASK:9] sat on the mat', '[MASK] b [MASK:3]']
  results = fill_mask.fill_mask(params, texts, CONFIG, apply_fn=apply_fn)
  assert [len(r.fill_ids) for r in results] == [1, 2]
  assert [len(i) for i in results[0].fill_ids] == [9]
  assert [len(i) for i in results[1].fill_ids] == [1, 3]
  for result in results:
    for ids in result.fill_ids:
      assert ids.min() >= tokenizers.NUM_SPECIAL  # Never a reserved id.
  assert results[0].source == texts[0]
  assert results[0].text.startswith('The ')


def test_greedy_fill_is_the_argmax(params, apply_fn):
  """A bias towards 'x' makes the fill 'x' * n: a string of the masked length."""
  biased = {m: dict(v) for m, v in params.items()}
  bias = np.zeros([CONFIG['vocab_size']], np.float32)
  bias[TOK.encode('x')[0]] = 1e4
  biased['embedding_decoder'] = {'bias': bias}
  [result] = fill_mask.fill_mask(biased, ['The [MASK:9] sat on the mat'],
                                 CONFIG, apply_fn=apply_fn)
  assert result.fills == ('x' * 9,)
  assert len(result.fills[0]) == 9
  assert result.text == 'The xxxxxxxxx sat on the mat'


def test_run_from_a_release_format_checkpoint(params, tmp_path):
  path = str(tmp_path / 'mlm.pickle')
  checkpoint_io.save_params(path, params)
  printed = []
  texts = ['The ___ sat.']
  from_file = fill_mask.run(texts, config=CONFIG_NAME, checkpoint=path,
                            mask_char='_', print_fn=printed.append)
  direct = fill_mask.run(texts, config=CONFIG_NAME, params=params,
                         mask_char='_', print_fn=printed.append)
  assert from_file[0].fill_ids[0].tolist() == direct[0].fill_ids[0].tolist()
  assert printed[0] == printed[1] and 'filled: The ' in printed[0]
  with pytest.raises(checkpoint_io.CheckpointMismatchError):
    fill_mask.run(texts, config='mlm_bytes', checkpoint=path, mask_char='_')
  with pytest.raises(ValueError, match='exactly one'):
    fill_mask.run(texts, config=CONFIG_NAME)


def test_spm_config_needs_its_tokenizer():
  with pytest.raises(ValueError, match='sentencepiece_model'):
    fill_mask.tokenizer_for(models.get_config('mlm_spm_base:smoke'))
