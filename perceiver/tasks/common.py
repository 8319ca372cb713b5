"""What the tasks share (perceiver/tasks/*): the loop's switches of the
encoder, the process slice of a global batch, a background prefetcher for
data generated on the fly, and the padded held-out batches.

No TensorFlow here: the tasks that generate their data (flow, entities)
import this module without it; perceiver/data/pipeline.py (the tf.data
tasks) uses the same process slice and batch count.
"""
import itertools
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping

import ml_collections
import numpy as np


# --- Model ----------------------------------------------------------------


def with_layer_switches(encoder_kwargs: Mapping[str, Any],
                        config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`encoder_kwargs` plus the loop's fast-path switches (`config.remat`,
  `config.scan_layers`: PerceiverEncoder kwargs), each passed only when on,
  so that the default call is exactly the release's kwargs."""
  out = dict(encoder_kwargs)
  if config.get('remat'):
    out['remat'] = True
  if config.get('scan_layers'):
    out['scan_layers'] = True
  return out


# --- Batches across processes ----------------------------------------------


def process_slice(global_batch: int, process_index: int, process_count: int,
                  name: str = 'global_batch_size') -> tuple[int, int]:
  """[lo, hi): this process's rows of a global batch of `global_batch`
  (`name` is its config.input key, for the error)."""
  if global_batch % process_count:
    raise ValueError(
        f'config.input.{name}={global_batch} does not divide across '
        f'{process_count} processes; use a multiple of {process_count}.')
  per = global_batch // process_count
  return process_index * per, (process_index + 1) * per


def num_eval_batches(num_examples: int, global_batch: int) -> int:
  """Global batches that hold a split of `num_examples`, the last padded
  (the same count on every process: the eval step's collectives need it)."""
  return -(-num_examples // global_batch)


def eval_rows(batch_index: int, num_examples: int, global_batch: int,
              lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
  """(example indices, real) of rows [lo, hi) of global eval batch
  `batch_index`: rows past the end of the split are example 0 with
  real = False (their mask is 0)."""
  index = np.arange(batch_index * global_batch + lo,
                    batch_index * global_batch + hi)
  real = index < num_examples
  return np.where(real, index, 0), real


def pad_rows(batch: Mapping[str, np.ndarray], rows: int
             ) -> dict[str, np.ndarray]:
  """`batch` with copies of its first row appended up to `rows` rows (the
  padding of a last eval batch, masked out)."""
  return {k: np.concatenate([v, np.repeat(v[:1], rows - len(v), 0)])
          if len(v) < rows else v for k, v in batch.items()}


# --- Data generated on the fly ----------------------------------------------


def prefetch(make: Callable[[Any], Any], items: Iterable[Any], depth: int
             ) -> Iterator[Any]:
  """Yields make(item) for items, computed `depth` ahead in a thread (the
  numpy generation overlaps the device step, which releases the GIL)."""
  if depth <= 0:
    for item in items:
      yield make(item)
    return
  q: queue.Queue = queue.Queue(maxsize=depth)
  stop = threading.Event()

  def work():
    try:
      for item in items:
        if stop.is_set():
          return
        q.put(('ok', make(item)))
      q.put(('done', None))
    except BaseException as e:  # pylint: disable=broad-except
      q.put(('error', e))

  thread = threading.Thread(target=work, daemon=True)
  thread.start()
  try:
    while True:
      kind, value = q.get()
      if kind == 'error':
        raise value
      if kind == 'done':
        return
      yield value
  finally:
    stop.set()


def generated_train_batches(make: Callable[[int, range], Any], *,
                            global_batch: int, start_step: int,
                            process_index: int, process_count: int,
                            depth: int) -> Iterator[Any]:
  """This process's batches for steps start_step + 1, ...: make(step,
  example indices), where (1-based) global batch `step` holds examples
  (step - 1) * global_batch ... step * global_batch - 1 and this process
  makes its slice of them, `depth` batches ahead. A pure function of the
  step, so the global batch is the same for any process count and a
  resumed run sees the batches of an uninterrupted one."""
  lo, hi = process_slice(global_batch, process_index, process_count)

  def at(step):
    first = (step - 1) * global_batch
    return make(step, range(first + lo, first + hi))

  return prefetch(at, itertools.count(start_step + 1), depth)
