"""Shared input machinery, for every task that reads TFDS records.

`perceiver.data.pipeline` turns a record-per-example input module into
per-process numpy batches: resumable, sharded training streams (a pure
function of seed and step) and padded evaluation batches. An input module
(for example perceiver/tasks/image/mnist.py or imagenet.py), named by
`config.input.module`, offers:

  default_input_config() -> ml_collections.ConfigDict  # its config.input keys
  get_builder(name, data_dir) -> tfds.core.DatasetBuilder  # prepared
  preprocess(config, *, train) -> fn(features, seed [2] int32) -> example
  batch_augment(config) -> fn(batch, seed [2] int32) -> batch, or None

Tasks whose inputs do not fit that shape (the MLM packs several documents
into one example) write their own iterators with the same determinism rules.
"""
