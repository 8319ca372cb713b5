"""The multimodal data: decoding real video/audio, the embedded builder and
the Kinetics-700-2020 reader (on small files in its layout, written here)."""
import csv
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from perceiver.tasks.multimodal import embedded
from perceiver.tasks.multimodal import inputs
from perceiver.tasks.multimodal import kinetics
from perceiver.tasks.multimodal import media


@pytest.fixture(scope='module')
def film(bigbuckbunny):
  """bigbuckbunny.mp4 decoded as the tiny dataset decodes it."""
  c = embedded.clip_config('embedded_av/tiny')
  return media.decode(bigbuckbunny, image_size=c.image_size,
                      audio_rate=c.audio_rate)


def test_decode_real_video_on_a_25fps_timeline(bigbuckbunny, film):
  # 132 frames at 25 fps and 5.3 s of 5.1-channel 48 kHz AAC, as mono 8 kHz.
  assert film.frames.shape == (132, 32, 32, 3)
  assert film.frames.dtype == np.uint8
  assert film.audio.shape == (132 * 320,) and film.has_audio
  # Real content: the picture changes, the audio is not silence.
  assert np.abs(np.diff(film.frames.astype(int), axis=0)).mean() > 1
  rms = np.sqrt(np.mean(film.audio ** 2))
  assert 0.01 < rms < 0.5, rms
  # A window decodes to the same frames as the whole film's slice.
  part = media.decode(bigbuckbunny, image_size=32, audio_rate=8000,
                      start=2.0, seconds=0.32)
  assert part.frames.shape == (8, 32, 32, 3)
  np.testing.assert_array_equal(part.frames, film.frames[50:58])
  np.testing.assert_allclose(part.audio, film.audio[16000:18560], atol=2e-3)


def test_decode_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='No video file'):
    media.decode(str(tmp_path / 'nope.mp4'), image_size=8, audio_rate=8000)
  junk = tmp_path / 'junk.mp4'
  junk.write_bytes(b'not a video at all')
  with pytest.raises(ValueError, match='FFmpeg cannot open it'):
    media.decode(str(junk), image_size=8, audio_rate=8000)


def test_embedded_builder_holds_held_out_seconds(tiny_data_dir, film):
  builder = embedded.get_builder('embedded_av/tiny', tiny_data_dir)
  splits = builder.info.splits
  assert (splits['train'].num_examples, splits['test'].num_examples) == (16, 6)
  examples = {split: list(tfds.as_numpy(builder.as_dataset(split=split)))
              for split in ('train', 'test')}
  fps, t, spf = 25, 8, 320
  for split, rows in examples.items():
    for ex in rows:
      start = int(ex['start_frame'])
      seconds = {f // fps for f in range(start, start + t)}
      # Every frame of a test clip is in a held-out second (s % 3 == 1),
      # no frame of a training clip is.
      assert all((s % 3 == 1) == (split == 'test') for s in seconds), (
          split, start)
      # The stored clip is the film's (real pixels and samples).
      np.testing.assert_array_equal(ex['video'], film.frames[start:start + t])
      np.testing.assert_array_equal(
          ex['audio'], inputs.to_int16(film.audio[start * spf:(start + t) * spf]))
      assert ex['label'] == 0  # bigbuckbunny, the only source of 'tiny'


def test_embedded_errors():
  with pytest.raises(ValueError, match='embedded_av/<config>'):
    embedded.get_builder('embedded_av/huge', None)
  starts = embedded.clip_starts(132, 16, 1, held_out=False)
  assert starts[:2] == [0, 1] and 10 not in starts  # 10..25 crosses second 1


def test_preprocess_ranges(tiny_data_dir):
  builder = embedded.get_builder('embedded_av/tiny', tiny_data_dir)
  fn = inputs.preprocess(num_classes=1)
  ds = builder.as_dataset(split='test').map(lambda f: fn(f, None))
  ex = next(iter(tfds.as_numpy(ds)))
  assert ex['video'].shape == (8, 32, 32, 3) and ex['audio'].shape == (2560, 1)
  assert 0 <= ex['video'].min() and ex['video'].max() <= 1
  assert -1 <= ex['audio'].min() and ex['audio'].max() < 1
  np.testing.assert_array_equal(ex['label'], [1.0])


# ---------------------------------------------------------------------------
# Kinetics-700-2020 on small files in the CVDF layout.
# ---------------------------------------------------------------------------

TEST_CONFIG = kinetics.KineticsConfig(
    name='test', num_frames=4, image_size=16, audio_rate=8000, num_classes=3,
    train_windows=2)


def _write_clip(path, film, start, frames, with_audio=True):
  """A 16:9-ish clip (36 x 64) of real bigbuckbunny video and audio."""
  picture = film.frames[start:start + frames]  # [T, 32, 32, 3]
  wide = np.concatenate([picture, picture[:, :, ::-1]], axis=2)[:, 2:30]
  audio = film.audio[start * 320:(start + frames) * 320]
  os.makedirs(os.path.dirname(path), exist_ok=True)
  media.write_mp4(path, wide, 25, audio if with_audio else None, 8000)


@pytest.fixture(scope='module')
def kinetics_dir(tmp_path_factory, film):
  root = tmp_path_factory.mktemp('kinetics') / 'manual'
  rows = {
      'train': [('abseiling', 'aaaaaaaaaaa', 0, 10, 0),
                ('zumba', 'bbbbbbbbbbb', 5, 15, 30),
                ('abseiling', 'ccccccccccc', 2, 12, 60),
                ('zumba', 'missingvide', 0, 10, None)],  # not on disk
      'validation': [('zumba', 'ddddddddddd', 1, 11, 90),
                     ('abseiling', 'eeeeeeeeeee', 0, 10, 100)],
  }
  for split, items in rows.items():
    folder = kinetics.VIDEO_DIRS[split]
    path = root / 'annotations' / kinetics.CSV_FILES[split]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(['label', 'youtube_id', 'time_start', 'time_end',
                       'split'])
      for label, vid, t0, t1, start in items:
        writer.writerow([label, vid, t0, t1, split])
        if start is None:
          continue
        stem = f'{vid}_{t0:06d}_{t1:06d}.mp4'
        # One video one folder deeper (train/<label>/...), one silent.
        sub = label if vid == 'ccccccccccc' else ''
        _write_clip(str(root / folder / sub / stem), film, start, 12,
                    with_audio=vid != 'eeeeeeeeeee')
  (root / 'val').mkdir(exist_ok=True)
  return str(root)


def test_kinetics_reader(tmp_path, kinetics_dir):
  data_dir = str(tmp_path / 'tfds')
  builder = kinetics.get_builder(kinetics.NAME, data_dir,
                                 manual_dir=kinetics_dir,
                                 builder_config=TEST_CONFIG)
  train = list(tfds.as_numpy(builder.as_dataset(split='train')))
  val = list(tfds.as_numpy(builder.as_dataset(split='validation')))
  # 3 of 4 train videos exist, 2 windows each; the missing one is skipped.
  assert len(train) == 6 and len(val) == 2
  by_id = {}
  for ex in train + val:
    by_id.setdefault(ex['clip_id'].decode(), []).append(ex)
    assert ex['video'].shape == (4, 16, 16, 3)
    assert ex['audio'].shape == (4 * 320,) and ex['audio'].dtype == np.int16
  assert sorted(by_id) == ['aaaaaaaaaaa_000000_000010', 'bbbbbbbbbbb_000005_000015',
                           'ccccccccccc_000002_000012', 'ddddddddddd_000001_000011',
                           'eeeeeeeeeee_000000_000010']
  # Labels: the sorted train.csv labels (abseiling 0, zumba 1).
  assert {int(e['label']) for e in by_id['bbbbbbbbbbb_000005_000015']} == {1}
  assert by_id['ccccccccccc_000002_000012'][0]['label_name'] == b'abseiling'
  # Windows: evenly spaced in training (12 frames: starts 3 and 5), centred
  # at validation (start 4); the silent video keeps silence.
  assert sorted(int(e['start_frame'])
                for e in by_id['aaaaaaaaaaa_000000_000010']) == [3, 5]
  assert int(by_id['ddddddddddd_000001_000011'][0]['start_frame']) == 4
  silent = by_id['eeeeeeeeeee_000000_000010'][0]
  assert not silent['has_audio'] and not silent['audio'].any()
  assert by_id['ddddddddddd_000001_000011'][0]['has_audio']
  # The stored window is what media.decode reads from the file.
  path = os.path.join(kinetics_dir, 'val', 'ddddddddddd_000001_000011.mp4')
  clip = media.decode(path, image_size=16, audio_rate=8000)
  ex = by_id['ddddddddddd_000001_000011'][0]
  assert np.abs(ex['video'].astype(int) - clip.frames[4:8]).mean() < 6  # JPEG
  np.testing.assert_array_equal(ex['audio'],
                                inputs.to_int16(clip.audio[4 * 320:8 * 320]))


def test_kinetics_missing_data_says_what_to_download(tmp_path):
  with pytest.raises(FileNotFoundError,
                     match=r'(?s)annotations/train\.csv.*cvdfoundation'):
    kinetics.get_builder(kinetics.NAME, str(tmp_path))
  with pytest.raises(ValueError, match='kinetics700_2020_av'):
    kinetics.get_builder('kinetics700', str(tmp_path))
