"""The AutoFlow-style generator: exact flow, occlusion masks, determinism.

Exactness: warping frame 2 by the ground-truth flow (bilinear sampling at
p + flow(p)) must give frame 1 back on valid pixels, up to interpolation
error. With linear-ramp textures bilinear interpolation is exact, so the
only error left is the curvature of the non-rigid motion: tiny.
"""
import numpy as np
import pytest

from perceiver.tasks.flow import autoflow

SIZE = (24, 32)


def _ramps():
  """Textures that are linear in position (values 0.2..0.6)."""
  ys, xs = np.mgrid[0:1200, 0:1200].astype(np.float32)
  a = 0.2 + 0.4 * xs / 1200
  b = 0.2 + 0.4 * ys / 1200
  return (np.stack([a, b, 0.5 * (a + b)], -1),
          np.stack([b, 0.6 - (a - 0.2), a], -1))


def _bilinear(image, points):
  """image [H, W, C] at points [..., 2] (x, y) inside the image."""
  h, w = image.shape[:2]
  x = np.clip(points[..., 0], 0, w - 1)
  y = np.clip(points[..., 1], 0, h - 1)
  x0 = np.minimum(np.floor(x).astype(int), w - 2)
  y0 = np.minimum(np.floor(y).astype(int), h - 2)
  fx, fy = (x - x0)[..., None], (y - y0)[..., None]
  top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
  bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
  return top * (1 - fy) + bottom * fy


def _same_layer_footprint(layers_target, layer_source, points):
  """True where the 4 pixels around each point all show layer_source."""
  h, w = layers_target.shape
  x0 = np.clip(np.floor(points[..., 0]).astype(int), 0, w - 2)
  y0 = np.clip(np.floor(points[..., 1]).astype(int), 0, h - 2)
  ok = np.ones(layer_source.shape, bool)
  for dy in (0, 1):
    for dx in (0, 1):
      ok &= layers_target[y0 + dy, x0 + dx] == layer_source
  return ok


def _grid():
  ys, xs = np.mgrid[0:SIZE[0], 0:SIZE[1]]
  return np.stack([xs, ys], -1).astype(np.float64)


@pytest.mark.parametrize('severity', [0.0, 1.0])
def test_warping_by_exact_flow_reproduces_the_other_frame(severity):
  textures = _ramps()
  # Texture scale 1: the ramps' mirror folds stay out of the frame.
  opts = autoflow.SceneOptions(max_translation=0.15, texture_scale=1.0)
  checked = 0
  for index in range(6):
    rng = np.random.default_rng(index)
    layers = autoflow.random_scene(rng, len(textures), SIZE, opts)
    camera = autoflow.random_camera(rng, SIZE, severity)
    out = autoflow.render(layers, textures, SIZE, camera)
    for first, second, flow, valid, l1, l2 in (
        ('frame1', 'frame2', 'flow_fw', 'valid_fw', 'layer1', 'layer2'),
        ('frame2', 'frame1', 'flow_bw', 'valid_bw', 'layer2', 'layer1')):
      target = _grid() + out[flow]
      use = out[valid] & _same_layer_footprint(out[l2], out[l1], target)
      warped = _bilinear(out[second], target)
      error = np.abs(warped - out[first]).max(-1)[use]
      assert error.max() < 2e-4, (index, first, error.max())
      # The check can fail: a flow off by one pixel is far from it.
      off = np.abs(_bilinear(out[second], target + [1.0, 0.0]) -
                   out[first]).max(-1)[use]
      assert off.mean() > 50 * max(error.mean(), 1e-6)
      checked += use.sum()
  assert checked > 0.4 * 6 * 2 * SIZE[0] * SIZE[1]


def test_photo_textures_warp_within_interpolation_error():
  textures = autoflow.skimage_textures()
  errors, zero = [], []
  for index in range(4):
    ex = autoflow.make_example(textures, size=SIZE, seed=3, index=index)
    frames = (ex['images'] + 1) / 2
    valid = ex['valid'] > 0
    warped = _bilinear(frames[1], _grid() + ex['flow'])
    errors.append(np.abs(warped - frames[0]).mean(-1)[valid])
    zero.append(np.abs(frames[1] - frames[0]).mean(-1)[valid])
  # Photos are not smooth at the pixel scale, so bilinear sampling errs a
  # little; a wrong flow errs like no flow at all.
  assert np.concatenate(errors).mean() < 0.3 * np.concatenate(zero).mean()
  assert np.concatenate(errors).mean() < 0.03


def _square(x0, x1, dx):
  return autoflow.Layer(
      texture=0, texture_map=np.array([[1.0, 0, 100], [0, 1.0, 100]]),
      level=0,
      gain=np.ones(3), shape='polygon',
      outline=np.array([[x0, 4.0], [x1, 4.0], [x1, 12.0], [x0, 12.0]]),
      centre=np.array([10.0, 8.0]), linear=np.eye(2),
      translation=np.array([dx, 0.0]), amplitudes=np.zeros((1, 2)),
      frequencies=np.ones((1, 2)), phases=np.zeros(1))


def test_valid_marks_occluded_and_out_of_frame_pixels():
  # A still background and a square (x in [6, 10.5], y in [4, 12]) moving
  # 3 px right, in a 16 x 24 frame.
  size = (16, 24)
  background = _square(-1e3, 1e3, 0.0)
  background.shape = 'plane'
  layers = [background, _square(6.0, 10.5, 3.0)]
  out = autoflow.render(layers, _ramps(), size)
  flow, valid = out['flow_fw'], out['valid_fw']
  np.testing.assert_array_equal(flow[8, 8], [3, 0])  # on the square
  np.testing.assert_array_equal(flow[8, 20], [0, 0])  # background
  assert valid[8, 8] and valid[8, 20] and valid[2, 12]
  # Background at x = 11..13 (rows 4..12) is covered in frame 2.
  assert not valid[8, 11:14].any()
  assert valid[8, 14]
  # Backward: the background at x = 6..8 is uncovered in frame 2 but was
  # under the square in frame 1, so its backward flow is invalid.
  assert not out['valid_bw'][8, 6:9].any()
  assert out['valid_bw'][8, 10]  # the square itself
  # Out of frame: the same square moving 20 px leaves the frame.
  layers[1] = _square(6.0, 10.5, 20.0)
  out = autoflow.render(layers, _ramps(), size)
  assert not out['valid_fw'][8, 8]
  assert out['valid_fw'][8, 20]


def test_examples_are_pure_functions_of_seed_stream_and_index():
  textures = autoflow.skimage_textures()
  kw = dict(size=(12, 16), seed=5, severity=1.0)
  a = autoflow.make_example(textures, index=7, **kw)
  b = autoflow.make_example(textures, index=7, **kw)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert a['images'].shape == (2, 12, 16, 3) and a['images'].dtype == np.float32
  assert a['images'].min() >= -1 and a['images'].max() <= 1
  assert not np.array_equal(
      a['images'], autoflow.make_example(textures, index=8, **kw)['images'])
  assert not np.array_equal(
      a['images'],
      autoflow.make_example(textures, index=7, stream=1, **kw)['images'])
  # The first phase: examples 2i and 2i + 1 are one scene, both ways.
  fw = autoflow.make_example(textures, size=(12, 16), seed=5, index=4,
                             reverse_pairs=True)
  bw = autoflow.make_example(textures, size=(12, 16), seed=5, index=5,
                             reverse_pairs=True)
  np.testing.assert_array_equal(bw['images'], fw['images'][::-1])
  assert not np.allclose(bw['flow'], -fw['flow'])  # the exact backward flow
  batch = autoflow.make_batch(textures, [7, 8], **kw)
  np.testing.assert_array_equal(batch['flow'][0], a['flow'])


def test_texture_folder_errors_and_exclusions(tmp_path):
  with pytest.raises(FileNotFoundError, match='fetch_flow_data.sh'):
    autoflow.directory_textures(str(tmp_path / 'nope'))
  from perceiver.tasks.flow import flow_io
  photo = (np.random.RandomState(0).rand(130, 140, 3) * 255).astype(np.uint8)
  flow_io.write_png(str(tmp_path / 'aloeL.png'), photo)  # an eval image
  with pytest.raises(ValueError, match='No usable texture'):
    autoflow.directory_textures(str(tmp_path))
  flow_io.write_png(str(tmp_path / 'fruits.png'), photo)
  assert len(autoflow.directory_textures(str(tmp_path))) == 1
