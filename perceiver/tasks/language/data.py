"""The input module of the language tasks: config keys, datasets, iterators.

Shapes: B global batch, B_p per-process batch, T sequence length, P processes.

`config.input.module = 'perceiver.tasks.language.data'` for every language
experiment. Like the image input modules (perceiver/tasks/image/mnist.py) it gives
`default_input_config()` (the keys `config_lib.validate` accepts under
`config.input`), `get_builder(name, data_dir)` (builds an embedded corpus
once, by process 0) and `BUILD_IN_WORKDIR`. Unlike them it also gives the
iterators, because an MLM example is packed from several documents and does
not fit the one-record-one-example `perceiver.data.pipeline`.

Determinism and resume follow perceiver.data.pipeline: process p reads only
`tfds.even_splits(split, P)[p]`; epoch e is that shard shuffled with seed
(seed, e); example i of the stream (counting from step 0) is masked with
`masking.example_rng(seed', i)`; a run resumed at step s skips s * B_p
records before any decoding or masking, so it sees exactly the batches of an
uninterrupted run. Eval iterators yield every example once, padded with
`mask` 0 so that every process runs the same number of batches.

Datasets (`config.input.name`):
  'kjv_shakespeare'           embedded KJV + Shakespeare prose (MLM).
  'c4_wikipedia'              C4 70% + Wikipedia 30% ([P] §4.1; MLM).
  'glue'                      GLUE task(s) `glue_tasks` from TFDS glue/<task>.
  'rotten_tomatoes_snippets'  embedded SST-2-like sentiment (read as 'sst2').
"""
from typing import Any, Iterator, Optional, Sequence

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from perceiver.tasks.language import glue_data as glue_lib
from perceiver.tasks.language import masking
from perceiver.tasks.language import pretraining
from perceiver.tasks.language import tfds_builders
from perceiver.tasks.language import tokenizers

AUTOTUNE = tf.data.AUTOTUNE
EMBEDDED = tuple(tfds_builders.BUILDERS)  # built offline into data_dir
_MAX_EPOCHS = 1 << 40

# The embedded corpora build from local archives, so by default they live
# inside the run's workdir (self-contained runs), as embedded MNIST does.
BUILD_IN_WORKDIR = True


def default_input_config() -> ml_collections.ConfigDict:
  """The `config.input` keys of the language tasks (see module doc)."""
  return ml_collections.ConfigDict(dict(
      tokenizer='bytes',  # 'bytes' | 'sentencepiece'
      sentencepiece_model='',  # path of a SentencePieceTokenizer.save file
      sequence_length=2048,  # T ([P] §4.1: 2048 bytes / 512 SPM tokens)
      source_dir='',  # archives of the embedded corpora ('' = default)
      # MLM example construction: the fields of masking.MlmConfig.
      docs_per_example=10,  # [P] §4.1
      mask_prob=0.15,  # [P] §4.1
      mask_unit='word',  # [P] §4.1; 'token': see masking.MlmConfig
      bert_replacement=False,  # paper silent; see masking.MlmConfig
      loss_on_masked_only=True,  # paper silent; see masking.MlmConfig
      separate_documents_with_eos=True,  # paper silent
      random_crop=True,  # paper silent
      eval_epochs=1,  # MLM eval: passes over the split, each masked anew
      c4_name=pretraining.C4_NAME,
      wikipedia_name=pretraining.WIKIPEDIA_NAME,
      # GLUE: one task (single-task) or several (multitask).
      glue_tasks=('sst2',),
      # Multitask sampling, [P] silent: 'proportional'
      # to the training-set sizes (= one shuffled union), or 'uniform'.
      multitask_sampling='proportional',
  ))


def get_builder(name: str, data_dir: Optional[str]):
  """Builds an embedded corpus (once); the others need no building here."""
  if name in EMBEDDED:
    return tfds_builders.prepare(name, data_dir, None)
  if name not in ('c4_wikipedia', 'glue'):
    raise ValueError(
        f'config.input.name={name!r}; the language tasks read '
        f'{list(EMBEDDED) + ["c4_wikipedia", "glue"]}.')
  return None


def tokenizer(cfg: ml_collections.ConfigDict) -> tokenizers.Tokenizer:
  return tokenizers.make_tokenizer(cfg.tokenizer,
                                   cfg.sentencepiece_model or None)


def mlm_config(cfg: ml_collections.ConfigDict) -> masking.MlmConfig:
  return masking.MlmConfig(
      sequence_length=cfg.sequence_length,
      docs_per_example=cfg.docs_per_example, mask_prob=cfg.mask_prob,
      mask_unit=cfg.mask_unit,
      bert_replacement=cfg.bert_replacement,
      loss_on_masked_only=cfg.loss_on_masked_only,
      separate_documents_with_eos=cfg.separate_documents_with_eos,
      random_crop=cfg.random_crop)


def _seed(seed: int, salt: int) -> int:
  return int(np.random.SeedSequence([seed, salt]).generate_state(1)[0]
             & 0x7FFFFFFF)


def _per_process(cfg, process_count: int) -> int:
  if cfg.global_batch_size % process_count:
    raise ValueError(
        f'config.input.global_batch_size={cfg.global_batch_size} must divide '
        f'across {process_count} processes.')
  return cfg.global_batch_size // process_count


def _epochs(base: tf.data.Dataset, n: int, buffer: int, seed: int
            ) -> tf.data.Dataset:
  """Epoch e of `base` shuffled with seed (seed, e), forever."""
  def one_epoch(epoch):
    return base.shuffle(max(min(buffer, n), 1), seed=seed + epoch * 1_000_003,
                        reshuffle_each_iteration=False)
  return tf.data.Dataset.range(0, _MAX_EPOCHS).flat_map(one_epoch)


def _count(ds: tf.data.Dataset) -> int:
  n = int(ds.cardinality())
  return n if n >= 0 else int(ds.reduce(np.int64(0), lambda c, _: c + 1))


def _pad_eval(ds: tf.data.Dataset, per_process_max: int, local_batch: int
              ) -> tuple[Any, int]:
  """Adds mask 1, pads with mask-0 examples to the same number of batches on
  every process (the eval step's collectives need it); `per_process_max` is
  the most real examples any process has."""
  num_batches = max(-(-per_process_max // local_batch), 1)
  ds = ds.map(lambda x: dict(x, mask=tf.constant(1.0)))
  padding = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype),
                                  ds.element_spec)
  ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat())
  ds = ds.take(num_batches * local_batch).batch(local_batch).prefetch(2)
  return tfds.as_numpy(ds), num_batches


# ---------------------------------------------------------------------------
# MLM ([P] §4.1): documents -> whole-word-masked examples [T].
# ---------------------------------------------------------------------------


def _texts(cfg, split: str, data_dir: Optional[str], process_index: int,
           process_count: int) -> tf.data.Dataset:
  """This process's documents of `split` (scalar tf.string)."""
  if cfg.name == 'kjv_shakespeare':
    builder = tfds_builders.prepare(cfg.name, data_dir,
                                    cfg.source_dir or None)
    sub = tfds.even_splits(split, n=process_count)[process_index]
    return builder.as_dataset(split=sub).map(lambda x: x['text'])
  raise ValueError(f'No document reader for config.input.name={cfg.name!r}.')


def _mlm_map(cfg, seed: int):
  """(index, docs [docs_per_example]) -> MLM example dict of [T] tensors."""
  return pretraining.mlm_example_map(tokenizer(cfg), mlm_config(cfg), seed)


def mlm_train_iterator(cfg, *, data_dir: Optional[str], seed: int,
                       start_step: int, process_index: int,
                       process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """This process's MLM batches [B_p, T] for steps start_step + 1, ..."""
  local = _per_process(cfg, process_count)
  mask_seed = _seed(seed, 100 + process_index)
  if cfg.name == 'c4_wikipedia':
    # The paper's mixture; C4's and Wikipedia's own file sharding stands in
    # for per-process reading, and resume re-reads (does not skip) the
    # stream. DEVIATION: the stream differs per process by seed only.
    ds = pretraining.c4_wikipedia_mlm_dataset(
        'train', tokenizer(cfg), mlm_config(cfg), data_dir=data_dir or None,
        seed=mask_seed + start_step, shuffle_buffer=cfg.shuffle_buffer,
        repeat=True, c4_name=cfg.c4_name, wikipedia_name=cfg.wikipedia_name)
  else:
    texts = _texts(cfg, cfg.train_split, data_dir, process_index,
                   process_count)
    if cfg.cache:
      texts = texts.cache()
    n = _count(texts)
    docs = _epochs(texts, n, cfg.shuffle_buffer, _seed(seed, 200 +
                                                       process_index))
    groups = docs.batch(cfg.docs_per_example, drop_remainder=True)
    start = start_step * local  # examples already consumed
    ds = groups.enumerate().skip(start)  # a read, not a masking
    ds = ds.map(_mlm_map(cfg, mask_seed), num_parallel_calls=AUTOTUNE,
                deterministic=True)
  ds = ds.batch(local, drop_remainder=True).prefetch(cfg.prefetch)
  return iter(tfds.as_numpy(ds))


def mlm_eval_iterator(cfg, split: str, *, data_dir: Optional[str],
                      process_index: int, process_count: int
                      ) -> tuple[Any, int]:
  """Every MLM example of `split` once per eval epoch, masked with a fixed
  seed (the same masks at every eval), plus `mask` [B_p]."""
  local = cfg.eval_batch_size // process_count
  if cfg.name == 'c4_wikipedia':
    raise NotImplementedError(
        'MLM eval on C4+Wikipedia reads a fixed number of validation '
        'batches; set config.input.eval_split="" for those runs.')
  texts = _texts(cfg, split, data_dir, process_index, process_count).cache()
  groups = texts.repeat(cfg.eval_epochs).batch(cfg.docs_per_example,
                                               drop_remainder=True)
  # even_splits gives every process at most ceil(n / P) documents.
  n = _count(_texts(cfg, split, data_dir, 0, 1))
  most = -(-n // process_count) * cfg.eval_epochs // cfg.docs_per_example
  ds = groups.enumerate().map(_mlm_map(cfg, _seed(7, process_index)),
                              num_parallel_calls=AUTOTUNE, deterministic=True)
  return _pad_eval(ds, most, local)


# ---------------------------------------------------------------------------
# GLUE ([P] App. F.4) and the embedded sentiment task.
# ---------------------------------------------------------------------------


def _glue_ds(cfg, task: str, split: str, data_dir: Optional[str],
             multitask: bool) -> tf.data.Dataset:
  tfds_name = cfg.name if cfg.name in EMBEDDED else None
  if tfds_name:
    tfds_builders.prepare(tfds_name, data_dir, cfg.source_dir or None)
  ds = glue_lib.glue_dataset(task, split, tokenizer(cfg),
                             max_length=cfg.sequence_length,
                             data_dir=data_dir or None, tfds_name=tfds_name)
  keys = ('inputs', 'input_mask', 'label', 'task_id')
  if multitask:  # one label dtype for all tasks: class ids as floats
    return ds.map(lambda x: {k: (tf.cast(x[k], tf.float32) if k == 'label'
                                 else x[k]) for k in keys})
  return ds.map(lambda x: {k: x[k] for k in keys})


def glue_train_iterator(cfg, *, data_dir: Optional[str], seed: int,
                        start_step: int, process_index: int,
                        process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """Batches {inputs, input_mask [B_p, T], label [B_p], task_id [B_p]}."""
  local = _per_process(cfg, process_count)
  tasks = tuple(cfg.glue_tasks)
  multitask = len(tasks) > 1
  streams, sizes = [], []
  for t, task in enumerate(tasks):
    sub = tfds.even_splits(cfg.train_split, n=process_count)[process_index]
    ds = _glue_ds(cfg, task, sub, data_dir, multitask)
    if cfg.cache:
      ds = ds.cache()
    n = _count(ds)
    sizes.append(n)
    streams.append(_epochs(ds, n, cfg.shuffle_buffer,
                           _seed(seed, 300 + 16 * process_index + t)))
  if multitask:
    weights = (np.asarray(sizes, np.float64)
               if cfg.multitask_sampling == 'proportional'
               else np.ones(len(sizes)))
    ds = tf.data.Dataset.sample_from_datasets(
        streams, weights=list(weights / weights.sum()),
        seed=_seed(seed, 400 + process_index))
  else:
    ds = streams[0]
  ds = ds.skip(start_step * local)
  ds = ds.batch(local, drop_remainder=True).prefetch(cfg.prefetch)
  return iter(tfds.as_numpy(ds))


def glue_eval_splits(cfg, split: str) -> list[tuple[str, str]]:
  """[(task, TFDS split)] evaluated for config split name `split`.

  'validation' means each task's own dev split(s): MNLI has two,
  validation_matched and validation_mismatched ([P] averages them).
  """
  out = []
  for task in cfg.glue_tasks:
    spec = glue_lib.get_task(task)
    if split == 'validation' and cfg.name == 'glue':
      out += [(task, s) for s in spec.eval_splits]
    else:
      out.append((task, split))
  return out


def glue_eval_iterator(cfg, split: str, *, groups: Sequence[int],
                       data_dir: Optional[str], process_index: int,
                       process_count: int) -> tuple[Any, int]:
  """Every example of each task's `split`, with `mask` [B_p] and `group`
  [B_p]: groups[i] for the i-th pair of glue_eval_splits."""
  local = cfg.eval_batch_size // process_count
  multitask = len(cfg.glue_tasks) > 1
  parts, most = [], 0
  for g, (task, tfds_split) in enumerate(glue_eval_splits(cfg, split)):
    sub = tfds.even_splits(tfds_split, n=process_count)[process_index]
    ds = _glue_ds(cfg, task, sub, data_dir, multitask).cache()
    # even_splits gives every process at most ceil(n / P) examples.
    n = _count(_glue_ds(cfg, task, tfds_split, data_dir, multitask))
    most += -(-n // process_count)
    parts.append(ds.map(lambda x, g=groups[g]: dict(x, group=tf.constant(g))))
  ds = parts[0]
  for p in parts[1:]:
    ds = ds.concatenate(p)
  return _pad_eval(ds, most, local)
