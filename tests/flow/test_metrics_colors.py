"""EPE and outlier rates on valid pixels; the Middlebury colour wheel."""
import numpy as np

from perceiver.tasks.flow import colorwheel
from perceiver.tasks.flow import metrics


def test_epe_and_outliers_count_valid_pixels_only():
  gt = np.zeros((1, 2, 3, 2), np.float32)
  pred = np.zeros_like(gt)
  pred[0, 0, :, 0] = [0.5, 2.0, 4.0]  # errors 0.5, 2, 4
  pred[0, 1, :, 1] = [6.0, 100.0, 100.0]  # 6, then two invalid pixels
  valid = np.array([[[1, 1, 1], [1, 0, 0]]], np.float32)
  out = metrics.evaluate(pred, gt, valid)
  assert out['valid_pixels'] == 4
  np.testing.assert_allclose(out['epe'], (0.5 + 2 + 4 + 6) / 4, rtol=1e-6)
  np.testing.assert_allclose(out['out1px'], 3 / 4)
  np.testing.assert_allclose(out['out3px'], 2 / 4)
  np.testing.assert_allclose(out['out5px'], 1 / 4)
  # Per-image weights (padding examples of an eval batch) drop images.
  two = metrics.sums(np.concatenate([pred, pred + 50]),
                     np.concatenate([gt, gt]), np.concatenate([valid, valid]),
                     weight=np.array([1.0, 0.0]))
  np.testing.assert_allclose(metrics.finalize(two)['epe'], out['epe'],
                             rtol=1e-6)


def test_color_wheel_conventions():
  wheel = colorwheel.wheel()
  assert wheel.shape == (55, 3)
  flow = np.array([[[0, 0], [5, 0], [-5, 0], [0, 5], [0, 0]]], np.float32)
  valid = np.array([[1, 1, 1, 1, 0]], bool)
  rgb = colorwheel.flow_to_color(flow, max_flow=5.0, valid=valid)
  assert rgb.dtype == np.uint8 and rgb.shape == (1, 5, 3)
  np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])  # no motion
  np.testing.assert_array_equal(rgb[0, 1], [255, 0, 0])  # right: red
  assert rgb[0, 2, 0] < 60 and rgb[0, 2, 1] > 200 and rgb[0, 2, 2] > 200  # cyan
  assert rgb[0, 3, 2] < 150 and rgb[0, 3, 1] > 150  # down: yellow-green
  np.testing.assert_array_equal(rgb[0, 4], [0, 0, 0])  # invalid: black
  # Beyond max_flow the colour darkens; half of it is paler.
  far = colorwheel.flow_to_color(np.array([[[10.0, 0]]]), max_flow=5.0)
  half = colorwheel.flow_to_color(np.array([[[2.5, 0]]]), max_flow=5.0)
  np.testing.assert_array_equal(far[0, 0], [191, 0, 0])
  np.testing.assert_array_equal(half[0, 0], [255, 128, 128])
  key = colorwheel.legend(33)
  np.testing.assert_array_equal(key[16, 16], [255, 255, 255])
  np.testing.assert_array_equal(key[16, 32], [255, 0, 0])
