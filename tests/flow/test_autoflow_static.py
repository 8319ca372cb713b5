"""The static AutoFlow reader, its held-out split, its resumable stream and
its augmentation, on a small tree of samples the tests write (two of the
four archive folders, 40x56 random frames, a constant flow per sample)."""
import os

import numpy as np
import pytest

from perceiver.tasks.flow import autoflow_static
from perceiver.tasks.flow import flow_io
from perceiver.tasks.flow import recipes
from perceiver.tasks.flow import task
from tests.flow import streams
from tests.training_fixtures import load_experiment

FRAME = (40, 56)
# Samples per archive folder; with FRACTION, 2 of the 6 names are held out
# (the rule hashes the names: checked in test_heldout_split_...).
SAMPLES = {autoflow_static.ARCHIVES[0]: 3, autoflow_static.ARCHIVES[2]: 3}
FRACTION = 0.3


def _flow_of(k):
  """Sample k's constant flow: a distinct (u, v) identifies the sample."""
  return np.array([1.5 + k, -0.5 * k], np.float32)


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
  """(data_dir, {name: (images [2, H, W, 3] uint8, flow [H, W, 2])})."""
  root = tmp_path_factory.mktemp('autoflow')
  rng = np.random.default_rng(0)
  written, k = {}, 0
  for archive, count in SAMPLES.items():
    for i in range(count):
      folder = root / archive / f'table_{i}'
      folder.mkdir(parents=True)
      images = rng.integers(0, 256, (2,) + FRAME + (3,), dtype=np.uint8)
      flow = np.broadcast_to(_flow_of(k), FRAME + (2,)).copy()
      flow_io.write_png(str(folder / 'im0.png'), images[0])
      flow_io.write_png(str(folder / 'im1.png'), images[1])
      flow_io.write_flo(str(folder / 'forward.flo'), flow)
      written[f'{archive}/table_{i}'] = (images, flow)
      k += 1
  return str(root), written


def _config(**overrides):
  c = load_experiment('optical_flow', 'smoke,source=autoflow')
  c.input.heldout_fraction = FRACTION
  c.update_from_flattened_dict(overrides)
  return c


def _sample_of(flow, written):
  """The name of the sample whose constant flow `flow` [h, w, 2] is."""
  found = [n for n, (_, f) in written.items()
           if np.allclose(flow, f[0, 0], atol=1e-5)]
  assert len(found) == 1, flow[0, 0]
  return found[0]


def test_reader_yields_the_files_exactly(tree):
  data_dir, written = tree
  names = autoflow_static.list_samples(data_dir)
  assert names == tuple(sorted(written))
  for name in names[:2]:
    sample = autoflow_static.read_sample(data_dir, name)
    np.testing.assert_array_equal(sample['images'], written[name][0])
    np.testing.assert_array_equal(sample['flow'], written[name][1])


def test_heldout_split_is_fixed_and_never_trained_on(tree):
  data_dir, written = tree
  heldout = autoflow_static.split(data_dir, 'heldout', FRACTION)
  train = autoflow_static.split(data_dir, 'train', FRACTION)
  assert len(heldout) == 2 and len(train) == 4
  assert not set(heldout) & set(train)
  assert sorted(heldout + train) == sorted(written)
  # The rule is the name's hash alone: the same with fewer samples present.
  assert all(autoflow_static.is_heldout(n, FRACTION) for n in heldout)
  assert not any(autoflow_static.is_heldout(n, FRACTION) for n in train)
  # Two epochs of the training stream (no augmentation): each training
  # sample once per epoch, in a new order, and never a held-out one.
  c = _config(**{'input.phase_severities': (0.0,) * 4,
                 'input.reverse_first_phase': False,
                 'input.global_batch_size': 4})
  stream = task.train_iterator(c, data_dir=data_dir, seed=1, start_step=0,
                               process_index=0, process_count=1)
  epochs = [[_sample_of(f, written) for f in next(stream)['flow']]
            for _ in range(2)]
  for epoch in epochs:
    assert sorted(epoch) == sorted(train)
  assert epochs[0] != epochs[1]
  # The loop's eval: the held-out samples, centre-cropped, unaugmented.
  c.input.num_eval_examples = 8  # more than there are: all of them
  batches, count = task.eval_iterator(c, 'heldout', data_dir=data_dir,
                                      process_index=0, process_count=1)
  (batch,) = list(batches)
  assert count == 1
  np.testing.assert_array_equal(batch['mask'], [1, 1, 0, 0, 0, 0, 0, 0])
  (h, w), (big_h, big_w) = c.input.image_size, FRAME
  top, left = (big_h - h) // 2, (big_w - w) // 2
  for row, name in enumerate(heldout):
    images, flow = written[name]
    np.testing.assert_allclose(
        batch['images'][row],
        images[:, top:top + h, left:left + w] / 255 * 2 - 1, atol=1e-6)
    np.testing.assert_array_equal(batch['flow'][row], flow[:h, :w])
    assert batch['valid'][row].all()


def test_stream_resumes_exactly_and_splits_over_processes(tree):
  data_dir, _ = tree
  c = _config(num_train_steps=4)
  whole = streams.check_resume_and_process_split(c, data_dir)
  assert whole[0]['images'].shape == (8, 2, 12, 16, 3)
  # Step 1 is the reversed first phase: example 2j + 1 is example 2j's
  # frames swapped (same crop), with the reversed constant flow.
  first = whole[0]
  np.testing.assert_array_equal(first['images'][1], first['images'][0][::-1])
  np.testing.assert_allclose(first['flow'][1], -first['flow'][0], atol=1e-5)
  assert not np.array_equal(whole[1]['images'], whole[2]['images'])


def test_missing_data_names_the_archives_and_the_fix(tree, tmp_path):
  for data_dir in ('', str(tmp_path)):
    with pytest.raises(FileNotFoundError) as e:
      autoflow_static.list_samples(data_dir)
    message = str(e.value)
    for archive in autoflow_static.ARCHIVES:
      assert archive + '.zip' in message
    assert 'im0.png, im1.png, forward.flo' in message
    assert '--config.input.data_dir=DIR' in message
  # Archives downloaded but not unpacked: the error says so.
  (tmp_path / 'static_40k_png_2_of_4.zip').write_bytes(b'PK')
  with pytest.raises(FileNotFoundError, match='not unpacked'):
    autoflow_static.list_samples(str(tmp_path))
  # A sample folder without its flow.
  folder = tmp_path / autoflow_static.ARCHIVES[1] / 'table_0'
  folder.mkdir(parents=True)
  for name in ('im0.png', 'im1.png'):
    (folder / name).write_bytes(b'')
  with pytest.raises(FileNotFoundError,
                     match=r'table_0 lacks forward.flo.*unzip it again'):
    autoflow_static.list_samples(str(tmp_path))
  # The task fails at prepare_data, before any training.
  c = _config()
  c.input.data_dir = ''
  with pytest.raises(FileNotFoundError, match='static_40k_png_4_of_4.zip'):
    task.prepare_data(c, str(tmp_path))


def test_source_is_checked_and_defaults_per_variant():
  assert load_experiment('optical_flow').input.source == 'autoflow'
  assert load_experiment('optical_flow', 'cpu').input.source == 'generated'
  assert load_experiment('optical_flow', 'smoke').input.source == 'generated'
  assert load_experiment(
      'optical_flow', 'source=generated').input.source == 'generated'
  with pytest.raises(ValueError, match='source=generated or source=autoflow'):
    recipes.from_variants({'source': 'sintel'})
  with pytest.raises(ValueError, match='generated pairs only|add source='):
    recipes.from_variants({'textures': '/x'})
  c = _config()
  c.input.source = 'chairs'
  with pytest.raises(ValueError, match=r"\('generated', 'autoflow'\)"):
    task.make_model(c)


# --- Augmentation ----------------------------------------------------------


def _pair(seed=0):
  rng = np.random.default_rng(seed)
  images = rng.random((2,) + FRAME + (3,)).astype(np.float32)
  flow = rng.normal(0, 3, FRAME + (2,)).astype(np.float32)
  return images, flow, np.ones(FRAME, bool)


def test_severity_0_crops_the_original_pixels():
  images, flow, valid = _pair()
  offsets = set()
  for seed in range(12):
    rng = np.random.default_rng(seed)
    crop = autoflow_static.random_crop(rng, FRAME, (12, 16), 0.0)
    assert crop.zoom == (1.0, 1.0) and crop.flips == (False, False)
    x, y = crop.offset
    assert 0 <= x <= FRAME[1] - 16 and 0 <= y <= FRAME[0] - 12
    offsets.add(crop.offset)
    out = autoflow_static.augment(np.random.default_rng(seed), images, flow,
                                  valid, (12, 16), 0.0)
    np.testing.assert_allclose(out['images'],
                               images[:, y:y + 12, x:x + 16] * 2 - 1,
                               atol=1e-6)
    np.testing.assert_array_equal(out['flow'], flow[y:y + 12, x:x + 16])
  assert len(offsets) > 6  # the crop position is random


def test_flips_mirror_the_frames_and_negate_one_flow_component():
  images, flow, valid = _pair()
  size = FRAME
  plain = autoflow_static.apply_crop(
      autoflow_static.Crop((1.0, 1.0), (0, 0), (False, False)), size,
      images, flow, valid)
  h = autoflow_static.apply_crop(
      autoflow_static.Crop((1.0, 1.0), (0, 0), (True, False)), size,
      images, flow, valid)
  v = autoflow_static.apply_crop(
      autoflow_static.Crop((1.0, 1.0), (0, 0), (False, True)), size,
      images, flow, valid)
  np.testing.assert_array_equal(h[0], plain[0][:, :, ::-1])
  np.testing.assert_array_equal(h[1][..., 0], -plain[1][:, ::-1, 0])
  np.testing.assert_array_equal(h[1][..., 1], plain[1][:, ::-1, 1])
  np.testing.assert_array_equal(v[0], plain[0][:, ::-1])
  np.testing.assert_array_equal(v[1][..., 0], plain[1][::-1, :, 0])
  np.testing.assert_array_equal(v[1][..., 1], -plain[1][::-1, :, 1])
  # At full severity RAFT's rates: about half the crops flip horizontally,
  # a tenth vertically.
  flips = np.array([autoflow_static.random_crop(
      np.random.default_rng(s), FRAME, (12, 16), 1.0).flips
                    for s in range(400)])
  assert 0.42 < flips[:, 0].mean() < 0.58
  assert 0.05 < flips[:, 1].mean() < 0.16


def test_zoom_scales_the_flow_and_resamples_the_frames():
  ys, xs = np.mgrid[0:FRAME[0], 0:FRAME[1]].astype(np.float32)
  ramp = np.stack([xs / 64, ys / 64, (xs + ys) / 128], -1)
  images = np.stack([ramp, ramp])
  flow = np.broadcast_to(np.float32([2.0, -1.0]), FRAME + (2,))
  crop = autoflow_static.Crop((1.5, 1.25), (5, 3), (False, False))
  out_images, out_flow, out_valid = autoflow_static.apply_crop(
      crop, (12, 16), images, flow, np.ones(FRAME, bool))
  np.testing.assert_allclose(out_flow, np.broadcast_to([3.0, -1.25],
                                                       (12, 16, 2)), rtol=1e-6)
  assert out_valid.all()
  # A linear image resamples exactly: pixel j is source (5 + j + .5) / 1.5
  # - .5 across, (3 + i + .5) / 1.25 - .5 down.
  sx = (5 + np.arange(16) + 0.5) / 1.5 - 0.5
  sy = (3 + np.arange(12) + 0.5) / 1.25 - 0.5
  np.testing.assert_allclose(out_images[0][..., 0],
                             np.broadcast_to(sx / 64, (12, 16)), atol=1e-6)
  np.testing.assert_allclose(out_images[1][..., 1],
                             np.broadcast_to(sy[:, None] / 64, (12, 16)),
                             atol=1e-6)
  # At full severity the zoom is RAFT's: 2^[-0.1, 1.0] times a stretch
  # of 2^[-0.2, 0.2], in 0.8 of the crops, and never so small that the
  # crop leaves the frame.
  zooms = np.array([autoflow_static.random_crop(
      np.random.default_rng(s), FRAME, (12, 16), 1.0).zoom
                    for s in range(400)])
  assert zooms.min() > 2 ** -0.3 and zooms.max() < 2 ** 1.2
  assert 0.7 < np.mean(np.any(zooms != 1, 1)) < 0.9
  small = autoflow_static.random_crop(np.random.default_rng(0), (10, 10),
                                      (12, 16), 0.0)
  assert small.zoom == (1.6, 1.2) and small.offset == (0, 0)


def test_reversed_pair_of_a_translation_is_the_opposite_translation():
  t = np.array([2.3, -1.6], np.float32)
  flow = np.broadcast_to(t, FRAME + (2,))
  back, valid = autoflow_static.reverse_flow(flow)
  np.testing.assert_allclose(back[valid] + t, 0, atol=1e-5)
  # What comes in over the left and bottom borders has no source in frame
  # 1: invalid (the pixels x < 2, y > 37 get under half a pixel's weight).
  assert not valid[:, :2].any() and not valid[-2:].any()
  assert valid[:-2, 3:].all()
  # ... and holds a filled-in flow, not zero (the loss sees every pixel).
  np.testing.assert_allclose(back[~valid] + t, 0, atol=1e-5)
  # An expansion about c: p -> c + 1.1 (p - c). Its reverse is
  # q -> c + (q - c) / 1.1, i.e. flow -(q - c) * 0.1 / 1.1.
  ys, xs = np.mgrid[0:FRAME[0], 0:FRAME[1]].astype(np.float64)
  grid = np.stack([xs, ys], -1)
  c = np.array([27.5, 19.5])
  back, valid = autoflow_static.reverse_flow(
      ((grid - c) * 0.1).astype(np.float32))
  expected = -(grid - c) * 0.1 / 1.1
  assert valid[5:-5, 5:-5].all()
  np.testing.assert_allclose(back[valid], expected[valid], atol=0.06)


def test_full_severity_examples_are_deterministic_and_in_range(tree):
  """The same batch, made in one thread or three."""
  data_dir, _ = tree
  names = autoflow_static.split(data_dir, 'train', FRACTION)
  kw = dict(size=(12, 16), seed=5, severity=1.0)
  a = autoflow_static.make_batch(data_dir, names, range(6), **kw)
  b = autoflow_static.make_batch(data_dir, names, range(6), threads=3, **kw)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert a['images'].min() >= -1 and a['images'].max() <= 1
  assert np.isfinite(a['flow']).all()
  assert set(np.unique(a['valid'])) <= {0.0, 1.0}


@pytest.mark.slow
def test_smoke_training_on_autoflow_writes_a_checkpoint(tree, tmp_path):
  """experiments/optical_flow.py:smoke,source=autoflow through the one
  training loop: 2 steps on the tree, eval on its held-out samples."""
  from perceiver.train import checkpoint  # pylint: disable=g-import-not-at-top
  from perceiver.train import trainer  # pylint: disable=g-import-not-at-top
  data_dir, _ = tree
  c = _config()
  c.input.data_dir = data_dir
  workdir = str(tmp_path / 'run')
  metrics = trainer.train_and_evaluate(c, workdir)
  assert metrics['eval/num_examples'] == 2  # the held-out samples
  assert np.isfinite(metrics['eval/epe'])
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                 read_only=True)
  assert ckpt.latest_step() == 2
  ckpt.close()
