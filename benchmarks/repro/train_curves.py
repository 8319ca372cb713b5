r"""Training curves of launch/train.py runs, read from their TensorBoard events.

Reads `<workdir>/tensorboard/events.*` (perceiver/train/metric_writer.py
writes them) of each run and plots one metric, or the ratio of two, against
the step, one line per run; prints the table of values at a few steps.
Plotting needs matplotlib (a benchmark-only dependency:
pip install matplotlib).

  python benchmarks/repro/train_curves.py \
      --run="release design=workdirs/flow_release" \
      --run="levers=workdirs/flow_levers" \
      --metric=train/loss --over=train/zero_loss --smooth=4 \
      --ylabel="training loss / zero flow's" \
      --png=benchmarks/repro/figures/flow_curves.png

`--hline=LABEL=VALUE` draws a reference (e.g. the unigram's eval loss,
benchmarks/repro/mlm_baselines.py).
"""
import glob
import os

from absl import app
from absl import flags
import numpy as np

_RUNS = flags.DEFINE_multi_string('run', [], 'LABEL=WORKDIR, repeatable '
                                   '(split at the last =).')
_METRIC = flags.DEFINE_string('metric', 'train/loss', 'The scalar plotted.')
_OVER = flags.DEFINE_string('over', '', 'Divide by this scalar of the same '
                            'step (e.g. train/zero_loss).')
_SMOOTH = flags.DEFINE_integer('smooth', 1, 'Moving average over this many '
                               'logged points.')
_YLABEL = flags.DEFINE_string('ylabel', '', 'The y axis label.')
_PNG = flags.DEFINE_string('png', '', 'Write the figure here.')
_HLINE = flags.DEFINE_multi_string(
    'hline', [], 'LABEL=VALUE: a dashed reference line (e.g. a baseline\'s '
    'loss), listed under the table too; repeatable.')
_AT = flags.DEFINE_list('at', [], 'Print the (smoothed) value of the last '
                        'point logged at or before these steps; default: 8 '
                        'evenly spaced steps.')


def read_scalars(workdir: str) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} of a run's TensorBoard events (the last write of
  a step wins, as when a resumed run logs a step again)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  paths = sorted(glob.glob(os.path.join(workdir, 'tensorboard',
                                        'events.out.tfevents.*')))
  if not paths:
    raise FileNotFoundError(
        f'No TensorBoard events under {workdir}/tensorboard: is it the '
        'workdir of a launch/train.py run (process 0 writes them)?')
  out: dict[str, dict[int, float]] = {}
  for path in paths:
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        number = float(tf.make_ndarray(value.tensor)) if value.HasField(
            'tensor') else float(value.simple_value)
        out.setdefault(value.tag, {})[int(event.step)] = number
  return out


def curve(scalars, metric: str, over: str = '', smooth: int = 1
          ) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of `metric` (divided by `over`), smoothed."""
  if metric not in scalars:
    raise KeyError(f'{metric!r} was not logged; logged: {sorted(scalars)}.')
  steps = sorted(scalars[metric])
  values = np.array([scalars[metric][s] for s in steps])
  if over:
    values = values / np.array([scalars[over][s] for s in steps])
  if smooth > 1 and len(values) >= smooth:
    values = np.convolve(values, np.ones(smooth) / smooth, 'valid')
    steps = steps[smooth - 1:]
  return np.array(steps), values


def main(argv):
  del argv
  if not _RUNS.value:
    raise app.UsageError('Give at least one --run=LABEL=WORKDIR.')
  curves = {}
  for run in _RUNS.value:
    label, eq, workdir = run.rpartition('=')  # labels may hold '='
    if not eq:
      raise app.UsageError(f'--run={run!r}: expected LABEL=WORKDIR.')
    curves[label] = curve(read_scalars(workdir), _METRIC.value, _OVER.value,
                          _SMOOTH.value)
  name = _METRIC.value + (f' / {_OVER.value}' if _OVER.value else '')
  last = max(s[-1] for s, _ in curves.values())
  at = ([int(a) for a in _AT.value] if _AT.value else
        sorted({int(round(last * k / 8)) for k in range(1, 9)}))
  print(f'| {name} (smoothed over {_SMOOTH.value}) | ' +
        ' | '.join(str(a) for a in at) + ' |')
  print('|---|' + '---|' * len(at))
  for label, (steps, values) in curves.items():
    cells = []
    for a in at:  # the last logged point at or before step a
      i = np.searchsorted(steps, a, 'right') - 1
      cells.append(f'{values[i]:.3f}' if i >= 0 and a <= steps[-1] else '')
    print(f'| {label} | ' + ' | '.join(cells) + ' |')
  hlines = []
  for item in _HLINE.value:
    label, eq, value = item.rpartition('=')
    if not eq:
      raise app.UsageError(f'--hline={item!r}: expected LABEL=VALUE.')
    hlines.append((label, float(value)))
    print(f'| {label} (reference) | ' + ' | '.join(
        [f'{float(value):.3f}'] * len(at)) + ' |')
  if _PNG.value:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (steps, values) in curves.items():
      ax.plot(steps, values, label=label)
    for (label, value), color in zip(hlines, ('k', 'grey', 'tab:brown')):
      ax.axhline(value, ls='--', lw=1, color=color, label=label)
    ax.set_xlabel('step')
    ax.set_ylabel(_YLABEL.value or name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(_PNG.value, dpi=110)
    print(f'wrote {_PNG.value}')


if __name__ == '__main__':
  app.run(main)
