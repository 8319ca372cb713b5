"""GLUE through TFDS: packing and pipelines ([P] §4.1, App F.4)."""
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from perceiver.tasks.language import glue_data as glue
from perceiver.tasks.language import tokenizers

BT = tokenizers.ByteTokenizer()


def _b(s):
  return [c + 6 for c in s.encode()]


def test_pack_pair_with_sep_and_padding():
  ids, mask = glue.pack_text_pair(BT, 'ab', 'cde', max_length=8)
  assert ids.tolist() == _b('ab') + [5] + _b('cde') + [0, 0]
  assert mask.tolist() == [1] * 6 + [0, 0]


def test_pack_truncates_longest_first():
  ids, mask = glue.pack_text_pair(BT, 'abcdef', 'xy', max_length=6)
  assert ids.tolist() == _b('abc') + [5] + _b('xy')
  # Equal lengths: alternate, second segment first on ties (BERT).
  ids, _ = glue.pack_text_pair(BT, 'abcd', 'wxyz', max_length=6)
  assert ids.tolist() == _b('abc') + [5] + _b('wx')
  ids, mask = glue.pack_text_pair(BT, 'abcdef', max_length=4)
  assert ids.tolist() == _b('abcd') and mask.tolist() == [1, 1, 1, 1]


def test_default_length_is_pretraining_length():
  ids, _ = glue.pack_text_pair(BT, 'a', 'b')
  assert ids.shape == (2048,)


def test_task_list():
  assert len(glue.TASK_NAMES) == 8 and 'wnli' not in glue.TASK_NAMES
  with pytest.raises(ValueError, match='WNLI is excluded'):
    glue.get_task('wnli')


@pytest.mark.parametrize('task', glue.TASK_NAMES)
def test_glue_on_mock_data(task):
  spec = glue.TASKS[task]
  with tfds.testing.mock_data(num_examples=4):
    for split in ('train',) + spec.eval_splits:
      ds = glue.glue_dataset(task, split, BT, max_length=64,
                             data_dir='/nonexistent')
      batch = next(iter(ds.batch(4)))
      assert batch['inputs'].shape == (4, 64)
      assert batch['input_mask'].dtype == tf.int32
      seps = tf.reduce_sum(tf.cast(batch['inputs'] == BT.sep_id, tf.int32), 1)
      assert (seps.numpy() == len(spec.text_keys) - 1).all()
      want = tf.float32 if spec.is_regression else tf.int32
      assert batch['label'].dtype == want
      assert (batch['task_id'].numpy() == glue.TASK_NAMES.index(task)).all()


def test_missing_glue_error(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"'glue/rte'.*not prepared"):
    glue.glue_dataset('rte', 'train', BT, data_dir=str(tmp_path))
