"""The one interface between the training loop and a task.

Shapes: B per-device batch (inside the step), B_p per-process batch.

A task is a Python module named by import path in `config.task.module` (no
registry; big_vision style). The loop (perceiver.train.trainer) calls only
the functions below and imports nothing task-specific. Every task lives in
its own folder under `perceiver/tasks/` with the same shape:

  perceiver/tasks/<name>/task.py     this interface (language has two:
                                     mlm.py and glue.py)
  perceiver/tasks/<name>/recipes.py  the experiments' config builders
  perceiver/tasks/<name>/...         inputs, models, metrics of the task

Config namespaces the task owns, both validated by
`perceiver.train.config_lib.validate` against the task's own defaults
(unknown keys fail, naming the closest known one):
  * `config.task`: `module` plus the task's options (loss weights, masking
    rates, label smoothing, ...), defaults from `default_task_config()`;
  * `config.input`: the base input keys of `config_lib.base_config()`
    (batch sizes, splits, data_dir) plus `default_input_config(config)`.

Batches are dicts of host numpy arrays, split over devices along axis 0,
except the entry `batch[SHARED]` (a dict, optional): step-wide values such as
sampled output-query indices, identical on every process, given whole to
every device (never split). Evaluation batches carry `mask` [B_p] (1 for a
real example, 0 for padding).

Metrics: `loss_and_metrics` returns per-device means; the loop averages them
over devices and logs every one under its own name ('train/<name>', and on
the progress line). `eval_sums` returns sums over the batch (padding has mask
0), added over devices and batches, and `finalize_eval` turns them into the
'eval/<name>' metrics. `config.best_metric` names one of those and
`config.best_mode` says whether lower ('min') or higher ('max') is better.
"""
from typing import Any, Iterable, Iterator, Mapping, Optional, Protocol, runtime_checkable

import haiku as hk
import jax
import ml_collections
import numpy as np

SHARED = 'shared'  # batch key of the step-wide (unsplit) entries

Batch = Mapping[str, Any]  # {name: array} plus optionally {SHARED: {...}}


@runtime_checkable
class Task(Protocol):
  """What a task module provides. Modules satisfy it by their functions."""

  # --- Configuration -------------------------------------------------------

  def default_task_config(self) -> ml_collections.ConfigDict:
    """The task's options under `config.task` (besides `module`), with their
    defaults. Recipes override values; nothing else may be added."""

  def default_input_config(self, config: ml_collections.ConfigDict
                           ) -> ml_collections.ConfigDict:
    """The `config.input` keys this task reads beyond the base ones, with
    defaults. May depend on config (e.g. on `config.input.module`)."""

  # --- Model, loss and metrics ---------------------------------------------

  def make_model(self, config: ml_collections.ConfigDict
                 ) -> hk.TransformedWithState:
    """The model: `forward(batch, *, is_training) -> outputs`, transformed
    with state. `batch` is the per-device batch (with SHARED whole)."""

  def example_batch(self, config: ml_collections.ConfigDict,
                    batch_size: int) -> dict[str, Any]:
    """Host arrays of one per-device training batch's shapes (for init)."""

  def loss_and_metrics(self, outputs: Any, batch: Batch,
                       config: ml_collections.ConfigDict
                       ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(loss [], {name: [] per-device mean}); the dict must hold 'loss'."""

  def eval_sums(self, outputs: Any, batch: Batch,
                config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
    """Sums over the real examples of the batch (batch['mask'])."""

  def finalize_eval(self, sums: Mapping[str, np.ndarray],
                    config: ml_collections.ConfigDict) -> dict[str, float]:
    """The eval metrics from the sums over the whole split."""

  # --- Input -------------------------------------------------------------

  def prepare_data(self, config: ml_collections.ConfigDict,
                   workdir: str) -> Optional[str]:
    """Builds what must exist before reading (an embedded TFDS dataset) and
    returns the data_dir the iterators read (None: the default). The loop
    calls it on process 0 first, then on the others; it must be idempotent.
    """

  def train_iterator(self, config: ml_collections.ConfigDict, *,
                     data_dir: Optional[str], seed: int, start_step: int,
                     process_index: int, process_count: int
                     ) -> Iterator[dict[str, Any]]:
    """This process's training batches for steps start_step + 1, ...: a
    pure function of (seed, step), so that a resumed run sees exactly the
    batches an uninterrupted one would."""

  def eval_iterator(self, config: ml_collections.ConfigDict, split: str, *,
                    data_dir: Optional[str], process_index: int,
                    process_count: int) -> tuple[Iterable[dict[str, Any]], int]:
    """(batches with 'mask', number of batches) of the whole `split`; every
    process yields the same number of batches."""


TASK_FUNCTIONS = tuple(
    name for name in Task.__dict__
    if not name.startswith('_') and callable(Task.__dict__[name]))


def check(module: Any) -> None:
  """Raises TypeError naming every missing function of the interface."""
  missing = [n for n in TASK_FUNCTIONS if not callable(getattr(module, n, None))]
  if missing:
    name = getattr(module, '__name__', repr(module))
    raise TypeError(
        f'Task module {name} lacks {", ".join(missing)} of the task interface '
        '(perceiver/train/task.py); config.task.module must name a task.')
