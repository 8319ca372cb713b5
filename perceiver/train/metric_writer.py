"""Metrics to the terminal, a progress line and TensorBoard event files.

Only the writer of process 0 is enabled: other processes compute metrics
(the collectives need them) but write nothing.
"""
import datetime
import sys
import time
from typing import Mapping, Optional, TextIO

from absl import logging


# Written by the loop itself; the task's metrics are everything else.
_LOOP_METRICS = ('train/loss', 'train/lr', 'train/grad_norm')


class MetricWriter:
  """Writes scalars to absl logging, tf.summary and a progress line."""

  def __init__(self, logdir: Optional[str], *, enabled: bool,
               total_steps: int, progress: bool = False,
               stream: Optional[TextIO] = None):
    self._enabled = enabled
    self._total = total_steps
    self._progress = progress and enabled
    self._stream = stream or sys.stderr
    self._summary = None
    if enabled and logdir:
      # Imported here: TensorFlow takes seconds to import, and only process
      # 0 of a run with a logdir writes events.
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._tf = tf
      from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
      self._summary = tf.summary.create_file_writer(logdir)
      self._metadata = summary_pb2.SummaryMetadata(
          plugin_data=summary_pb2.SummaryMetadata.PluginData(
              plugin_name='scalars'))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._enabled:
      return
    if self._summary is not None:
      # tf.summary.write with the 'scalars' plugin metadata is exactly what
      # tf.summary.scalar writes; it needs no tensorboard package (which
      # tensorflow-cpu 2.21 no longer installs).
      with self._summary.as_default(step=step):
        for name, value in scalars.items():
          self._tf.summary.write(name, self._tf.constant(value, self._tf.float32),
                                 metadata=self._metadata)
      self._summary.flush()

  def log_train(self, step: int, scalars: Mapping[str, float]) -> None:
    """One terminal line (and the progress line) for the train metrics."""
    if not self._enabled:
      return
    eta = datetime.timedelta(seconds=int(scalars.get('eta_seconds', 0)))
    # The task's own metrics, by the names its loss_and_metrics gave them.
    task_metrics = ''.join(
        f'{k[len("train/"):]} {v:.4g} | ' for k, v in scalars.items()
        if k.startswith('train/') and k not in _LOOP_METRICS)
    line = (f'step {step}/{self._total} | loss {scalars["train/loss"]:.4f} | '
            f'{task_metrics}lr {scalars["train/lr"]:.3g}'
            f' | grad_norm {scalars["train/grad_norm"]:.3g} | '
            f'{scalars["perf/examples_per_sec"]:.0f} ex/s | '
            f'{scalars["perf/steps_per_sec"]:.2f} steps/s | ETA {eta}')
    if self._progress:
      width = 20
      done = int(width * step / max(self._total, 1))
      bar = '#' * done + '.' * (width - done)
      self._stream.write(f'\r[{bar}] {line}')
      self._stream.flush()
    else:  # the progress line replaces the log line on a terminal
      logging.info('%s', line)

  def log(self, message: str) -> None:
    if not self._enabled:
      return
    if self._progress:
      self._stream.write('\n')
    logging.info('%s', message)

  def close(self) -> None:
    if self._progress:
      self._stream.write('\n')
    if self._summary is not None:
      self._summary.close()


class Timer:
  """Examples/s, steps/s and ETA between two log points."""

  def __init__(self, start_step: int, total_steps: int):
    self._t, self._step, self._total = time.time(), start_step, total_steps

  def lap(self, step: int, examples_per_step: int) -> dict[str, float]:
    now = time.time()
    dt, ds = max(now - self._t, 1e-9), max(step - self._step, 1)
    self._t, self._step = now, step
    steps_per_sec = ds / dt
    return {'perf/steps_per_sec': steps_per_sec,
            'perf/examples_per_sec': steps_per_sec * examples_per_step,
            'eta_seconds': (self._total - step) / steps_per_sec}
