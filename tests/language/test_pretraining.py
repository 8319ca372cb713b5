"""C4 + Wikipedia MLM mixture through TFDS ([P] §4.1)."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from perceiver.tasks.language import masking
from perceiver.tasks.language import pretraining
from perceiver.tasks.language import tokenizers


def test_mixture_on_mock_data():
  tok = tokenizers.ByteTokenizer()
  config = masking.MlmConfig(sequence_length=128)
  with tfds.testing.mock_data(num_examples=60):
    ds = pretraining.c4_wikipedia_mlm_dataset('train', tok, config,
                                              data_dir='/nonexistent')
    batch = next(iter(ds.batch(3, drop_remainder=True)))
  assert set(batch) == set(masking.MLM_FEATURES)
  for k in masking.MLM_FEATURES:
    assert batch[k].shape == (3, 128)
  assert batch['loss_weights'].dtype == tf.float32
  masked = batch['target_mask'].numpy().astype(bool)
  assert (batch['inputs'].numpy()[masked] == tok.mask_id).all()


def test_mixture_weights_are_fractions_of_examples():
  tok = tokenizers.ByteTokenizer()
  config = masking.MlmConfig(sequence_length=16, docs_per_example=2)
  a = tf.data.Dataset.from_tensors(tf.constant('aaaa aaaa')).repeat()
  b = tf.data.Dataset.from_tensors(tf.constant('bbbb bbbb')).repeat()
  ds = pretraining.mixture_mlm_dataset([a, b], pretraining.MIXTURE_WEIGHTS,
                                       tok, config, seed=0)
  n = 2000
  firsts = [int(x['targets'][0]) for x in ds.take(n)]
  from_c4 = np.mean(np.array(firsts) == ord('a') + 6)
  assert abs(from_c4 - 0.7) < 4.5 * np.sqrt(0.21 / n)


def test_tf_pipeline_matches_numpy():
  tok = tokenizers.ByteTokenizer()
  config = masking.MlmConfig(sequence_length=40, docs_per_example=3)
  docs = [f'document number {i} says hello world' for i in range(12)]
  ds = pretraining.mlm_dataset(tf.data.Dataset.from_tensor_slices(docs), tok,
                               config, seed=5)
  got = list(ds.as_numpy_iterator())
  want = list(masking.mlm_examples(docs, tok, config, seed=5))
  assert len(got) == len(want) == 4
  for g, w in zip(got, want):
    for k in masking.MLM_FEATURES:
      np.testing.assert_array_equal(g[k], w[k])


def test_missing_data_error(tmp_path):
  tok = tokenizers.ByteTokenizer()
  with pytest.raises(FileNotFoundError) as e:
    pretraining.c4_wikipedia_mlm_dataset('train', tok, masking.MlmConfig(),
                                         data_dir=str(tmp_path))
  message = str(e.value)
  assert "'c4/en:3.1.0'" in message and str(tmp_path) in message
  assert 'never downloads' in message


def test_bad_arguments():
  tok = tokenizers.ByteTokenizer()
  with pytest.raises(ValueError, match='split'):
    pretraining.c4_wikipedia_mlm_dataset('test', tok, masking.MlmConfig())
  with pytest.raises(TypeError, match='texts'):
    pretraining.mlm_dataset(tf.data.Dataset.range(3), tok,
                            masking.MlmConfig())
  with pytest.raises(ValueError, match='one weight per source'):
    pretraining.mixture_mlm_dataset([], [0.7], tok, masking.MlmConfig())
