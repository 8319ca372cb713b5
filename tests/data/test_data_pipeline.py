"""The tf.data pipeline: deterministic, resumable, sharded per process."""
import numpy as np
import pytest

from perceiver.data import pipeline


def _take(it, n):
  return [next(it) for _ in range(n)]


def _cfg(tiny_config, data_dir, **kw):
  c = tiny_config(data_dir, **kw)
  c.input.shuffle_buffer = 1000
  c.input.random_shift = 0  # compare examples across epochs by content
  return c.input


@pytest.mark.slow
def test_stream_is_deterministic_and_resumes_at_any_step(
    mnist_data_dir, tiny_config):
  cfg = _cfg(tiny_config, mnist_data_dir)
  cfg.random_shift = 1  # per-example augmentation must resume too
  kw = dict(data_dir=mnist_data_dir, seed=3, process_index=0,
            process_count=1)
  full = _take(pipeline.train_iterator(cfg, start_step=0, **kw), 7)
  again = _take(pipeline.train_iterator(cfg, start_step=0, **kw), 7)
  tail = _take(pipeline.train_iterator(cfg, start_step=4, **kw), 3)
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a['images'], b['images'])
  for a, b in zip(full[4:], tail):
    np.testing.assert_array_equal(a['images'], b['images'])
    np.testing.assert_array_equal(a['labels'], b['labels'])
  assert not np.array_equal(full[0]['images'], full[1]['images'])
  other = _take(pipeline.train_iterator(cfg, start_step=0, **dict(kw, seed=4)),
                1)
  assert not np.array_equal(full[0]['images'], other[0]['images'])


def test_resume_across_an_epoch_boundary(mnist_data_dir, tiny_config):
  cfg = _cfg(tiny_config, mnist_data_dir)
  cfg.train_split = 'train[:40]'  # an epoch is 2.5 batches of 16
  cfg.num_shards = 1
  kw = dict(data_dir=mnist_data_dir, seed=0, process_index=0,
            process_count=1)
  full = _take(pipeline.train_iterator(cfg, start_step=0, **kw), 6)
  tail = _take(pipeline.train_iterator(cfg, start_step=3, **kw), 3)
  for a, b in zip(full[3:], tail):
    np.testing.assert_array_equal(a['images'], b['images'])
  # Each epoch is a permutation of the same 40 examples.
  first = np.concatenate([b['images'] for b in full])[:80]
  epoch0 = {x.tobytes() for x in first[:40]}
  epoch1 = {x.tobytes() for x in first[40:80]}
  assert epoch0 == epoch1 and len(epoch0) == 40


def test_processes_read_disjoint_shards_that_form_the_global_batch(
    mnist_data_dir, tiny_config):
  cfg = _cfg(tiny_config, mnist_data_dir)
  cfg.num_shards = 2
  kw = dict(data_dir=mnist_data_dir, seed=0, start_step=0)
  single = _take(pipeline.train_iterator(cfg, process_index=0,
                                         process_count=1, **kw), 2)
  p0 = _take(pipeline.train_iterator(cfg, process_index=0, process_count=2,
                                     **kw), 2)
  p1 = _take(pipeline.train_iterator(cfg, process_index=1, process_count=2,
                                     **kw), 2)
  for s, a, b in zip(single, p0, p1):
    assert a['images'].shape[0] == 8
    np.testing.assert_array_equal(
        s['images'], np.concatenate([a['images'], b['images']]))
  seen0 = {x.tobytes() for b in p0 for x in b['images']}
  seen1 = {x.tobytes() for b in p1 for x in b['images']}
  assert not seen0 & seen1


def test_eval_pads_and_masks_every_process_equally(mnist_data_dir, tiny_config):
  cfg = _cfg(tiny_config, mnist_data_dir)
  cfg.eval_batch_size = 3000
  total, counts = 0.0, []
  for p in range(2):
    batches, n = pipeline.eval_iterator(
        cfg, 'validation', data_dir=mnist_data_dir, process_index=p,
        process_count=2)
    got = list(batches)
    counts.append(len(got))
    assert len(got) == n
    total += sum(float(b['mask'].sum()) for b in got)
    assert all(b['images'].shape[0] == 1500 for b in got)
  assert counts[0] == counts[1]
  assert total == 10000


def test_bad_batch_sizes_name_the_fix(mnist_data_dir, tiny_config):
  cfg = _cfg(tiny_config, mnist_data_dir)
  cfg.num_shards = 3
  with pytest.raises(ValueError, match='global_batch_size=16 must divide'):
    pipeline.train_iterator(cfg, data_dir=mnist_data_dir, seed=0,
                            start_step=0, process_index=0, process_count=1)
