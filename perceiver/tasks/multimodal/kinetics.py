"""Kinetics-700-2020 with audio, read from local files: `kinetics700_2020_av`.

Shapes: T = 16 frames, S = 224, N_a = 30,720 samples (48 kHz), K = 700.

[P] §4.3, App. I train the multimodal autoencoder on Kinetics-700-2020:
16 frames at 224 x 224 (25 fps), 48 kHz mono audio (30,720 samples, 1,920
per frame) and the 700-way label. Nothing can be downloaded here, so this
TFDS builder reads the dataset as the CVDF release distributes it
(https://github.com/cvdfoundation/kinetics-dataset, `k700_2020`), placed in
its manual directory (default <data_dir>/downloads/manual/kinetics700_2020):

  annotations/train.csv      label,youtube_id,time_start,time_end,split
  annotations/validate.csv   the same columns
  train/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4   (also found one
  val/<...>.mp4                                             folder deeper,
                                                            e.g. train/<label>/)

Each video is decoded with PyAV (perceiver.tasks.multimodal.media): frames
on a 25 fps timeline, centre square, resized to S (the release colab's
preprocessing); audio mixed to mono and resampled to 48 kHz. Stored are
16-frame windows with their audio, in the features every multimodal dataset
shares (perceiver.tasks.multimodal.inputs), frames as JPEG:
  * train: `train_windows` windows per video, evenly spaced;
  * validation: one window, centred.
The label index is the label's position in the sorted list of train.csv
labels (700 for the full dataset). Videos missing from disk or that FFmpeg
cannot decode are skipped and counted in the build log (every Kinetics copy
misses some); a video without an audio track keeps silent audio and
`has_audio` False.
DEVIATION: [P] does not say how windows are sampled; the windows are fixed at build time so that the TFRecords stay
small (about 250 KB a window), instead of a new random window every epoch.
"""
import collections
import csv
import dataclasses
import os
from typing import Optional

from absl import logging
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from perceiver.tasks.multimodal import inputs
from perceiver.tasks.multimodal import media

NAME = 'kinetics700_2020_av'
CSV_FILES = {'train': 'train.csv', 'validation': 'validate.csv'}
VIDEO_DIRS = {'train': 'train', 'validation': 'val'}
VIDEO_EXTENSIONS = ('.mp4', '.mkv', '.webm', '.avi')
BUILD_IN_WORKDIR = False  # ~/tensorflow_datasets unless input.data_dir set


@dataclasses.dataclass
class KineticsConfig(tfds.core.BuilderConfig):
  num_frames: int = 16
  image_size: int = 224
  audio_rate: int = 48_000
  num_classes: int = 700
  train_windows: int = 1

  @property
  def samples_per_frame(self) -> int:
    return self.audio_rate // inputs.FPS


INSTRUCTIONS = (
    'Kinetics-700-2020 cannot be downloaded here. Get the k700_2020 videos '
    'and annotations from https://github.com/cvdfoundation/kinetics-dataset '
    '(k700_2020_train/val tars and annotations) and lay them out in the '
    'manual directory as\n'
    '  <manual_dir>/annotations/train.csv, <manual_dir>/annotations/'
    'validate.csv\n'
    '  <manual_dir>/train/<youtube_id>_<start:06d>_<end:06d>.mp4\n'
    '  <manual_dir>/val/<youtube_id>_<start:06d>_<end:06d>.mp4\n'
    'The default manual directory is <data_dir>/downloads/manual/'
    'kinetics700_2020; config.input.manual_dir overrides it.')


def read_annotations(path: str) -> list[dict[str, str]]:
  """Rows of a Kinetics CSV (label, youtube_id, time_start, time_end)."""
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  need = {'label', 'youtube_id', 'time_start', 'time_end'}
  if rows and not need <= set(rows[0]):
    raise ValueError(f'{path}: expected the Kinetics columns {sorted(need)}; '
                     f'got {sorted(rows[0])}.')
  return rows


def clip_id(row: dict[str, str]) -> str:
  """The file stem of a Kinetics clip: <youtube_id>_<start:06d>_<end:06d>."""
  return (f'{row["youtube_id"]}_{int(float(row["time_start"])):06d}_'
          f'{int(float(row["time_end"])):06d}')


def index_videos(directory: str) -> dict[str, str]:
  """{file stem: path} of the videos under `directory` (any depth)."""
  found = {}
  for root, _, files in os.walk(directory):
    for name in files:
      stem, ext = os.path.splitext(name)
      if ext.lower() in VIDEO_EXTENSIONS:
        found.setdefault(stem, os.path.join(root, name))
  return found


def check_manual_dir(manual_dir: str) -> None:
  missing = [os.path.join('annotations', f) for f in CSV_FILES.values()
             if not os.path.exists(os.path.join(manual_dir, 'annotations', f))]
  missing += [d + '/' for d in VIDEO_DIRS.values()
              if not os.path.isdir(os.path.join(manual_dir, d))]
  if missing:
    raise FileNotFoundError(
        f'Kinetics-700-2020 is not in {manual_dir} (missing: '
        f'{", ".join(missing)}). {INSTRUCTIONS}')


def window_starts(num_frames_total: int, clip: int, count: int) -> list[int]:
  """`count` evenly spaced window starts (count 1: the centred window)."""
  room = max(num_frames_total - clip, 0)
  return sorted({int(round(room * (i + 1) / (count + 1)))
                 for i in range(count)})


class Kinetics700Av(tfds.core.GeneratorBasedBuilder):
  """Kinetics-700-2020 clips with audio from a local copy (module doc)."""

  name = NAME
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'CVDF k700_2020 layout, 16-frame windows.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
  BUILDER_CONFIGS = [KineticsConfig(name='paper')]

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    return self.dataset_info_from_configs(
        description=__doc__,
        features=inputs.clip_features(
            c.num_frames, c.image_size, c.num_frames * c.samples_per_frame,
            tfds.features.ClassLabel(num_classes=c.num_classes),
            encoding='jpeg',
            extra={'label_name': tfds.features.Text(),
                   'clip_id': tfds.features.Text(),
                   'start_frame': np.int32, 'has_audio': np.bool_}),
        homepage='https://github.com/cvdfoundation/kinetics-dataset')

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    check_manual_dir(manual_dir)
    rows = {split: read_annotations(os.path.join(manual_dir, 'annotations',
                                                 name))
            for split, name in CSV_FILES.items()}
    labels = sorted({r['label'] for r in rows['train']})
    c = self.builder_config
    if len(labels) > c.num_classes:
      raise ValueError(f'train.csv has {len(labels)} labels, more than the '
                       f'config\'s num_classes={c.num_classes}.')
    index = {label: i for i, label in enumerate(labels)}
    return {split: self._generate_examples(
        rows[split], index_videos(os.path.join(manual_dir, VIDEO_DIRS[split])),
        index, split) for split in CSV_FILES}

  def _generate_examples(self, rows, videos, label_index, split):
    c = self.builder_config
    spf = c.samples_per_frame
    skipped = collections.Counter()
    for row in rows:
      if row['label'] not in label_index:
        skipped['label not in train.csv'] += 1
        continue
      cid = clip_id(row)
      if cid not in videos:
        skipped['video file missing'] += 1
        continue
      try:
        clip = media.decode(videos[cid], image_size=c.image_size,
                            audio_rate=c.audio_rate, fps=inputs.FPS)
      except ValueError as e:
        logging.warning('Skipping %s: %s', videos[cid], e)
        skipped['not decodable'] += 1
        continue
      if len(clip.frames) < c.num_frames:
        skipped[f'shorter than {c.num_frames} frames'] += 1
        continue
      count = c.train_windows if split == 'train' else 1
      for start in window_starts(len(clip.frames), c.num_frames, count):
        stop = start + c.num_frames
        yield f'{cid}_{start}', {
            'video': clip.frames[start:stop],
            'audio': inputs.to_int16(clip.audio[start * spf:stop * spf]),
            'label': label_index[row['label']],
            'label_name': row['label'],
            'clip_id': cid,
            'start_frame': start,
            'has_audio': clip.has_audio,
        }
    if skipped:
      logging.warning('Kinetics %s: skipped %s.', split, dict(skipped))


def default_input_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      manual_dir='',  # '' = <data_dir>/downloads/manual/kinetics700_2020
  ))


def get_builder(name: str, data_dir: Optional[str], *,
                manual_dir: str = '',
                builder_config: Optional[KineticsConfig] = None
                ) -> tfds.core.DatasetBuilder:
  """The prepared builder; prepares it from the manual directory if needed,
  or raises FileNotFoundError saying what to download and where."""
  if name != NAME:
    raise ValueError(f'perceiver.tasks.multimodal.kinetics builds "{NAME}", '
                     f'not "{name}"; set config.input.name = "{NAME}".')
  builder = Kinetics700Av(data_dir=data_dir,
                          config=builder_config or 'paper')
  if builder.is_prepared():
    return builder
  root = data_dir or os.path.expanduser('~/tensorflow_datasets')
  manual_dir = manual_dir or os.path.join(root, 'downloads', 'manual',
                                          'kinetics700_2020')
  check_manual_dir(manual_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def preprocess(config: ml_collections.ConfigDict, *, train: bool):
  del config, train
  return inputs.preprocess(KineticsConfig.num_classes)


def batch_augment(config):
  del config
  return None
