"""The ImageNet pipeline on tfds.testing.mock_data (random JPEGs through the
real imagenet2012 builder; the real data cannot be downloaded here), plus
the ops it is built from."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from perceiver.tasks.image import imagenet
from perceiver.data import pipeline
from perceiver.tasks.image import randaugment


def _cfg(experiment, tmp_path):
  c = experiment('imagenet_fourier', 'smoke')
  manual = tmp_path / 'downloads' / 'manual'
  manual.mkdir(parents=True)
  for name in imagenet.MANUAL_FILES:
    (manual / name).write_bytes(b'')  # preparing is a no-op under mock_data
  c.input.data_dir = str(tmp_path)
  return c.input


def test_missing_data_names_where_to_put_it(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    imagenet.get_builder('imagenet2012', str(tmp_path))
  message = str(e.value)
  assert str(tmp_path / 'downloads' / 'manual') in message
  assert 'ILSVRC2012_img_train.tar' in message and 'image-net.org' in message


@pytest.mark.slow
def test_train_and_eval_batches_on_mock_data(tmp_path, experiment):
  cfg = _cfg(experiment, tmp_path)
  with tfds.testing.mock_data(num_examples=16):
    it = pipeline.train_iterator(cfg, data_dir=cfg.data_dir, seed=0,
                                 start_step=0, process_index=0,
                                 process_count=1)
    batch = next(it)
    again = next(pipeline.train_iterator(
        cfg, data_dir=cfg.data_dir, seed=0, start_step=0, process_index=0,
        process_count=1))
    batches, n = pipeline.eval_iterator(cfg, 'validation',
                                        data_dir=cfg.data_dir,
                                        process_index=0, process_count=1)
    evals = list(batches)
  size = cfg.image_size
  assert batch['images'].shape == (8, size, size, 3)
  assert batch['images'].dtype == np.float32
  assert batch['labels'].shape == (8, imagenet.NUM_CLASSES)
  # Mixed targets still sum to one; normalised pixels are centred-ish.
  np.testing.assert_allclose(batch['labels'].sum(-1), 1.0, atol=1e-5)
  assert np.abs(batch['images'].mean()) < 3
  np.testing.assert_array_equal(batch['images'], again['images'])
  assert len(evals) == n and sum(b['mask'].sum() for b in evals) == 16
  assert all(np.all(b['labels'].max(-1)[b['mask'] > 0] == 1) for b in evals)


def test_mixup_and_cutmix_mix_labels_by_what_they_mix():
  images = tf.stack([tf.fill([8, 8, 3], float(i)) for i in range(4)])
  labels = tf.one_hot(tf.range(4), 4)
  seed = tf.constant([1, 2], tf.int64)
  mixed, mlab = imagenet.mixup(images, labels, seed, 0.2)
  lam = float(mlab[0, 0])
  np.testing.assert_allclose(mixed[0].numpy(), lam * 0 + (1 - lam) * 3,
                             atol=1e-5)
  cut, clab = imagenet.cutmix(images, labels, seed)
  # The fraction of pixels taken from the partner equals its label weight.
  from_partner = float(tf.reduce_mean(tf.cast(cut[0] == 3.0, tf.float32)))
  np.testing.assert_allclose(float(clab[0, 3]), from_partner, atol=1e-6)
  np.testing.assert_allclose(clab.numpy().sum(-1), 1.0, atol=1e-6)


def test_every_randaugment_op_runs_and_keeps_shape_and_dtype():
  rng = np.random.RandomState(0)
  ramp = np.linspace(0, 200, 64)[None, :, None] + np.zeros((48, 64, 3))
  image = tf.constant((ramp + rng.randint(0, 40, ramp.shape)).astype(np.uint8))
  seed = tf.constant([3, 4], tf.int64)
  changed = 0
  for name, fn in randaugment._ops(5.0).items():  # pylint: disable=protected-access
    out = fn(image, seed)
    assert out.shape == image.shape and out.dtype == tf.uint8, name
    changed += int(not np.array_equal(out.numpy(), image.numpy()))
  assert changed >= len(randaugment.OPS) - 1
  out = randaugment.randaugment(image, seed, num_layers=4, magnitude=5)
  assert out.shape == image.shape
