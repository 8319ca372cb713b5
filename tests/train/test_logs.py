"""The terminal shows the project's lines and every warning, not the
libraries' INFO chatter (perceiver/train/logs.py)."""
import logging
import os

import orbax.checkpoint

from perceiver.train import logs
from perceiver.train import trainer


def _record(path, level):
  return logging.LogRecord('absl', level, path, 1, 'message', (), None)


def test_library_info_is_dropped_and_warnings_kept():
  orbax_file = os.path.join(os.path.dirname(orbax.checkpoint.__file__),
                            'checkpoint_manager.py')
  keep = logs.OwnInfoFilter().filter
  assert not keep(_record(orbax_file, logging.INFO))
  assert keep(_record(orbax_file, logging.WARNING))
  assert keep(_record(orbax_file, logging.ERROR))
  assert keep(_record(trainer.__file__, logging.INFO))  # the project's own


def test_benign_library_warnings_are_dropped_and_others_kept():
  orbax_file = os.path.join(os.path.dirname(orbax.checkpoint.__file__),
                            'checkpoint_manager.py')
  keep = logs.QuietFilter().filter
  benign = _record(orbax_file, logging.WARNING)
  benign.msg = 'Requested `tracked_metric`; did not provide metrics.'
  assert not keep(benign)
  other = _record(orbax_file, logging.WARNING)
  other.msg = 'Step 5 could not be read.'
  assert keep(other)
  assert not keep(_record(orbax_file, logging.INFO))


def test_configure_installs_and_removes_the_filter():
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  handler = absl_logging.get_absl_handler()
  try:
    logs.configure(show_library_logs=False)
    assert any(isinstance(f, logs.OwnInfoFilter) for f in handler.filters)
    logs.configure(show_library_logs=False)  # idempotent
    assert sum(isinstance(f, logs.OwnInfoFilter) for f in handler.filters) == 1
  finally:
    logs.configure(show_library_logs=True)
  assert not any(isinstance(f, logs.OwnInfoFilter) for f in handler.filters)
