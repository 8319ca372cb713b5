"""ImageNet (ILSVRC 2012) input pipeline, as in [P] App. A / [code] dataset.py.

Shapes: H = W = image_size (224), C = 3, K = 1000 classes, B_s per-shard
batch.

Train: inception crop (area 0.08-1, aspect 3/4-4/3, decoded straight from
the JPEG crop window), bicubic resize to 224, random flip, RandAugment
(4 layers, magnitude 5), mean/std normalisation; then per batch MixUp
(alpha 0.2) on the first half and CutMix (uniform box area) on the second
half ([code]; [P] says only "CutMix with a ratio of 0.2"). Label smoothing
0.1 is applied in the loss (perceiver.tasks.image.task).
Eval: center crop of 224/256 of the shorter side (with the crop window
decoded from the JPEG), bicubic resize to 224, normalisation.

Data: TFDS `imagenet2012`, which needs the two tars from image-net.org in
its manual directory (see `get_builder`; nothing is downloaded here).
Tests run this pipeline on `tfds.testing.mock_data`.
"""
import os
from typing import Callable, Optional

import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from perceiver.tasks.image import randaugment as randaugment_lib

MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
NUM_CLASSES = 1000
TRAIN_EXAMPLES = 1_281_167
EVAL_EXAMPLES = 50_000
# The image stays JPEG bytes until the crop is known (decode only the crop).
DECODERS = {'image': tfds.decode.SkipDecoding()}
MANUAL_FILES = ('ILSVRC2012_img_train.tar', 'ILSVRC2012_img_val.tar')
BUILD_IN_WORKDIR = False  # ~/tensorflow_datasets unless input.data_dir set


def default_input_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      image_size=224,
      eval_crop_fraction=224 / 256,  # center crop 224 of a 256 short side
      randaugment_layers=4,  # 0 = off
      randaugment_magnitude=5.0,
      mixup_alpha=0.2,  # MixUp on the first half of each batch; 0 = off
      cutmix=True,  # CutMix on the second half
      manual_dir='',  # where the tars are; '' = <data_dir>/downloads/manual
  ))


def image_shape(config) -> tuple[int, int, int]:
  return (config.image_size, config.image_size, 3)


def get_builder(name: str, data_dir: Optional[str]) -> tfds.core.DatasetBuilder:
  """Returns the prepared imagenet2012 builder, preparing it from the manual
  tars if present, or raises FileNotFoundError saying where to put them."""
  builder = tfds.builder(name, data_dir=data_dir)
  if builder.is_prepared():
    return builder
  root = data_dir or os.path.expanduser('~/tensorflow_datasets')
  manual_dir = os.path.join(root, 'downloads', 'manual')
  missing = [f for f in MANUAL_FILES
             if not os.path.exists(os.path.join(manual_dir, f))]
  if missing:
    raise FileNotFoundError(
        f'ImageNet ({name}) is not prepared in {root} and cannot be '
        'downloaded automatically. Download ILSVRC2012_img_train.tar and '
        'ILSVRC2012_img_val.tar from https://image-net.org/ into '
        f'{manual_dir} (missing: {", ".join(missing)}); the first training '
        'run then prepares it (or run `tfds build imagenet2012 --data_dir='
        f'{root}`). Set config.input.data_dir to use another directory.')
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _inception_crop_window(image_bytes, seed):
  """[y, x, h, w] of a random crop with 8%-100% area, aspect 3/4-4/3."""
  shape = tf.image.extract_jpeg_shape(image_bytes)
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
      seed=seed, min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
      area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
  return tf.stack([begin[0], begin[1], size[0], size[1]])


def _center_crop_window(image_bytes, fraction):
  shape = tf.image.extract_jpeg_shape(image_bytes)
  h, w = shape[0], shape[1]
  side = tf.cast(fraction * tf.cast(tf.minimum(h, w), tf.float32), tf.int32)
  return tf.stack([(h - side + 1) // 2, (w - side + 1) // 2, side, side])


def _decode_crop_resize(image_bytes, window, size):
  image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
  image = tf.image.resize(image, [size, size], method='bicubic')
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _normalize(image):
  image = tf.cast(image, tf.float32)
  return (image - tf.constant(MEAN_RGB)) / tf.constant(STDDEV_RGB)


def preprocess(config: ml_collections.ConfigDict, *, train: bool
               ) -> Callable[[dict, tf.Tensor], dict]:
  """fn(features, seed [2]) -> {'images': [H, W, 3] f32, 'labels': [K]}."""
  size = config.image_size

  def fn(features, seed):
    image_bytes = features['image']
    if train:
      seeds = tf.random.experimental.stateless_split(
          tf.cast(seed, tf.int64), 3)
      window = _inception_crop_window(image_bytes, seeds[0])
      image = _decode_crop_resize(image_bytes, window, size)
      image = tf.image.stateless_random_flip_left_right(image, seeds[1])
      if config.randaugment_layers:
        image = randaugment_lib.randaugment(
            image, seeds[2], num_layers=config.randaugment_layers,
            magnitude=config.randaugment_magnitude)
    else:
      window = _center_crop_window(image_bytes, config.eval_crop_fraction)
      image = _decode_crop_resize(image_bytes, window, size)
    image = tf.ensure_shape(_normalize(image), [size, size, 3])
    labels = tf.one_hot(features['label'], NUM_CLASSES, dtype=tf.float32)
    return {'images': image, 'labels': labels}
  return fn


def _beta(seed, alpha):
  """Beta(alpha, alpha) from two stateless gammas."""
  seeds = tf.random.experimental.stateless_split(seed, 2)
  a = tf.random.stateless_gamma([], seeds[0], alpha)
  b = tf.random.stateless_gamma([], seeds[1], alpha)
  return a / (a + b)


def mixup(images, labels, seed, alpha):
  """Mixes each example with the batch reversed, one ratio per batch."""
  lam = _beta(seed, alpha)
  images = lam * images + (1 - lam) * tf.reverse(images, [0])
  labels = lam * labels + (1 - lam) * tf.reverse(labels, [0])
  return images, labels


def cutmix(images, labels, seed):
  """Pastes a box of the reversed batch; box area ~ U(0, 1) of the image;
  labels mixed by the area actually pasted (after clipping)."""
  seeds = tf.random.experimental.stateless_split(seed, 3)
  h, w = tf.shape(images)[1], tf.shape(images)[2]
  hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
  cut = tf.sqrt(tf.random.stateless_uniform([], seeds[0]))  # side ratio
  cy = tf.random.stateless_uniform([], seeds[1]) * hf
  cx = tf.random.stateless_uniform([], seeds[2]) * wf
  y0 = tf.cast(tf.clip_by_value(cy - cut * hf / 2, 0, hf), tf.int32)
  y1 = tf.cast(tf.clip_by_value(cy + cut * hf / 2, 0, hf), tf.int32)
  x0 = tf.cast(tf.clip_by_value(cx - cut * wf / 2, 0, wf), tf.int32)
  x1 = tf.cast(tf.clip_by_value(cx + cut * wf / 2, 0, wf), tf.int32)
  ys, xs = tf.range(h)[:, None], tf.range(w)[None, :]
  box = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)  # [H, W]
  images = tf.where(box[None, :, :, None], tf.reverse(images, [0]), images)
  area = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / (hf * wf)
  labels = (1 - area) * labels + area * tf.reverse(labels, [0])
  return images, labels


def batch_augment(config: ml_collections.ConfigDict):
  """fn(batch, seed [2]) -> batch: MixUp on the first half, CutMix on the
  second ([code] dataset.py), or None when both are off."""
  if not config.mixup_alpha and not config.cutmix:
    return None

  def fn(batch, seed):
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    images, labels = batch['images'], batch['labels']
    half = tf.shape(images)[0] // 2
    a_img, a_lab = images[:half], labels[:half]
    b_img, b_lab = images[half:], labels[half:]
    if config.mixup_alpha:
      a_img, a_lab = mixup(a_img, a_lab, seeds[0], config.mixup_alpha)
    if config.cutmix:
      b_img, b_lab = cutmix(b_img, b_lab, seeds[1])
    return {'images': tf.concat([a_img, b_img], 0),
            'labels': tf.concat([a_lab, b_lab], 0)}
  return fn
