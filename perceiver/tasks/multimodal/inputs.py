"""What the multimodal datasets store, how a clip becomes model input, and
the per-example training queries.

Shapes: B batch (B_p per process), T frames, S image side, N_a audio
samples, P_px = T * S * S pixels, A audio patches (N_a / samples_per_patch),
O_px / O_a the pixel / audio-patch queries decoded per example in training,
K classes.

[P] §4.3, App. I: a clip is 16 frames at 224 x 224 (25 fps), 30,720 samples
of 48 kHz audio and one of 700 labels. Both datasets here
(perceiver.tasks.multimodal.kinetics, the full-scale data, and
perceiver.tasks.multimodal.embedded, real video at CPU scale) store the same
features, built by `clip_features`, so one `preprocess` reads them:
  video  [T, S, S, 3] uint8   -> 'video' float32 in [0, 1]
  audio  [N_a] int16 (mono)   -> 'audio' [N_a, 1] float32 in [-1, 1)
  label  class index          -> 'label' [K] one-hot float32
These are the release colab's ranges ([code]: frames / 255, audio / 2**15),
so the released checkpoint reads our clips unchanged.

Training queries ([P] App. I: "512 pixels, 512 audio samples and the label"
per example). Drawn per example, on the host, by `training_queries`, as a
pure function of (seed, step, the example's position in the global batch):
  * `pixel_index` [B, O_px] int32: distinct flat indices into [T, S, S];
  * `audio_index` [B, O_a] int32: distinct audio-patch indices;
  * `label_mask`  [B] bool: the label input is replaced by the mask token
    (Bernoulli(label_mask_prob)).
Nothing depends on how the global batch is split over processes or devices,
and a resumed run draws exactly what an uninterrupted one would.
DEVIATION: "512 audio samples" is read as 512 raw samples, i.e.
512 / samples_per_patch = 32 audio-patch queries of 16 samples each (the
decoder emits one patch per query). Reading it as 512 patch queries (8,192
samples) is the other possibility; set task.train_audio_samples = 8192 for it.
"""
from typing import Callable

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

AUDIO_SCALE = 32768.0  # int16 -> [-1, 1), as the colab's / 2**15
FPS = 25  # [P]/[code]: 1,920 samples per frame of 48 kHz audio


def clip_features(num_frames: int, image_size: int, audio_samples: int,
                  label: tfds.features.ClassLabel, encoding: str = 'png',
                  extra: dict | None = None) -> tfds.features.FeaturesDict:
  """The features every multimodal dataset stores (see the module doc)."""
  return tfds.features.FeaturesDict({
      'video': tfds.features.Video(
          shape=(num_frames, image_size, image_size, 3),
          encoding_format=encoding),
      'audio': tfds.features.Tensor(shape=(audio_samples,), dtype=np.int16),
      'label': label,
      **(extra or {}),
  })


def to_int16(audio: np.ndarray) -> np.ndarray:
  """[N_a] float in [-1, 1] -> int16 samples."""
  return np.clip(np.round(np.asarray(audio, np.float64) * AUDIO_SCALE),
                 -32768, 32767).astype(np.int16)


def preprocess(num_classes: int) -> Callable[[dict, tf.Tensor], dict]:
  """fn(features, seed) -> {'video', 'audio', 'label'} (see module doc).

  No augmentation ([P] names none): the same for
  training and evaluation, so `seed` is unused.
  """
  def fn(features, seed):
    del seed
    video = tf.cast(features['video'], tf.float32) / 255.0
    audio = tf.cast(features['audio'], tf.float32)[:, None] / AUDIO_SCALE
    label = tf.one_hot(features['label'], num_classes, dtype=tf.float32)
    return {'video': video, 'audio': audio, 'label': label}
  return fn


# ---------------------------------------------------------------------------
# Training queries.
# ---------------------------------------------------------------------------


def query_counts(task: ml_collections.ConfigDict,
                 model: ml_collections.ConfigDict) -> tuple[int, int]:
  """(O_px, O_a): pixels and audio patches decoded per training example."""
  patch = model.samples_per_patch
  num_pixels = model.num_frames * model.image_size ** 2
  num_patches = model.num_frames * model.audio_samples_per_frame // patch
  if task.train_audio_samples % patch:
    raise ValueError(
        f'task.train_audio_samples={task.train_audio_samples} must be a '
        f'multiple of model.samples_per_patch={patch} (the decoder emits '
        'whole patches).')
  pixels, patches = task.train_pixels, task.train_audio_samples // patch
  if not 0 < pixels <= num_pixels:
    raise ValueError(f'task.train_pixels={pixels} must be in [1, '
                     f'{num_pixels}] (the clip has {num_pixels} pixels).')
  if not 0 < patches <= num_patches:
    raise ValueError(
        f'task.train_audio_samples={task.train_audio_samples} must be in '
        f'[{patch}, {num_patches * patch}] (the clip has {num_patches} '
        'audio patches).')
  return pixels, patches


def training_queries(*, seed: int, step: int, first: int, count: int,
                     num_pixels: int, num_patches: int, pixels: int,
                     patches: int, label_mask_prob: float
                     ) -> dict[str, np.ndarray]:
  """The queries of examples first .. first + count - 1 of the global batch
  of `step` (see the module doc): {'pixel_index' [count, O_px] int32,
  'audio_index' [count, O_a] int32, 'label_mask' [count] bool}."""
  pix = np.empty((count, pixels), np.int32)
  aud = np.empty((count, patches), np.int32)
  mask = np.empty((count,), bool)
  for i in range(count):
    rng = np.random.default_rng([seed, step, first + i])
    pix[i] = rng.choice(num_pixels, pixels, replace=False)
    aud[i] = rng.choice(num_patches, patches, replace=False)
    mask[i] = rng.random() < label_mask_prob
  return {'pixel_index': pix, 'audio_index': aud, 'label_mask': mask}
