"""Input pipelines: TFDS builders and tf.data pipelines for every experiment.

Each dataset module (`perceiver.data.mnist`, `perceiver.data.imagenet`) offers
the same small interface, found by import path from `config.input.module`
(no registry):

  default_input_config() -> ml_collections.ConfigDict  # the keys it accepts
  get_builder(name, data_dir) -> tfds.core.DatasetBuilder  # prepared
  preprocess(config, *, train) -> fn(features, seed [2] int32) -> example
  batch_augment(config) -> fn(batch, seed [2] int32) -> batch, or None

`perceiver.data.pipeline` turns those into per-process numpy batches.
"""
