"""Flow file formats: .flo, KITTI 16-bit PNGs, stereo disparity as flow."""
import numpy as np
import pytest

from perceiver.tasks.flow import flow_io


def test_flo_round_trip_and_layout(tmp_path):
  flow = np.random.RandomState(0).randn(5, 7, 2).astype(np.float32) * 30
  path = str(tmp_path / 'a.flo')
  flow_io.write_flo(path, flow)
  raw = open(path, 'rb').read()
  assert raw[:4] == b'PIEH'  # the Middlebury tag 202021.25
  assert np.frombuffer(raw[4:12], '<i4').tolist() == [7, 5]  # width, height
  assert len(raw) == 12 + 5 * 7 * 2 * 4
  np.testing.assert_array_equal(
      np.frombuffer(raw[12:20], '<f4'), flow[0, 0])  # u, v of pixel (0, 0)
  np.testing.assert_array_equal(flow_io.read_flo(path), flow)


def test_flo_errors_name_the_problem(tmp_path):
  bad = tmp_path / 'bad.flo'
  bad.write_bytes(b'NOPE' + np.zeros(2, '<i4').tobytes())
  with pytest.raises(ValueError, match='not a .flo file'):
    flow_io.read_flo(str(bad))
  short = tmp_path / 'short.flo'
  flow_io.write_flo(str(short), np.zeros((4, 4, 2), np.float32))
  short.write_bytes(short.read_bytes()[:-8])
  with pytest.raises(ValueError, match='truncated'):
    flow_io.read_flo(str(short))


def test_kitti_flow_png_round_trip(tmp_path):
  rng = np.random.RandomState(1)
  flow = rng.uniform(-200, 200, (6, 9, 2)).astype(np.float32)
  valid = rng.rand(6, 9) > 0.3
  path = str(tmp_path / '000000_10.png')
  flow_io.write_kitti_flow(path, flow, valid)
  png = flow_io.read_png(path)
  assert png.dtype == np.uint16 and png.shape == (6, 9, 3)
  # KITTI devkit: u = (R - 2^15) / 64.
  np.testing.assert_allclose((png[..., 0].astype(float) - 32768) / 64,
                             flow[..., 0], atol=1 / 128)
  read, read_valid = flow_io.read_kitti_flow(path)
  np.testing.assert_array_equal(read_valid, valid)
  np.testing.assert_allclose(read[valid], flow[valid], atol=1 / 128)
  assert np.all(read[~valid] == 0)


def test_kitti_disparity_and_8_bit_pngs(tmp_path):
  disp = np.array([[0, 256 * 10 + 128], [256, 65535]], np.uint16)
  path = str(tmp_path / 'disp.png')
  flow_io.write_png(path, disp)
  values, valid = flow_io.read_kitti_disparity(path)
  np.testing.assert_allclose(values, [[0, 10.5], [1, 65535 / 256]])
  np.testing.assert_array_equal(valid, [[False, True], [True, True]])
  eight = str(tmp_path / 'eight.png')
  flow_io.write_png(eight, np.array([[0, 7], [200, 255]], np.uint8))
  read = flow_io.read_png(eight)
  assert read.dtype == np.uint8 and read[1, 0, 0] == 200  # not rescaled
  with pytest.raises(ValueError, match='16-bit'):
    flow_io.read_kitti_disparity(eight)
  with pytest.raises(ValueError, match='16-bit channels'):
    flow_io.read_kitti_flow(eight)


def test_disparity_is_leftward_flow():
  disp = np.array([[3.0, 0.0, np.inf]], np.float32)
  flow, valid = flow_io.disparity_to_flow(disp, np.ones_like(disp, bool))
  np.testing.assert_array_equal(valid, [[True, False, False]])
  np.testing.assert_array_equal(flow[0, 0], [-3.0, 0.0])
  np.testing.assert_array_equal(flow[0, 1:], 0.0)
