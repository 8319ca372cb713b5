r"""The CPU-scale flow reproduction's evaluation (benchmarks/repro/FLOW.md).

Evaluates trained runs of experiments/optical_flow.py (--arm, one per
run) beside three baselines, on the same pairs:
  * held-out generated pairs (the training distribution, a stream that
    training never draws), at the network's size;
  * REAL pairs with ground truth, box-downscaled so their disparities fall
    in the training range, evaluated at that size through tiled inference
    (perceiver.tasks.flow.inference, builders.tiled_flow):
      motorcycle  skimage.data.stereo_motorcycle(), / 8 -> 92 x 62
      aloe        opencv-doc aloeL/aloeR/aloeGT, / 16 -> 80 x 69
    (flow = -disparity along x; unknown disparities are excluded).
Baselines: zero flow; OpenCV's Farnebäck (the parameters of OpenCV's own
sample: pyr_scale 0.5, 3 levels, window 15, 3 iterations, poly_n 5,
sigma 1.2); OpenCV's DIS (preset MEDIUM). OpenCV is a benchmark-only
dependency: pip install opencv-python-headless. opencv-doc is Debian-only:
bash scripts/fetch_flow_data.sh extracts it and prints its folder.

  python benchmarks/repro/flow_repro.py \
      --arm="release design=cpu@workdirs/flow_cpu" \
      --arm="levers=cpu,qres,head_init,stem,motion=0.3@workdirs/flow_levers" \
      --opencv_data=.cache/opencv_data/examples/data \
      --json=benchmarks/repro/flow_repro.json \
      --picture=benchmarks/repro/figures/flow_repro.png

Prints a markdown table of EPE (px) and >3px outlier rates.
"""
import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from perceiver.tasks.flow import autoflow  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.flow import colorwheel  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.flow import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.flow import flow_io  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.flow import inference  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.flow import metrics  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.flow import task as flow_task  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.train import config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

_ARMS = flags.DEFINE_multi_string(
    'arm', ['release design=cpu@workdirs/flow_cpu'],
    'LABEL=VARIANT@WORKDIR, repeatable: a trained run (or checkpoint) of '
    'experiments/optical_flow.py:VARIANT, shown as "Perceiver IO, LABEL"; '
    'an empty WORKDIR evaluates the initialisation (a check). The first '
    "arm's config gives the held-out pairs.")
_OPENCV_DATA = flags.DEFINE_string(
    'opencv_data', '.cache/opencv_data/examples/data',
    "opencv-doc's examples/data (scripts/fetch_flow_data.sh).")
_NUM_GENERATED = flags.DEFINE_integer('num_generated', 128,
                                      'Held-out generated pairs.')
_JSON = flags.DEFINE_string('json', '', 'Write the results here.')
_PICTURE = flags.DEFINE_string('picture', '', 'Write the figure here (PNG).')
_REAL = flags.DEFINE_list('real', ['motorcycle', 'aloe'],
                          'The real pairs evaluated (of REAL).')
_OPENCV = flags.DEFINE_bool('opencv', True, "OpenCV's Farnebäck and DIS "
                            'beside the model (--noopencv: without OpenCV).')

REAL = (('motorcycle', 8), ('aloe', 16))


def _gray(image):
  import cv2  # pylint: disable=g-import-not-at-top
  return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def farneback(frames):
  import cv2  # pylint: disable=g-import-not-at-top
  return cv2.calcOpticalFlowFarneback(_gray(frames[0]), _gray(frames[1]),
                                      None, 0.5, 3, 15, 3, 5, 1.2, 0)


def dis(frames):
  import cv2  # pylint: disable=g-import-not-at-top
  method = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  return method.calc(_gray(frames[0]), _gray(frames[1]), None)


def _load_config(variant):
  return config_lib.load_experiment(
      os.path.join(_REPO, 'experiments', 'optical_flow.py'), variant)


def generated_pairs(config, count):
  """Held-out pairs of the flow task's eval stream, as uint8 frames."""
  cfg = config.input
  textures = autoflow.textures(tuple(cfg.texture_dirs))
  for i in range(count):
    ex = autoflow.make_example(
        textures, size=tuple(cfg.image_size), seed=cfg.eval_seed, index=i,
        stream=flow_task.EVAL_STREAM, options=flow_task.scene_options(cfg))
    frames = np.round((ex['images'] + 1) / 2 * 255).astype(np.uint8)
    yield {'name': f'generated/{i}', 'images': frames, 'flow': ex['flow'],
           'valid': ex['valid'] > 0}


def parse_arm(text):
  """'LABEL=VARIANT@WORKDIR' -> (label, variant, workdir)."""
  label, eq, rest = text.partition('=')
  variant, at, workdir = rest.partition('@')
  if not (eq and at and label and variant):
    raise ValueError(f'--arm={text!r}: expected LABEL=VARIANT@WORKDIR, e.g. '
                     '"levers=cpu,qres,head_init,stem@workdirs/flow_levers".')
  return label, variant, workdir


def _arm_method(variant, workdir):
  config = _load_config(variant)
  network = inference.network_size(config)
  model = inference.load(config, workdir, seed=None if workdir else 0)
  return lambda f: inference.predict(model, f, network)


def main(argv):
  del argv
  arms = [parse_arm(a) for a in _ARMS.value]
  config = _load_config(arms[0][1])
  methods = {
      'zero flow': lambda f: np.zeros(f.shape[1:3] + (2,), np.float32),
      'OpenCV Farnebäck': farneback,
      'OpenCV DIS (medium)': dis,
  }
  for label, variant, workdir in arms:
    methods[f'Perceiver IO, {label}'] = _arm_method(variant, workdir)
  if not _OPENCV.value:
    methods = {k: v for k, v in methods.items() if 'OpenCV' not in k}
  sets = {'generated (held-out)': list(generated_pairs(
      config, _NUM_GENERATED.value))}
  for name, factor in REAL:
    if name not in _REAL.value:
      continue
    data_dir = _OPENCV_DATA.value if name == 'aloe' else None
    sets[f'{name} /{factor}'] = list(datasets.pairs(name, data_dir, factor))
  results, outputs = {}, {}
  for set_name, pairs in sets.items():
    for method, fn in methods.items():
      start = time.time()
      total = None
      for pair in pairs:
        flow = fn(pair['images'])
        outputs[(set_name, method, pair['name'])] = flow
        s = {k: float(v) for k, v in metrics.sums(
            flow, pair['flow'], pair['valid']).items()}
        total = s if total is None else {k: total[k] + s[k] for k in s}
      result = metrics.finalize(total)
      result['seconds'] = time.time() - start
      results.setdefault(set_name, {})[method] = result
      print(f'{set_name:24s} {method:26s} EPE {result["epe"]:.3f}  >3px '
            f'{result["out3px"]:.3f}  ({result["seconds"]:.1f}s)',
            flush=True)
  print('\n| method | ' + ' | '.join(sets) + ' |')
  print('|---|' + '---|' * len(sets))
  for method in methods:
    cells = [f'{results[s][method]["epe"]:.2f} ({results[s][method]["out3px"]:.0%})'
             for s in sets]
    print(f'| {method} | ' + ' | '.join(cells) + ' |')
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump(results, f, indent=2, sort_keys=True)
  if _PICTURE.value:
    write_picture(_PICTURE.value, sets, outputs, methods)


def write_picture(path, sets, outputs, methods):
  """Rows: the real pairs and one generated pair. Columns: frame 1, ground
  truth, then each method, in the Middlebury colours of one shared scale
  per row (invalid ground truth black)."""
  import cv2  # pylint: disable=g-import-not-at-top
  rows = []
  picks = [(s, sets[s][0]) for s in sets if not s.startswith('generated')]
  picks.append(('generated (held-out)', sets['generated (held-out)'][0]))
  height = 160
  for set_name, pair in picks:
    scale = height / pair['images'].shape[1]
    gt = pair['flow'][pair['valid']]
    max_flow = float(np.hypot(gt[:, 0], gt[:, 1]).max()) * 1.1
    tiles = [pair['images'][0],
             colorwheel.flow_to_color(pair['flow'], max_flow, pair['valid'])]
    labels = [set_name, 'ground truth']
    for method in methods:
      tiles.append(colorwheel.flow_to_color(
          outputs[(set_name, method, pair['name'])], max_flow))
      labels.append(method.replace('OpenCV ', '').replace('ä', 'a').replace(
          'Perceiver IO, ', 'PIO '))
    row = []
    for tile, label in zip(tiles, labels):
      big = cv2.resize(tile, None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_NEAREST)
      big = np.concatenate([np.full((18,) + big.shape[1:], 255, np.uint8),
                            big], 0)
      cv2.putText(big, label, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                  (0, 0, 0), 1, cv2.LINE_AA)
      big = np.pad(big, [(1, 1), (1, 1), (0, 0)], constant_values=160)
      row.append(np.pad(big, [(2, 2), (2, 2), (0, 0)],
                        constant_values=255))
    rows.append(np.concatenate(row, 1))
  width = max(r.shape[1] for r in rows)
  rows = [np.pad(r, [(0, 0), (0, width - r.shape[1]), (0, 0)],
                 constant_values=255) for r in rows]
  flow_io.write_png(path, np.concatenate(rows, 0))
  print(f'wrote {path}')


if __name__ == '__main__':
  app.run(main)
