"""Benchmark readers on files in the official layouts that the test writes,
and the real stereo pair with ground truth (skimage's Motorcycle)."""
import os

import numpy as np
import pytest

from perceiver.tasks.flow import datasets
from perceiver.tasks.flow import flow_io


def _image(rng, h=6, w=8):
  return (rng.rand(h, w, 3) * 255).astype(np.uint8)


def test_sintel_layout(tmp_path):
  rng = np.random.RandomState(0)
  root = tmp_path / 'Sintel' / 'training'
  flows = {}
  for scene, frames in (('alley_1', 3), ('market_2', 2)):
    for p in ('clean', 'final'):
      os.makedirs(root / p / scene)
      for i in range(1, frames + 1):
        flow_io.write_png(str(root / p / scene / f'frame_{i:04d}.png'),
                          _image(rng))
    os.makedirs(root / 'flow' / scene)
    for i in range(1, frames):
      flows[f'{scene}/frame_{i:04d}'] = rng.randn(6, 8, 2).astype(np.float32)
      flow_io.write_flo(str(root / 'flow' / scene / f'frame_{i:04d}.flo'),
                        flows[f'{scene}/frame_{i:04d}'])
  pairs = list(datasets.pairs('sintel_final', str(tmp_path)))
  assert [p['name'] for p in pairs] == sorted(flows)  # 2 + 1 pairs
  second = flow_io.read_image(str(root / 'final/alley_1/frame_0002.png'))
  np.testing.assert_array_equal(pairs[0]['images'][1], second)
  np.testing.assert_array_equal(pairs[1]['images'][0], second)
  np.testing.assert_array_equal(pairs[1]['flow'], flows['alley_1/frame_0002'])
  assert pairs[0]['valid'].all()
  with pytest.raises(FileNotFoundError, match='MPI-Sintel-complete.zip'):
    next(datasets.pairs('sintel_clean', str(tmp_path / 'elsewhere')))


def test_kitti_layout(tmp_path):
  rng = np.random.RandomState(1)
  root = tmp_path / 'KITTI' / 'training'
  os.makedirs(root / 'image_2')
  os.makedirs(root / 'flow_occ')
  flow = rng.uniform(-50, 50, (6, 8, 2)).astype(np.float32)
  valid = rng.rand(6, 8) > 0.5
  for name in ('000000', '000001'):
    flow_io.write_png(str(root / 'image_2' / f'{name}_10.png'), _image(rng))
    flow_io.write_png(str(root / 'image_2' / f'{name}_11.png'), _image(rng))
    flow_io.write_kitti_flow(str(root / 'flow_occ' / f'{name}_10.png'), flow,
                             valid)
  pairs = list(datasets.pairs('kitti', str(tmp_path)))
  assert [p['name'] for p in pairs] == ['000000', '000001']
  np.testing.assert_array_equal(pairs[1]['valid'], valid)
  np.testing.assert_allclose(pairs[1]['flow'][valid], flow[valid],
                             atol=1 / 128)
  with pytest.raises(FileNotFoundError, match='data_scene_flow.zip'):
    next(datasets.pairs('kitti', str(tmp_path / 'elsewhere')))
  with pytest.raises(ValueError, match='Unknown flow dataset'):
    next(datasets.pairs('chairs', str(tmp_path)))


def test_aloe_needs_opencv_doc(tmp_path):
  with pytest.raises(FileNotFoundError, match='fetch_flow_data.sh'):
    next(datasets.pairs('aloe', str(tmp_path)))


def test_motorcycle_ground_truth_is_leftward_flow():
  """Real data: the right view sampled at x + u(x) matches the left view
  far better than at x (so the sign and scale of -disparity are right)."""
  pair = datasets.motorcycle()
  assert pair['images'].shape == (2, 500, 741, 3)
  valid = pair['valid']
  assert 0.9 < valid.mean() < 0.95  # skimage marks unknown disparity inf
  u = pair['flow'][..., 0]
  assert (u[valid] < 0).all() and np.all(pair['flow'][..., 1] == 0)
  left, right = pair['images'].astype(np.float32).mean(-1)
  ys, xs = np.nonzero(valid)
  xr = np.round(xs + u[ys, xs]).astype(int)
  inside = xr >= 0
  matched = np.abs(left[ys, xs] - right[ys, xr.clip(0)])[inside].mean()
  unmatched = np.abs(left[ys, xs] - right[ys, xs])[inside].mean()
  assert matched < 0.3 * unmatched
  # Downscaling by 4: flow in the new pixels (divided by 4); a box is
  # valid only if all its 16 pixels are.
  small = datasets.downscale(pair, 4)
  assert small['images'].shape == (2, 125, 185, 3)
  blocks = valid[:500, :740].reshape(125, 4, 185, 4)
  np.testing.assert_array_equal(small['valid'], blocks.all((1, 3)))
  y, x = np.argwhere(small['valid'])[1000]
  np.testing.assert_allclose(
      small['flow'][y, x, 0],
      pair['flow'][4 * y:4 * y + 4, 4 * x:4 * x + 4, 0].mean() / 4, rtol=1e-5)
