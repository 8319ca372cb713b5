"""What a run prints: the project's own lines, and warnings from anywhere.

The libraries under the loop (Orbax above all, also TFDS, etils and JAX)
log hundreds of INFO lines per run: every checkpoint save is about twenty.
`configure(show_library_logs=False)` keeps the terminal to the project's
progress, eval and summary lines plus every WARNING and ERROR, whoever
logs them; `show_library_logs=True` restores everything. The launchers
call it once (their --show_library_logs flag); library code never does.
"""
import logging
import os

from absl import logging as absl_logging

# INFO lines from files under these folders are the project's own.
_OWN_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), d) + os.sep
    for d in ('perceiver', 'launch', 'benchmarks'))


class OwnInfoFilter(logging.Filter):
  """Passes WARNING and above from anyone, lower levels only from the
  project's own files."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return True
    return os.path.abspath(record.pathname).startswith(_OWN_DIRS)


# Library warnings that describe intended use, not a problem, dropped too:
#   * Orbax, on a checkpoint saved between evals: the best-checkpoint policy
#     ranks only checkpoints saved with an eval metric, by design;
#   * Orbax, on every read-only manager (evaluate, export);
#   * Orbax, reading the item metadata of a step for a target-less restore.
BENIGN_LIBRARY_WARNINGS = (
    'Requested `tracked_metric`; did not provide metrics.',
    'Given directory is read only',
    'Metadata file does not exist:',
)


class QuietFilter(OwnInfoFilter):
  """OwnInfoFilter, and the benign library warnings dropped as well."""

  def filter(self, record: logging.LogRecord) -> bool:
    if not super().filter(record):
      return False
    if record.levelno == logging.WARNING and not os.path.abspath(
        record.pathname).startswith(_OWN_DIRS):
      message = record.getMessage()
      return not any(m in message for m in BENIGN_LIBRARY_WARNINGS)
    return True


_FILTER = QuietFilter()


def configure(show_library_logs: bool = False) -> None:
  """Installs (or removes) the filter on the handler that absl writes with."""
  absl_logging.set_verbosity(absl_logging.INFO)
  handler = absl_logging.get_absl_handler()
  if show_library_logs:
    handler.removeFilter(_FILTER)
  elif _FILTER not in handler.filters:
    handler.addFilter(_FILTER)
