"""Flags every training launcher shares: multi-host start-up and logging.

Imported by launch/train.py, launch/eval.py and launch/main.py, which call
`setup()` first in their main. Flags only; the work is in perceiver.train.
"""
from absl import flags

from perceiver.train import distributed
from perceiver.train import logs

_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', '', 'host:port of process 0 (multi-process).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 0, 'Processes in all.')
_PROCESS_ID = flags.DEFINE_integer('process_id', -1, 'This process, 0-based.')
_AUTO = flags.DEFINE_bool(
    'distributed_auto', False,
    'jax.distributed.initialize() with no arguments (TPU pods).')
_LIBRARY_LOGS = flags.DEFINE_bool(
    'show_library_logs', False,
    "Also print the libraries' INFO lines (Orbax, TFDS, JAX); by default "
    "only the project's own lines and every warning are printed.")


def setup() -> None:
  """Logging, then (for several processes) jax.distributed."""
  logs.configure(show_library_logs=_LIBRARY_LOGS.value)
  distributed.initialize(coordinator_address=_COORDINATOR.value,
                         num_processes=_NUM_PROCESSES.value,
                         process_id=_PROCESS_ID.value, auto=_AUTO.value)
