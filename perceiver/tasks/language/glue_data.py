"""GLUE fine-tuning data through TFDS ([P] §4.1, App F.4, Tables 13-14).

[P] §4.1, App. F.4: 8 tasks (CoLA, SST-2, MRPC, STS-B, QQP,
MNLI, QNLI, RTE; WNLI excluded); the head reads one learned decoder query,
there is no [CLS] token; STS-B is a regression.

Shape glossary: B batch size, T sequence length.

`glue_dataset` yields dicts: inputs int32 [T], input_mask int32 [T]
(1 valid, 0 pad), label (int32 [] class, or float32 [] for STS-B), idx int32
[], task_id int32 [] (index in `TASK_NAMES`, for multitask training).

Decisions where the paper is silent:
* Packing: `tokens(a) SEP tokens(b)`, then PAD to T. No CLS (the paper
  decodes with a learned query instead), no BOS/EOS. Single-sentence tasks
  are `tokens(a)` alone.
* T defaults to the pretraining length (2048 bytes / 512 SPM tokens): the
  learned position embedding covers it and nothing in the paper says the
  fine-tuning length differs. Over-long pairs are cut longest-first, one
  token at a time (as BERT), so both segments survive; byte truncation may
  split a UTF-8 character, which is harmless for ids.
* TFDS test splits carry label -1 (GLUE hides them); they are passed on
  unchanged.
* Missing data raises FileNotFoundError naming `glue/<task>` and data_dir.
"""
import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from perceiver.tasks.language import pretraining
from perceiver.tasks.language import tokenizers as tokenizers_lib


@dataclasses.dataclass(frozen=True)
class GlueTask:
  name: str                   # TFDS config name, e.g. 'mnli'.
  text_keys: Tuple[str, ...]  # One or two text features.
  num_classes: int            # 1 for the STS-B regression.
  eval_splits: Tuple[str, ...]

  @property
  def is_regression(self) -> bool:
    return self.num_classes == 1

  @property
  def tfds_name(self) -> str:
    return f'glue/{self.name}'


TASKS: Dict[str, GlueTask] = {t.name: t for t in (
    GlueTask('cola', ('sentence',), 2, ('validation',)),
    GlueTask('sst2', ('sentence',), 2, ('validation',)),
    GlueTask('mrpc', ('sentence1', 'sentence2'), 2, ('validation',)),
    GlueTask('stsb', ('sentence1', 'sentence2'), 1, ('validation',)),
    GlueTask('qqp', ('question1', 'question2'), 2, ('validation',)),
    GlueTask('mnli', ('premise', 'hypothesis'), 3,
             ('validation_matched', 'validation_mismatched')),
    GlueTask('qnli', ('question', 'sentence'), 2, ('validation',)),
    GlueTask('rte', ('sentence1', 'sentence2'), 2, ('validation',)),
)}
TASK_NAMES = tuple(TASKS)  # WNLI excluded ([P] §4.1).


def get_task(task: str) -> GlueTask:
  if task not in TASKS:
    hint = ' (WNLI is excluded, as in the paper)' if task == 'wnli' else ''
    raise ValueError(f'`task` must be one of {list(TASK_NAMES)}, got '
                     f'{task!r}{hint}.')
  return TASKS[task]


def pack_text_pair(
    tokenizer: tokenizers_lib.Tokenizer,
    text_a: str,
    text_b: Optional[str] = None,
    max_length: Optional[int] = None,
) -> Tuple[np.ndarray, np.ndarray]:
  """Returns inputs int32 [T] and input_mask int32 [T] (see module doc)."""
  length = max_length or tokenizer.default_sequence_length
  a = tokenizer.encode(text_a)
  b = None if text_b is None else tokenizer.encode(text_b)
  budget = length - (0 if b is None else 1)
  if budget < (1 if b is None else 2):
    raise ValueError(f'pack_text_pair: `max_length` {length} is too short to '
                     'hold the segments and SEP.')
  if b is None:
    a = a[:budget]
    ids = a
  else:
    len_a, len_b = len(a), len(b)
    while len_a + len_b > budget:  # Longest-first, as BERT; ties cut b.
      if len_a > len_b:
        len_a -= 1
      else:
        len_b -= 1
    ids = np.concatenate([a[:len_a], [tokenizer.sep_id], b[:len_b]])
  ids = ids.astype(np.int32)
  mask = np.zeros([length], np.int32)
  mask[:len(ids)] = 1
  ids = np.pad(ids, (0, length - len(ids)), constant_values=tokenizer.pad_id)
  return ids, mask


def glue_dataset(
    task: str,
    split: str,
    tokenizer: tokenizers_lib.Tokenizer,
    max_length: Optional[int] = None,
    data_dir: Optional[str] = None,
    tfds_name: Optional[str] = None,
    shuffle_files: bool = False,
) -> tf.data.Dataset:
  """A GLUE task as packed examples [T] (see module doc for the keys).

  Args:
    task: one of `TASK_NAMES`.
    split: a TFDS split, e.g. 'train', 'validation', 'validation_matched'.
    tokenizer: a `tokenizers.Tokenizer`.
    max_length: T (default: the tokenizer's pretraining length).
    data_dir: TFDS data_dir holding `glue/<task>`.
    tfds_name: read another TFDS dataset with the same features instead, e.g.
      'rotten_tomatoes_snippets' for task 'sst2'.
    shuffle_files: passed to TFDS.
  """
  spec = get_task(task)
  length = max_length or tokenizer.default_sequence_length
  ds = pretraining.load_tfds_split(tfds_name or spec.tfds_name, split,
                                   data_dir, shuffle_files)
  missing = [k for k in spec.text_keys + ('label',) if k not in ds.element_spec]
  if missing:
    raise KeyError(f'glue_dataset: {tfds_name or spec.tfds_name!r} lacks '
                   f'features {missing} needed by task {task!r}.')
  task_id = TASK_NAMES.index(task)
  label_dtype = tf.float32 if spec.is_regression else tf.int32

  def pack(*texts):
    texts = [t.decode('utf-8', errors='replace') for t in texts]
    return pack_text_pair(tokenizer, texts[0],
                          texts[1] if len(texts) > 1 else None, length)

  def to_example(x):
    inputs, mask = tf.numpy_function(
        pack, [x[k] for k in spec.text_keys], (tf.int32, tf.int32),
        stateful=False)
    inputs.set_shape([length])
    mask.set_shape([length])
    idx = x['idx'] if 'idx' in x else tf.constant(-1)
    return {
        'inputs': inputs,
        'input_mask': mask,
        'label': tf.cast(x['label'], label_dtype),
        'idx': tf.cast(idx, tf.int32),
        'task_id': tf.constant(task_id, tf.int32),
    }

  return ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
