"""Multi-process start-up: one JAX process per host (or per GPU).

Called once by the launch scripts, before any other JAX call:
  * explicit (GPU clusters, CPU tests): coordinator address, number of
    processes and this process's id, e.g. from SLURM variables;
  * 'auto' (TPU pods): `jax.distributed.initialize()` with no arguments,
    which reads the TPU (or SLURM) environment itself;
  * otherwise nothing: one process.
On CPU the collectives between processes go through gloo.

A lost process ends the job. JAX's coordination service (in process 0)
marks a process that sends no heartbeat for `heartbeat_timeout_seconds` as
failed and terminates every other process (SIGABRT, after logging "The
following tasks are unhealthy (stopped sending heartbeats): <ids>"), so no
process waits forever on a collective with a dead peer. Before that, a
process whose own step fails (gloo reports the broken connection at once)
calls `report_stopped`, which names the processes that did not answer and
the last checkpoint on disk; the relaunched job resumes from it. A process
that is waiting in one of Orbax's checkpoint barriers (coordination service,
not gloo) when a peer dies learns of it only from the heartbeat timeout and
is ended at once; so are the others when process 0, which runs the
service, is lost (measured: within 3 s). Their last words are then the
service's line naming the lost task (or "the leader task"), after the
trainer's "last checkpoint" line of its latest save.
"""
import os
import threading
import time
from typing import Optional

from absl import logging
import jax

# How long a process that stopped on an error waits for the others to say
# that they stopped too; the ones that do not are reported as lost.
_ANSWER_SECONDS = 3.0
_STOPPED_KEY = 'perceiver_stopped/'


def initialize(*, coordinator_address: str = '', num_processes: int = 0,
               process_id: int = -1, auto: bool = False,
               local_device_ids: Optional[list[int]] = None,
               heartbeat_timeout_seconds: int = 30) -> None:
  """Starts jax.distributed for this process (see the module docstring).

  Args:
    coordinator_address: host:port of process 0 ('' for one process or auto).
    num_processes: processes in all.
    process_id: this process, 0-based.
    auto: jax.distributed.initialize() with no arguments (TPU pods).
    local_device_ids: the devices this process uses (default: all visible).
    heartbeat_timeout_seconds: a process silent for this long is declared
      lost and the coordination service ends the others. It bounds the time
      a job with a lost host takes to stop; it must stay well above any
      stall of a healthy host (heartbeats come from a background thread, so
      long compilations do not count).
  """
  if heartbeat_timeout_seconds <= 0:
    raise ValueError(f'heartbeat_timeout_seconds={heartbeat_timeout_seconds}:'
                     ' give a positive number of seconds.')
  if coordinator_address:
    if num_processes <= 0 or process_id < 0:
      raise ValueError(
          'With --coordinator_address, also give --num_processes (>0) and '
          '--process_id (0..num_processes-1).')
    # CPU collectives across processes (a no-op setting on GPU/TPU).
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes,
        process_id=process_id, local_device_ids=local_device_ids,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds)
  elif auto:
    jax.distributed.initialize(
        heartbeat_timeout_seconds=heartbeat_timeout_seconds)


def _client():
  # The coordination service client of jax.distributed (what Orbax's
  # multi-host barriers use too); None in a single-process run.
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  return distributed.global_state.client


def unanswered_processes(timeout_seconds: float = _ANSWER_SECONDS
                         ) -> Optional[list[int]]:
  """The processes that have not called this function within
  `timeout_seconds` of this process's call, through the coordination
  service's key-value store; None when the service itself cannot be reached
  (process 0, which runs it, is gone) or there is one process."""
  client = _client()
  count = jax.process_count()
  if client is None or count == 1:
    return None
  answer: dict[str, Optional[list[int]]] = {}

  def probe():
    try:
      client.key_value_set(f'{_STOPPED_KEY}{jax.process_index()}', 'stopped',
                           allow_overwrite=True)
      deadline = time.monotonic() + timeout_seconds
      while True:
        seen = {int(key.rsplit('/', 1)[-1])
                for key, _ in client.key_value_dir_get(_STOPPED_KEY)}
        missing = sorted(set(range(count)) - seen)
        if not missing or time.monotonic() > deadline:
          answer['missing'] = missing
          return
        time.sleep(0.1)
    except Exception:  # pylint: disable=broad-exception-caught
      answer['missing'] = None  # the service is unreachable

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout_seconds + 5.0)  # an unreachable service may not answer
  return answer.get('missing')


def last_checkpoint(directory: str) -> Optional[tuple[int, str]]:
  """(step, path) of the newest complete step folder in `directory`, read
  from the file system (no collective, no Orbax call: the other processes
  may be gone). Orbax renames a step's folder to its number only once every
  process has written it."""
  try:
    steps = [int(n) for n in os.listdir(directory) if n.isdigit()]
  except OSError:
    return None
  if not steps:
    return None
  return max(steps), os.path.join(directory, str(max(steps)))


def report_stopped(error: BaseException, checkpoint_dir: str) -> str:
  """Logs (and returns) why this process of a multi-process job stops: the
  processes that did not answer (lost: killed, preempted, crashed, or
  stuck), the last checkpoint and the way to resume. Called on the way out of
  a failed training loop, before anything that could wait for the lost
  processes."""
  me, count = jax.process_index(), jax.process_count()
  missing = unanswered_processes()
  last = last_checkpoint(checkpoint_dir)
  where = (f'Last checkpoint: step {last[0]} at {last[1]}.' if last else
           f'No checkpoint was saved yet in {checkpoint_dir}.')
  what = ' '.join(f'{type(error).__name__}: {error}'.split())[:400]
  if missing is None:
    lost = ('Lost process 0 (the coordinator): its coordination service '
            'cannot be reached.')
  elif missing:
    lost = (f'Lost process{"es" if len(missing) > 1 else ""} '
            f'{", ".join(map(str, missing))} of {count}: no answer within '
            f'{_ANSWER_SECONDS:.0f} s (killed, preempted, crashed or stuck).')
  else:
    lost = 'No process was lost: every process stopped on an error.'
  advice = (f' Relaunch all {count} processes with the same command to '
            'resume from it.' if missing != [] else '')
  message = (f'Process {me} of {count} stops. {lost} {where}{advice} The '
             f'error here: {what}')
  logging.error('%s', message)
  return message
