"""MLM pretraining data through tf.data ([P] §4.1, App F.3).

[P] §4.1, App. F.3: C4 (70%) and English Wikipedia (30%) of
training tokens; 10 documents concatenated, cropped to 2048 bytes or 512 SPM
tokens; whole-word masking with p = 0.15 (see `masking`).

Shape glossary: B batch size, T sequence length.

Every dataset here yields dicts of [T] tensors (`masking.MLM_FEATURES`):
inputs int32, input_mask int32, targets int32, target_mask int32,
loss_weights float32. Batch with `.batch(B, drop_remainder=True)`.

Decisions:
* The mixture samples *examples*, each packed from 10 documents of one
  source, with `tf.data.Dataset.sample_from_datasets(weights=[0.7, 0.3])`.
  Every example holds T tokens (minus rare padding), so the weights are
  fractions of training tokens as the paper states; mixing documents
  instead would weight by document count, and C4 and Wikipedia documents
  differ in length.
* `stop_on_empty_dataset=True`: the mixture ends when any source runs out,
  so the ratio never drifts. Training passes `repeat=True`.
* DEVIATION: TFDS Wikipedia has only a 'train' split. Validation uses its
  last 1% ('train[99%:]') and training its first 99%; C4 uses its own
  'train' / 'validation' splits.
* Default TFDS names: 'c4/en:3.1.0' and 'wikipedia/20230601.en' (the paper's
  dumps are unspecified). Both are arguments.
* Missing data raises FileNotFoundError naming the TFDS name, the data_dir
  searched and how to prepare it; nothing is downloaded.
"""
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from perceiver.tasks.language import masking
from perceiver.tasks.language import tfds_builders

C4_NAME = 'c4/en:3.1.0'
WIKIPEDIA_NAME = 'wikipedia/20230601.en'
MIXTURE_WEIGHTS = (0.7, 0.3)  # [P] §4.1: C4 70%, Wikipedia 30%.
_SPLITS = {  # split -> (C4 split, Wikipedia split)
    'train': ('train', 'train[:99%]'),
    'validation': ('validation', 'train[99%:]'),
}


def load_tfds_split(name: str, split: str, data_dir: Optional[str] = None,
                    shuffle_files: bool = False) -> tf.data.Dataset:
  """`tfds.builder(name).as_dataset(split)`, with a clear error if missing."""
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # Unknown name/config/version.
    raise ValueError(f'Unknown TFDS dataset {name!r}: {e}') from e
  try:
    return builder.as_dataset(split=split, shuffle_files=shuffle_files)
  except AssertionError as e:
    where = data_dir or '~/tensorflow_datasets (TFDS default data_dir)'
    raise FileNotFoundError(
        f'TFDS dataset {name!r} (split {split!r}) is not prepared under '
        f'data_dir={where}. This code never downloads. Prepare it on a '
        f'machine with access to the source data (`tfds build {name} '
        f'--data_dir=DIR`, or copy an existing {builder.info.full_name} '
        f'folder to DIR/{builder.info.full_name}), then pass data_dir=DIR.'
    ) from e


def text_dataset(name: str, split: str, data_dir: Optional[str] = None,
                 text_key: str = 'text', shuffle_files: bool = False,
                 ) -> tf.data.Dataset:
  """A TFDS dataset reduced to its text feature: scalar tf.string items."""
  ds = load_tfds_split(name, split, data_dir, shuffle_files)
  if text_key not in ds.element_spec:
    raise KeyError(f'text_dataset: {name!r} has no feature {text_key!r}; '
                   f'features: {sorted(ds.element_spec)}. Set `text_key`.')
  return ds.map(lambda x: x[text_key], num_parallel_calls=tf.data.AUTOTUNE)


def mlm_dataset(
    texts: tf.data.Dataset,
    tokenizer: masking.Tokenizer,
    config: masking.MlmConfig,
    seed: int = 0,
    shuffle_buffer: int = 0,
    repeat: bool = False,
) -> tf.data.Dataset:
  """MLM examples [T] from a dataset of documents (scalar tf.string).

  Args:
    texts: documents, one per element.
    tokenizer: a `tokenizers.Tokenizer`.
    config: `masking.MlmConfig`.
    seed: masking/cropping seed; example i uses `masking.example_rng(seed, i)`.
    shuffle_buffer: document shuffle buffer (0: keep order).
    repeat: repeat the documents forever (training).
  """
  if texts.element_spec != tf.TensorSpec([], tf.string):
    raise TypeError(
        'mlm_dataset: `texts` must yield scalar tf.string documents, got '
        f'{texts.element_spec}; map your dataset to its text feature first '
        '(see text_dataset).')
  if repeat:
    texts = texts.repeat()
  if shuffle_buffer:
    texts = texts.shuffle(shuffle_buffer, seed=seed)
  groups = texts.batch(config.docs_per_example, drop_remainder=True)
  return groups.enumerate().map(mlm_example_map(tokenizer, config, seed),
                                num_parallel_calls=tf.data.AUTOTUNE,
                                deterministic=True)


def mlm_example_map(tokenizer, config: masking.MlmConfig, seed: int):
  """tf.data map: (index, docs [docs_per_example]) -> {feature: [T] tensor}.

  The example is a pure function of (seed, index), as in masking.mlm_examples.
  """
  length = config.length_for(tokenizer)

  def make(index, docs):
    docs = [d.decode('utf-8', errors='replace') for d in docs]
    ex = masking.make_mlm_example(docs, tokenizer, config,
                                  masking.example_rng(seed, int(index)))
    return tuple(ex[k] for k in masking.MLM_FEATURES)

  dtypes = (tf.int32, tf.int32, tf.int32, tf.int32, tf.float32)

  def to_dict(index, docs):
    values = tf.numpy_function(make, [index, docs], dtypes, stateful=False)
    out = {}
    for k, v in zip(masking.MLM_FEATURES, values):
      v.set_shape([length])
      out[k] = v
    return out

  return to_dict


def mixture_mlm_dataset(
    sources: Sequence[tf.data.Dataset],
    weights: Sequence[float],
    tokenizer: masking.Tokenizer,
    config: masking.MlmConfig,
    seed: int = 0,
    shuffle_buffer: int = 0,
    repeat: bool = False,
) -> tf.data.Dataset:
  """Per-source MLM examples mixed by `weights` (fractions of examples)."""
  if len(sources) != len(weights) or not sources:
    raise ValueError(
        f'mixture_mlm_dataset: need one weight per source, got '
        f'{len(sources)} sources and {len(weights)} weights.')
  if min(weights) < 0 or sum(weights) <= 0:
    raise ValueError(f'mixture_mlm_dataset: `weights` must be non-negative '
                     f'with a positive sum, got {list(weights)}.')
  # A distinct, reproducible seed per source.
  seeds = np.random.SeedSequence(seed).generate_state(len(sources))
  per_source = [
      mlm_dataset(texts, tokenizer, config, int(s), shuffle_buffer, repeat)
      for texts, s in zip(sources, seeds)
  ]
  total = float(sum(weights))
  return tf.data.Dataset.sample_from_datasets(
      per_source, weights=[w / total for w in weights], seed=seed,
      stop_on_empty_dataset=True)


def c4_wikipedia_mlm_dataset(
    split: str,
    tokenizer: masking.Tokenizer,
    config: masking.MlmConfig,
    data_dir: Optional[str] = None,
    seed: int = 0,
    shuffle_buffer: int = 0,
    repeat: bool = False,
    c4_name: str = C4_NAME,
    wikipedia_name: str = WIKIPEDIA_NAME,
    weights: Sequence[float] = MIXTURE_WEIGHTS,
) -> tf.data.Dataset:
  """The paper's pretraining data: C4 70% + Wikipedia 30% ([P] §4.1)."""
  if split not in _SPLITS:
    raise ValueError(f'c4_wikipedia_mlm_dataset: `split` must be one of '
                     f'{sorted(_SPLITS)}, got {split!r}.')
  c4_split, wiki_split = _SPLITS[split]
  c4 = text_dataset(c4_name, c4_split, data_dir, shuffle_files=repeat)
  wiki = text_dataset(wikipedia_name, wiki_split, data_dir,
                      shuffle_files=repeat)
  return mixture_mlm_dataset([c4, wiki], weights, tokenizer, config, seed,
                             shuffle_buffer, repeat)


def embedded_mlm_dataset(
    split: str,
    tokenizer: masking.Tokenizer,
    config: masking.MlmConfig,
    data_dir: str,
    source_dir: Optional[str] = None,
    seed: int = 0,
    shuffle_buffer: int = 0,
    repeat: bool = False,
) -> tf.data.Dataset:
  """MLM examples from the offline `kjv_shakespeare` corpus (built if needed).

  Documents are shuffled (`shuffle_buffer`, default the whole corpus for
  training) so that a 10-document concatenation mixes books and plays.
  """
  builder = tfds_builders.prepare('kjv_shakespeare', data_dir, source_dir)
  texts = builder.as_dataset(split=split).map(lambda x: x['text'])
  return mlm_dataset(texts, tokenizer, config, seed,
                     shuffle_buffer or (4096 if repeat else 0), repeat)

