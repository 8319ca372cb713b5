"""Multi-process start-up: one JAX process per host (or per GPU).

Called once by the launch scripts, before any other JAX call:
  * explicit (GPU clusters, CPU tests): coordinator address, number of
    processes and this process's id, e.g. from SLURM variables;
  * 'auto' (TPU pods): `jax.distributed.initialize()` with no arguments,
    which reads the TPU (or SLURM) environment itself;
  * otherwise nothing: one process.
On CPU the collectives between processes go through gloo.
"""
from typing import Optional

import jax


def initialize(*, coordinator_address: str = '', num_processes: int = 0,
               process_id: int = -1, auto: bool = False,
               local_device_ids: Optional[list[int]] = None) -> None:
  if coordinator_address:
    if num_processes <= 0 or process_id < 0:
      raise ValueError(
          'With --coordinator_address, also give --num_processes (>0) and '
          '--process_id (0..num_processes-1).')
    # CPU collectives across processes (a no-op setting on GPU/TPU).
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes,
                               process_id=process_id,
                               local_device_ids=local_device_ids)
  elif auto:
    jax.distributed.initialize()
