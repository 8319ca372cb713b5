"""tf.data pipelines that feed the training loop, one process at a time.

Shapes: B global batch, B_p per-process batch, B_s per-shard batch,
S data shards, P processes, H, W, C image, K classes.

Sharding. The train split is cut into S = config.input.num_shards equal
pieces with `tfds.even_splits` (default S = P). Process p reads only shards
[p*S/P, (p+1)*S/P): each process reads only its own part of the input. Every
shard yields B_s = B / S examples per step and a process concatenates its
shards, so the global batch (processes in order) is the same for any P that
divides S. Tests use that to compare one process with two.

Determinism and resume. The stream of a shard is a pure function of
(seed, shard, step):
  * epoch e is the shard shuffled with seed (seed, shard, e);
  * example i of the stream (counting from the start of training) is
    augmented with stateless ops seeded by (seed, shard, i);
  * batch-level augmentation (MixUp/CutMix) is seeded by (seed, shard, step).
Resuming at step s rebuilds the stream at example s * B_s: it starts at
epoch (s * B_s) // n and skips the rest of that epoch's examples (a read,
not a decode; at most one epoch of one shard). No iterator state is
checkpointed, and a resumed run sees exactly the same batches.
"""
import importlib
import os
from typing import Any, Iterator, Optional

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from perceiver.tasks import common

AUTOTUNE = tf.data.AUTOTUNE
_MAX_EPOCHS = 1 << 40


def hide_accelerators_from_tf() -> None:
  """tf.data runs on the host; keep TF off the GPUs/TPUs that JAX uses."""
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')


def dataset_module(input_config: ml_collections.ConfigDict):
  """The input module of `config.input.module` (e.g.
  perceiver.tasks.image.mnist): `get_builder`, `preprocess`,
  `batch_augment`, `default_input_config`."""
  return importlib.import_module(input_config.module)


def default_input_config() -> ml_collections.ConfigDict:
  """The `config.input` keys of the streams built here, with defaults.

  Tasks that read through this module add them to their own input keys
  (`default_input_config(config)` of the task interface).
  """
  return ml_collections.ConfigDict(dict(
      shuffle_buffer=50_000,  # examples (the language tasks: documents)
      num_shards=0,  # data shards; 0 = one per process. Fixing it makes the
      #                global batch independent of the process count
      cache=True,  # cache decoded examples in memory (small data only)
      prefetch=2,  # batches
  ))


def task_input_config(config: ml_collections.ConfigDict,
                      default_module: str) -> ml_collections.ConfigDict:
  """`default_input_config(config)` of a task that reads a dataset module
  through this pipeline: `module` (config.input.module, else
  `default_module`), the stream keys and the dataset module's own keys."""
  module = config.input.get('module', default_module)
  keys = default_input_config()
  keys.module = module
  keys.update(importlib.import_module(module).default_input_config())
  return keys


def _shard_seed(seed: int, shard: int, salt: int) -> int:
  # Independent 31-bit seeds for each (seed, shard, purpose).
  return int(np.random.SeedSequence([seed, shard, salt]).generate_state(1)[0]
             & 0x7FFFFFFF)


def _num_examples(builder, split: str, ds: tf.data.Dataset) -> int:
  n = int(ds.cardinality())
  if n >= 0:
    return n
  try:
    return builder.info.splits[split].num_examples
  except (KeyError, ValueError):
    return int(ds.reduce(np.int64(0), lambda c, _: c + 1))


def _read(builder, split: str, module) -> tf.data.Dataset:
  decoders = getattr(module, 'DECODERS', None)
  return builder.as_dataset(split=split, shuffle_files=False,
                            decoders=decoders)


def _shard_stream(builder, module, cfg, split: str, shard: int,
                  shard_batch: int, *, seed: int, start_step: int
                  ) -> tf.data.Dataset:
  """Infinite, resumable, augmented batches [B_s, ...] of one shard."""
  base = _read(builder, split, module)
  if cfg.cache:
    base = base.cache()
  n = _num_examples(builder, split, base)
  if n < shard_batch:
    raise ValueError(f'Shard {split!r} has {n} examples, fewer than one '
                     f'per-shard batch ({shard_batch}); lower '
                     'config.input.global_batch_size or num_shards.')
  start = start_step * shard_batch  # first example index of this run
  epoch0, offset = divmod(start, n)
  shuffle_seed = _shard_seed(seed, shard, 0)

  def one_epoch(epoch):
    return base.shuffle(min(cfg.shuffle_buffer, n) or 1,
                        seed=shuffle_seed + epoch * 1_000_003,
                        reshuffle_each_iteration=False)

  ds = tf.data.Dataset.range(epoch0, _MAX_EPOCHS).flat_map(one_epoch)
  ds = ds.skip(offset).enumerate(start)
  example_seed = _shard_seed(seed, shard, 1)
  preprocess = module.preprocess(cfg, train=True)

  def per_example(index, features):
    rng = tf.stack([tf.constant(example_seed, tf.int64), index])
    return preprocess(features, rng)

  ds = ds.map(per_example, num_parallel_calls=AUTOTUNE, deterministic=True)
  ds = ds.batch(shard_batch, drop_remainder=True)
  batch_fn = module.batch_augment(cfg)
  if batch_fn is not None:
    batch_seed = _shard_seed(seed, shard, 2)
    ds = ds.enumerate(start_step).map(
        lambda step, b: batch_fn(b, tf.stack(
            [tf.constant(batch_seed, tf.int64), step])),
        num_parallel_calls=AUTOTUNE, deterministic=True)
  return ds


def _process_shards(cfg, process_index: int, process_count: int
                    ) -> tuple[int, range]:
  num_shards = cfg.num_shards or process_count
  if num_shards % process_count:
    raise ValueError(
        f'config.input.num_shards={num_shards} must be a multiple of the '
        f'number of processes ({process_count}).')
  if cfg.global_batch_size % num_shards:
    raise ValueError(
        f'config.input.global_batch_size={cfg.global_batch_size} must divide '
        f'into {num_shards} data shards; use a multiple of {num_shards}.')
  per = num_shards // process_count
  return num_shards, range(process_index * per, (process_index + 1) * per)


def train_iterator(cfg: ml_collections.ConfigDict, *, data_dir: Optional[str],
                   seed: int, start_step: int, process_index: int,
                   process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """Yields this process's batches {'images': [B_p, H, W, C], 'labels':
  [B_p, K]} for steps start_step, start_step + 1, ..."""
  module = dataset_module(cfg)
  builder = module.get_builder(cfg.name, data_dir or None)
  num_shards, shards = _process_shards(cfg, process_index, process_count)
  shard_batch = cfg.global_batch_size // num_shards
  splits = tfds.even_splits(cfg.train_split, n=num_shards)
  streams = [_shard_stream(builder, module, cfg, splits[s], s, shard_batch,
                           seed=seed, start_step=start_step) for s in shards]
  if len(streams) == 1:
    ds = streams[0]
  else:
    ds = tf.data.Dataset.zip(tuple(streams)).map(
        lambda *bs: tf.nest.map_structure(
            lambda *xs: tf.concat(xs, axis=0), *bs))
  ds = ds.prefetch(cfg.prefetch)
  return iter(tfds.as_numpy(ds))


def eval_iterator(cfg: ml_collections.ConfigDict, split: str, *,
                  data_dir: Optional[str], process_index: int,
                  process_count: int) -> tuple[Any, int]:
  """Returns (batches, num_batches) of the whole split for this process.

  Each batch is {'images', 'labels', 'mask' [B_p]}; padding examples have
  mask 0. Every process yields the same number of batches (the collectives
  in the eval step need it), so the padding also evens out the shards.
  """
  module = dataset_module(cfg)
  builder = module.get_builder(cfg.name, data_dir or None)
  lo, hi = common.process_slice(cfg.eval_batch_size, process_index,
                                process_count, 'eval_batch_size')
  local_batch = hi - lo
  total = _num_examples(builder, split, _read(builder, split, module))
  # even_splits gives each process at most ceil(total / P) examples: the
  # ceil(ceil(total / P) / B_p) = ceil(total / B) batches of common.
  num_batches = common.num_eval_batches(total, cfg.eval_batch_size)
  sub = tfds.even_splits(split, n=process_count)[process_index]
  preprocess = module.preprocess(cfg, train=False)
  zero_seed = tf.zeros([2], tf.int64)
  ds = _read(builder, sub, module).map(
      lambda f: dict(preprocess(f, zero_seed), mask=tf.constant(1.0)),
      num_parallel_calls=AUTOTUNE, deterministic=True)
  padding = tf.nest.map_structure(
      lambda s: tf.zeros(s.shape, s.dtype), ds.element_spec)
  ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat())
  ds = ds.take(num_batches * local_batch).batch(local_batch)
  ds = ds.prefetch(cfg.prefetch)
  return tfds.as_numpy(ds), num_batches


def resolve_data_dir(cfg: ml_collections.ConfigDict, workdir: str, *,
                     build_in_workdir: bool) -> Optional[str]:
  """config.input.data_dir, else <workdir>/tensorflow_datasets for datasets
  that build offline from installed packages (embedded, `build_in_workdir`),
  else None (TFDS's ~/tensorflow_datasets, where manual-download data go)."""
  if cfg.data_dir:
    return cfg.data_dir
  if build_in_workdir:
    return os.path.join(workdir, 'tensorflow_datasets')
  return None
