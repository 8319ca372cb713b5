"""RandAugment (Cubuk et al., 2020) with stateless TF ops.

Shapes: H, W image size, C = 3 channels; images are uint8 [H, W, 3].

[P] App. A / [code] train/dataset.py use RandAugment with 4 layers at
magnitude 5 (the TPU `autoaugment.distort_image_with_randaugment` op set).
Each layer picks one operation uniformly from OPS plus identity and applies
it at the fixed magnitude; geometric and colour-enhance ops flip the sign of
their level at random. All randomness comes from a [2] seed (stateless ops),
so the pipeline is deterministic and resumable.

DEVIATION: written from the paper's description, not the TPU code; op
levels follow the usual mapping (magnitude / 10 of each op's maximum).
"""
import math

import tensorflow as tf

_MAX_LEVEL = 10.0
_FILL = 128  # grey fill for geometric ops


def _blend(image1, image2, factor):
  """image1 + factor * (image2 - image1), clipped, in uint8."""
  a, b = tf.cast(image1, tf.float32), tf.cast(image2, tf.float32)
  return tf.cast(tf.clip_by_value(a + factor * (b - a), 0.0, 255.0), tf.uint8)


def _affine(image, transform):
  """Applies an 8-parameter projective transform (output -> input)."""
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=tf.cast(image[None], tf.float32),
      transforms=tf.cast(tf.reshape(transform, [1, 8]), tf.float32),
      output_shape=tf.shape(image)[:2], fill_value=float(_FILL),
      interpolation='NEAREST', fill_mode='CONSTANT')
  return tf.cast(out[0], tf.uint8)


def _rotate(image, degrees):
  h = tf.cast(tf.shape(image)[0], tf.float32)
  w = tf.cast(tf.shape(image)[1], tf.float32)
  a = degrees * math.pi / 180.0
  cos, sin = tf.cos(a), tf.sin(a)
  x0 = (w - 1) / 2 - (cos * (w - 1) / 2 - sin * (h - 1) / 2)
  y0 = (h - 1) / 2 - (sin * (w - 1) / 2 + cos * (h - 1) / 2)
  return _affine(image, [cos, -sin, x0, sin, cos, y0, 0.0, 0.0])


def _equalize_channel(channel):
  """Histogram equalisation of one uint8 channel [H, W]."""
  hist = tf.histogram_fixed_width(tf.cast(channel, tf.int32), [0, 255], 256)
  nonzero = tf.boolean_mask(hist, hist != 0)
  step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255

  def equalised():
    lut = (tf.cumsum(hist) + step // 2) // step
    lut = tf.clip_by_value(tf.concat([[0], lut[:-1]], 0), 0, 255)
    return tf.cast(tf.gather(lut, tf.cast(channel, tf.int32)), tf.uint8)
  return tf.cond(step == 0, lambda: channel, equalised)


def _autocontrast_channel(channel):
  lo = tf.cast(tf.reduce_min(channel), tf.float32)
  hi = tf.cast(tf.reduce_max(channel), tf.float32)
  scaled = (tf.cast(channel, tf.float32) - lo) * 255.0 / tf.maximum(hi - lo, 1)
  return tf.cond(hi > lo,
                 lambda: tf.cast(tf.clip_by_value(scaled, 0, 255), tf.uint8),
                 lambda: channel)


def _per_channel(fn, image):
  return tf.stack([fn(image[..., c]) for c in range(3)], axis=-1)


def _sharpness(image, factor):
  x = tf.cast(image, tf.float32)[None]
  kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
  kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
  smooth = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], 'VALID')[0]
  smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
  mask = tf.pad(tf.ones_like(smooth[1:-1, 1:-1]), [[1, 1], [1, 1], [0, 0]])
  degenerate = mask * smooth + (1 - mask) * tf.cast(image, tf.float32)
  return _blend(tf.cast(tf.round(degenerate), tf.uint8), image, factor)


def _cutout(image, seed, size):
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  cy = tf.random.stateless_uniform([], seed, 0, h, tf.int32)
  cx = tf.random.stateless_uniform([], seed + 1, 0, w, tf.int32)
  ys, xs = tf.range(h)[:, None], tf.range(w)[None, :]
  inside = ((tf.abs(ys - cy) <= size) & (tf.abs(xs - cx) <= size))[..., None]
  return tf.where(inside, tf.constant(_FILL, tf.uint8), image)


def _ops(magnitude: float):
  """name -> fn(image, signed_seed) at `magnitude` (0..10)."""
  m = magnitude / _MAX_LEVEL

  def sign(seed):
    return tf.where(tf.random.stateless_uniform([], seed) < 0.5, -1.0, 1.0)

  enhance = lambda seed: 1.0 + sign(seed) * 0.9 * m  # factor in [0.1, 1.9]

  def gray(image):
    return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))

  def contrast(image, seed):
    mean = tf.reduce_mean(tf.cast(tf.image.rgb_to_grayscale(image),
                                  tf.float32))
    degenerate = tf.cast(tf.fill(tf.shape(image), mean), tf.uint8)
    return _blend(degenerate, image, enhance(seed))

  def translate(image, seed, axis):
    pixels = sign(seed) * 100.0 * m
    t = ([1.0, 0.0, pixels, 0.0, 1.0, 0.0, 0.0, 0.0] if axis == 'x' else
         [1.0, 0.0, 0.0, 0.0, 1.0, pixels, 0.0, 0.0])
    return _affine(image, t)

  def shear(image, seed, axis):
    s = sign(seed) * 0.3 * m
    t = ([1.0, s, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0] if axis == 'x' else
         [1.0, 0.0, 0.0, s, 1.0, 0.0, 0.0, 0.0])
    return _affine(image, t)

  def solarize_add(image, seed):
    del seed
    added = tf.cast(tf.clip_by_value(
        tf.cast(image, tf.int32) + int(110 * m), 0, 255), tf.uint8)
    return tf.where(image < 128, added, image)

  return {
      'AutoContrast': lambda x, s: _per_channel(_autocontrast_channel, x),
      'Equalize': lambda x, s: _per_channel(_equalize_channel, x),
      'Invert': lambda x, s: 255 - x,
      'Rotate': lambda x, s: _rotate(x, sign(s) * 30.0 * m),
      'Posterize': lambda x, s: tf.bitwise.left_shift(
          tf.bitwise.right_shift(x, 8 - max(1, int(4 - 4 * m) or 1)),
          8 - max(1, int(4 - 4 * m) or 1)),
      'Solarize': lambda x, s: tf.where(
          x < tf.cast(256 - int(256 * m), tf.uint8) if m else x < 255,
          x, 255 - x),
      'SolarizeAdd': solarize_add,
      'Color': lambda x, s: _blend(gray(x), x, enhance(s)),
      'Contrast': contrast,
      'Brightness': lambda x, s: _blend(tf.zeros_like(x), x, enhance(s)),
      'Sharpness': lambda x, s: _sharpness(x, enhance(s)),
      'ShearX': lambda x, s: shear(x, s, 'x'),
      'ShearY': lambda x, s: shear(x, s, 'y'),
      'TranslateX': lambda x, s: translate(x, s, 'x'),
      'TranslateY': lambda x, s: translate(x, s, 'y'),
      'Cutout': lambda x, s: _cutout(x, s, int(40 * m)),
  }


OPS = tuple(_ops(5.0).keys())


def randaugment(image: tf.Tensor,  # [H, W, 3] uint8
                seed: tf.Tensor,  # [2] int
                *, num_layers: int = 4, magnitude: float = 5.0) -> tf.Tensor:
  """Applies `num_layers` random ops (or identity) at `magnitude`."""
  ops = list(_ops(magnitude).values())
  seeds = tf.random.experimental.stateless_split(
      tf.cast(seed, tf.int64), num_layers * 2)
  for layer in range(num_layers):
    choice_seed, op_seed = seeds[2 * layer], seeds[2 * layer + 1]
    index = tf.random.stateless_uniform([], choice_seed, 0, len(ops) + 1,
                                        tf.int32)
    branches = [lambda fn=fn: fn(image, op_seed) for fn in ops]
    branches.append(lambda: image)  # identity
    image = tf.switch_case(index, branches)
    image = tf.ensure_shape(image, [None, None, 3])
  return image
