"""Flags every training launcher shares: multi-host start-up and logging.

Imported by launch/train.py, launch/eval.py, launch/export.py and
launch/main.py, which call `setup()` first in their main. Flags only; the
work is in perceiver.train. `check_flag` lets every launcher check its cheap
arguments while the flags are parsed, before anything is built.
"""
from typing import Any, Callable

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
_HEARTBEAT = flags.DEFINE_integer(
    'heartbeat_timeout_seconds', 30,
    'Multi-process: a process silent for this long is declared lost and '
    'the others stop (non-zero exit, naming it and the last checkpoint).',
    lower_bound=1)
_LIBRARY_LOGS = flags.DEFINE_bool(
    'show_library_logs', False,
    "Also print the libraries' INFO lines (Orbax, TFDS, JAX); by default "
    "only the project's own lines and every warning are printed.")


def check_flag(name: str, check: Callable[[Any], Any]) -> None:
  """Validates --name with `check(value)`, a library function that raises
  ValueError (or FileNotFoundError) with a clear message. A bad value stops
  the launcher at flag parsing, with that message."""
  def validator(value):
    if value is None:
      return True
    try:
      check(value)
    except (ValueError, FileNotFoundError) as e:
      raise flags.ValidationError(str(e)) from None
    return True
  flags.register_validator(name, validator)


def setup() -> None:
  """Logging, then (for several processes) jax.distributed."""
  logs.configure(show_library_logs=_LIBRARY_LOGS.value)
  distributed.initialize(coordinator_address=_COORDINATOR.value,
                         num_processes=_NUM_PROCESSES.value,
                         process_id=_PROCESS_ID.value, auto=_AUTO.value,
                         heartbeat_timeout_seconds=_HEARTBEAT.value)
