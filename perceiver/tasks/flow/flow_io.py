"""File formats of optical flow: Middlebury `.flo`, KITTI 16-bit PNG, images.

Glossary of shapes: H, W image size; flow arrays are [H, W, 2] float32 with
channel 0 = u (horizontal, +x to the right) and channel 1 = v (vertical, +y
down), the order of `.flo` files and of the release's flow output ([code]
flow colab draws flow[..., 0] as x). `valid` is [H, W] bool.

  .flo         Baker et al., "A Database and Evaluation Methodology for
               Optical Flow" (Middlebury): the float32 tag 202021.25, int32
               width, int32 height, then row-major (u, v) float32 pairs,
               little-endian. Sintel ships its flow in this format.
  KITTI flow   Geiger et al. (KITTI 2015 devkit): a 3-channel 16-bit PNG;
               u = (R - 2^15) / 64, v = (G - 2^15) / 64, B = 1 where valid.
  KITTI disp   a 1-channel 16-bit PNG; disparity = value / 256, 0 = invalid.

PNG and JPEG are read and written with TensorFlow's codecs (already a
dependency), which, unlike Pillow, keep 16 bits per channel in RGB PNGs.
"""
import os
from typing import Tuple

import numpy as np

FLO_TAG = 202021.25  # b'PIEH' read as a little-endian float32
_KITTI_OFFSET = 2.0 ** 15
_KITTI_SCALE = 64.0


def _tf():
  # Imported on first use: `import tensorflow` costs seconds, and the .flo
  # functions do not need it.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def read_flo(path: str) -> np.ndarray:
  """[H, W, 2] float32 from a Middlebury .flo file."""
  with open(path, 'rb') as f:
    header = f.read(12)
    if len(header) < 12:
      raise ValueError(f'{path}: too short for a .flo file (12-byte header).')
    tag = np.frombuffer(header[:4], '<f4')[0]
    if tag != np.float32(FLO_TAG):
      raise ValueError(f'{path}: not a .flo file (tag {tag!r}, expected '
                       f'{FLO_TAG}; the file must start with "PIEH").')
    width, height = (int(x) for x in np.frombuffer(header[4:], '<i4'))
    if not (0 < width < 1 << 16 and 0 < height < 1 << 16):
      raise ValueError(f'{path}: implausible .flo size {width}x{height}.')
    data = np.frombuffer(f.read(), '<f4')
  if data.size != height * width * 2:
    raise ValueError(f'{path}: {data.size} floats for a {width}x{height} '
                     f'flow (expected {height * width * 2}); truncated file?')
  return data.reshape(height, width, 2).astype(np.float32)


def write_flo(path: str, flow: np.ndarray) -> None:
  """Writes [H, W, 2] flow as a .flo file."""
  flow = np.asarray(flow, np.float32)
  if flow.ndim != 3 or flow.shape[-1] != 2:
    raise ValueError(f'write_flo expects flow [H, W, 2]; got {flow.shape}.')
  with open(path, 'wb') as f:
    f.write(np.float32(FLO_TAG).astype('<f4').tobytes())
    f.write(np.asarray(flow.shape[1::-1], '<i4').tobytes())  # width, height
    f.write(flow.astype('<f4').tobytes())


def read_png(path: str) -> np.ndarray:
  """[H, W, C] array of a PNG in its own depth: uint8 or uint16, C = 1..4."""
  with open(path, 'rb') as f:
    header = f.read(25)
  if header[:8] != b'\x89PNG\r\n\x1a\n' or len(header) < 25:
    raise ValueError(f'{path}: not a PNG file.')
  depth = header[24]  # IHDR bit depth
  tf = _tf()
  dtype = tf.uint16 if depth == 16 else tf.uint8
  return tf.io.decode_png(tf.io.read_file(path), dtype=dtype).numpy()


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a [H, W, C] (or [H, W]) uint8 or uint16 array as a PNG."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.dtype not in (np.uint8, np.uint16):
    raise ValueError(f'write_png takes uint8 or uint16; got {image.dtype}.')
  tf = _tf()
  tf.io.write_file(path, tf.io.encode_png(image))


def read_kitti_flow(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """(flow [H, W, 2], valid [H, W]) from a KITTI flow PNG."""
  png = read_png(path)
  if png.dtype != np.uint16 or png.shape[-1] != 3:
    raise ValueError(f'{path}: a KITTI flow PNG has 3 16-bit channels (u, '
                     f'v, valid); this one has {png.shape[-1]} of '
                     f'{png.dtype}.')
  png = png.astype(np.float64)
  flow = (png[..., :2] - _KITTI_OFFSET) / _KITTI_SCALE
  valid = png[..., 2] > 0
  return np.where(valid[..., None], flow, 0).astype(np.float32), valid


def write_kitti_flow(path: str, flow: np.ndarray, valid: np.ndarray) -> None:
  """Writes flow and validity in KITTI's 16-bit PNG encoding."""
  flow = np.asarray(flow, np.float64)
  encoded = np.clip(np.round(flow * _KITTI_SCALE + _KITTI_OFFSET), 0, 65535)
  png = np.concatenate([encoded, np.asarray(valid)[..., None]], -1)
  write_png(path, png.astype(np.uint16))


def read_kitti_disparity(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """(disparity [H, W] in pixels, valid [H, W]) from a KITTI disparity PNG."""
  png = read_png(path)
  if png.dtype != np.uint16:
    raise ValueError(f'{path}: a KITTI disparity PNG is 16-bit; this one is '
                     '8-bit.')
  png = png[..., 0].astype(np.float32)
  return png / 256.0, png > 0


def read_image(path: str) -> np.ndarray:
  """[H, W, 3] uint8 RGB from a PNG, JPEG, BMP or GIF file."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'No image at {path}.')
  tf = _tf()
  image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                             expand_animations=False, dtype=tf.uint8)
  return image.numpy()


def disparity_to_flow(disparity: np.ndarray, valid: np.ndarray
                      ) -> Tuple[np.ndarray, np.ndarray]:
  """Left-to-right flow of a rectified stereo pair from the LEFT disparity.

  A left-image pixel at x is seen at x - d in the right image, so the flow
  from the left frame (frame 1) to the right frame (frame 2) is (-d, 0).
  Non-finite or non-positive disparities are invalid (Middlebury's 0 and
  the inf of skimage's stereo_motorcycle).
  """
  disparity = np.asarray(disparity, np.float32)
  valid = np.asarray(valid, bool) & np.isfinite(disparity) & (disparity > 0)
  u = np.where(valid, -disparity, 0.0)
  return np.stack([u, np.zeros_like(u)], -1).astype(np.float32), valid
