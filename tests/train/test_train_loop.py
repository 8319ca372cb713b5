"""The training loop on real MNIST with a tiny Perceiver (no mocks).

1 device vs 4 forced host devices, shard_map vs pmap, resume == uninterrupted,
the NaN guard, init_from, evaluate and export.
"""
import glob
import logging
import os
import pickle
import shutil

import jax
import numpy as np
import pytest

from perceiver import perceiver as perceiver_lib
from perceiver.train import checkpoint
from perceiver.train import trainer


def _params(workdir, config, step='latest'):
  ts, _ = trainer.restore_state(config, workdir, step=step,
                                devices=jax.devices()[:1])
  return jax.device_get(ts)


def _assert_trees(a, b, atol):
  flat_a, tree_a = jax.tree.flatten(a)
  flat_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(flat_a, flat_b):
    if atol == 0:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    else:
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol,
                                 rtol=0)


@pytest.mark.slow
def test_one_device_equals_four_devices(tmp_path, mnist_data_dir, tiny_config,
                                        reference_run):
  """Same global batch of 16 on 1, 2 (the reference) and 4 devices."""
  assert jax.device_count() >= 4, 'tests/conftest.py forces 4 host devices'
  config = tiny_config(mnist_data_dir)
  trainer.train_and_evaluate(config, str(tmp_path / 'one'),
                             devices=jax.devices()[:1])
  trainer.train_and_evaluate(config, str(tmp_path / 'four'),
                             devices=jax.devices()[:4])
  one = _params(str(tmp_path / 'one'), config)
  four = _params(str(tmp_path / 'four'), config)
  two = _params(reference_run, config)
  assert int(one.step) == int(four.step) == config.num_train_steps
  _assert_trees(one.params, four.params, atol=1e-5)
  _assert_trees(one.params, two.params, atol=1e-5)
  # Training moved the parameters (the comparison is not vacuous).
  halfway = _params(reference_run, config, step='4').params
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(halfway),
                              jax.tree.leaves(two.params)))
  assert moved > 1e-3


@pytest.mark.slow
def test_shard_map_equals_pmap(tmp_path, mnist_data_dir, tiny_config,
                               reference_run):
  config = tiny_config(mnist_data_dir)
  config.parallelism = 'pmap'
  trainer.train_and_evaluate(config, str(tmp_path / 'pm'),
                             devices=jax.devices()[:2])
  _assert_trees(_params(reference_run, config).params,
                _params(str(tmp_path / 'pm'), config).params, atol=1e-6)


@pytest.mark.slow
def test_resume_is_bit_identical(tmp_path, mnist_data_dir, tiny_config,
                                 reference_run):
  """N steps, restore, N more steps == 2N steps uninterrupted, bit for bit
  (params, optimiser state with its MultiSteps accumulator, step)."""
  config = tiny_config(mnist_data_dir)
  n = config.num_train_steps // 2
  # The state a run preempted after step n leaves behind: its checkpoint n.
  resumed = tmp_path / 'resumed'
  (resumed / 'checkpoints').mkdir(parents=True)
  shutil.copytree(os.path.join(reference_run, 'checkpoints', str(n)),
                  resumed / 'checkpoints' / str(n))
  trainer.train_and_evaluate(config, str(resumed), devices=jax.devices()[:2])
  _assert_trees(_params(reference_run, config),
                _params(str(resumed), config), atol=0)


@pytest.mark.slow
def test_nan_loss_stops_with_step_range_and_keeps_good_checkpoint(
    tmp_path, mnist_data_dir, tiny_config):
  config = tiny_config(mnist_data_dir, num_train_steps=40, checkpoint_every=2,
                       log_every=2)
  config.schedule.base_lr = 1e30  # real divergence, no injected NaN
  config.schedule.warmup_steps = 0
  config.optimizer.clip_global_norm = 0.0
  workdir = str(tmp_path / 'nan')
  with pytest.raises(FloatingPointError, match=r'at step \d+.*steps \d+-\d+'):
    trainer.train_and_evaluate(config, workdir, devices=jax.devices()[:1])
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                 read_only=True)
  last = ckpt.latest_step()
  if last is not None:  # every kept checkpoint is finite
    tree = ckpt.restore(last)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree['params']))


@pytest.mark.slow
def test_init_from_release_pickle_with_subset_and_export(
    tmp_path, mnist_data_dir, tiny_config, reference_run):
  config = tiny_config(mnist_data_dir)
  exported = trainer.export(config, reference_run, str(tmp_path / 'p.pickle'))
  with open(exported, 'rb') as f:
    release = pickle.load(f)  # the release format: plain pickle of dicts
  assert any('perceiver_encoder' in k for k in release)
  # Fine-tune: everything but the classifier ("replace only the final
  # decoder Linear", [P] App. A).
  ft = tiny_config(mnist_data_dir, num_train_steps=1)
  ft.init_from.path = exported
  head = 'classification_decoder/~/basic_decoder/output'
  ft.init_from.include = (f'^(?!{head}/)',)
  ft.schedule.base_lr = 0.0
  trainer.train_and_evaluate(ft, str(tmp_path / 'ft'),
                             devices=jax.devices()[:1])
  # The run trains scanned (the fast path); the export is per layer.
  got = perceiver_lib.to_release_layout(_params(str(tmp_path / 'ft'), ft).params)
  for module, leaves in got.items():
    for name, value in leaves.items():
      same = np.array_equal(np.asarray(value), release[module][name])
      assert same == (module != head), (module, name)


@pytest.mark.slow
def test_warm_start_from_a_release_pickle_into_a_scanned_model(
    tmp_path, mnist_data_dir, tiny_config):
  """One warm-start path for every layout: a release-layout pickle (per-layer
  self-attention modules) seeds a scan_layers=True run, whose outputs then
  equal those of the per-layer model with the pickle's parameters."""
  from perceiver import checkpoint_io  # pylint: disable=g-import-not-at-top
  from perceiver.tasks.image import task as image_task  # pylint: disable=g-import-not-at-top
  unscanned = tiny_config(mnist_data_dir, num_train_steps=1)
  unscanned.model.encoder.num_self_attends_per_block = 3
  unscanned.scan_layers = False  # the experiments train scanned
  batch = {'images': np.random.default_rng(0).normal(
      size=(2, 28, 28, 1)).astype(np.float32)}
  model = image_task.make_model(unscanned)
  release, state = model.init(jax.random.PRNGKey(3), batch, is_training=True)
  path = str(tmp_path / 'release.pickle')
  checkpoint_io.save_params(path, release)
  assert any(m.endswith('self_attention_2/attention/linear') for m in release)

  scanned = tiny_config(mnist_data_dir, num_train_steps=1)
  scanned.model.encoder.num_self_attends_per_block = 3
  scanned.scan_layers = True
  scanned.init_from.path = path
  scanned.schedule.base_lr = 0.0  # the step leaves the warm start as it is
  trainer.train_and_evaluate(scanned, str(tmp_path / 'scanned'),
                             devices=jax.devices()[:1])
  got = _params(str(tmp_path / 'scanned'), scanned)
  assert perceiver_lib.is_scanned(got.params)
  want, _ = model.apply(release, state, None, batch, is_training=False)
  out, _ = image_task.make_model(scanned).apply(got.params, got.state, None,
                                                batch, is_training=False)
  np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
  # Exported back, the run is the release's tree again, leaf for leaf.
  exported = trainer.export(scanned, str(tmp_path / 'scanned'),
                            str(tmp_path / 'back.pickle'))
  back, _ = checkpoint_io.load_params(exported, expected=release)
  _assert_trees(back, release, atol=0)


@pytest.mark.slow
def test_evaluate_counts_every_example_once(mnist_data_dir, tiny_config,
                                            reference_run):
  config = tiny_config(mnist_data_dir)
  config.input.eval_batch_size = 3000  # 10000 = 3 full + 1 padded batch
  result = trainer.evaluate(config, reference_run, split='validation',
                            devices=jax.devices()[:2])
  assert result['num_examples'] == 10000
  assert result['step'] == config.num_train_steps
  assert 0.0 <= result['accuracy'] <= 1.0


@pytest.mark.slow
def test_bfloat16_compute_with_remat_keeps_float32_master_weights(
    tmp_path, mnist_data_dir, tiny_config):
  config = tiny_config(mnist_data_dir, num_train_steps=4)
  config.remat = True
  config.compute_dtype = 'bfloat16'
  trainer.train_and_evaluate(config, str(tmp_path / 'bf16'),
                             devices=jax.devices()[:1])
  state = _params(str(tmp_path / 'bf16'), config)
  assert int(state.step) == 4
  leaves = jax.tree.leaves(state.params)
  assert all(x.dtype == np.float32 and np.all(np.isfinite(x)) for x in leaves)


# --- Damaged and foreign checkpoints ----------------------------------------


def _damage(step_dir, kind):
  """The damage a full disk, a killed copy or a bad sync leaves."""
  if kind == 'truncated array files':
    # Every file of the OCDBT array database, its index (default/d) and the
    # process's data files (default/ocdbt.process_0/d): which arrays and
    # index nodes end up in which file varies between runs, and the
    # database also keeps files the final tree no longer references.
    for folder in glob.glob(os.path.join(step_dir, 'default', '**', 'd'),
                            recursive=True):
      for name in os.listdir(folder):
        path = os.path.join(folder, name)
        with open(path, 'r+b') as f:
          f.truncate(os.path.getsize(path) // 2)
  elif kind == 'truncated metadata':
    path = os.path.join(step_dir, 'default', '_METADATA')
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)
  else:  # an empty step folder
    shutil.rmtree(step_dir)
    os.mkdir(step_dir)


@pytest.mark.slow
def test_resume_falls_back_past_each_kind_of_damaged_step(
    tmp_path, mnist_data_dir, tiny_config, reference_run, caplog):
  """Steps 5, 6 and 7 (real checkpoints of the reference run, each damaged
  one way) are newer than the intact step 4: each in turn is the newest,
  is reported and moved aside, and the run resumes from step 4 to the very
  parameters of the undamaged run."""
  caplog.set_level(logging.INFO, logger='absl')  # 'Resumed from' is INFO
  config = tiny_config(mnist_data_dir)
  reference = os.path.join(reference_run, 'checkpoints')
  ckpts = tmp_path / 'run' / 'checkpoints'
  shutil.copytree(os.path.join(reference, '4'), ckpts / '4')
  kinds = {5: 'truncated array files', 6: 'truncated metadata',
           7: 'empty step folder'}
  for step, kind in kinds.items():
    shutil.copytree(os.path.join(reference, '8'), ckpts / str(step))
    _damage(str(ckpts / str(step)), kind)
  trainer.train_and_evaluate(config, str(tmp_path / 'run'),
                             devices=jax.devices()[:2])

  warnings = [r.getMessage() for r in caplog.records
              if 'cannot be restored' in r.getMessage()]
  assert len(warnings) == 3, warnings
  reasons = {7: 'the step folder is empty', 6: '_METADATA is truncated or '
             'garbled', 5: 'Error reading'}
  for message, (step, reason) in zip(warnings, reasons.items()):
    assert f'Checkpoint step {step} in {ckpts}' in message, message
    assert reason in message, message
    assert f'Moved it to {ckpts}_damaged/{step}' in message, message
    assert os.path.isdir(f'{ckpts}_damaged/{step}')  # moved, not deleted
  assert 'Resumed from' in caplog.text and f'{ckpts}/4' in caplog.text
  _assert_trees(_params(reference_run, config),
                _params(str(tmp_path / 'run'), config), atol=0)


def _flip_array_bytes(step_dir, count=20):
  """Inverts `count` bytes in the middle of the step's largest array data
  file (zstd-compressed chunks: Orbax restores them as other numbers)."""
  files = glob.glob(os.path.join(step_dir, 'default', '**', 'd', '*'),
                    recursive=True)
  path = max(files, key=os.path.getsize)
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    data = f.read(count)
    f.seek(os.path.getsize(path) // 2)
    f.write(bytes(b ^ 0xFF for b in data))


def test_flipped_array_bytes_are_caught_and_resume_falls_back(tmp_path):
  """Orbax restores a step with flipped bytes in its array data without
  complaint; the digests recorded at save time catch it, and resuming moves
  the step aside and takes the previous one."""
  rng = np.random.default_rng(0)
  tree = {'params': {'w': rng.standard_normal(50000).astype(np.float32),
                     'b': np.ones(7, np.float32)}}
  directory = str(tmp_path / 'checkpoints')
  with checkpoint.Checkpointer(directory, keep=5) as ckpt:
    ckpt.save(1, tree)
    ckpt.save(2, tree)
  record = os.path.join(directory, '2', checkpoint.CHECKSUMS)
  assert os.path.exists(record)
  _flip_array_bytes(os.path.join(directory, '2'))
  # What Orbax alone does with it: no error, other numbers.
  unchecked = str(tmp_path / 'unchecked')
  shutil.copytree(directory, unchecked)
  os.remove(os.path.join(unchecked, '2', checkpoint.CHECKSUMS))
  with checkpoint.Checkpointer(unchecked, read_only=True) as reader:
    silent = reader.restore(2)
  assert not np.array_equal(silent['params']['w'], tree['params']['w'])

  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=(
          jax.sharding.SingleDeviceSharding(jax.devices()[0]))), tree)
  messages = []
  with checkpoint.Checkpointer(directory, keep=5) as ckpt:
    step, restored = ckpt.restore_latest_intact(abstract, warn=messages.append)
  assert step == 1
  np.testing.assert_array_equal(restored['params']['w'], tree['params']['w'])
  assert len(messages) == 1, messages
  assert (f'Checkpoint step 2 in {directory} cannot be restored: 1 array(s) '
          f'differ from the SHA-256 recorded at save time in {record}: '
          'params/w') in messages[0]
  assert f'Moved it to {directory}_damaged/2' in messages[0]


def test_resume_fails_once_and_clearly_when_no_step_is_intact(
    tmp_path, mnist_data_dir, tiny_config, reference_run):
  config = tiny_config(mnist_data_dir)
  ckpts = tmp_path / 'run' / 'checkpoints'
  shutil.copytree(os.path.join(reference_run, 'checkpoints', '8'),
                  ckpts / '8')
  _damage(str(ckpts / '8'), 'truncated metadata')
  with pytest.raises(checkpoint.NoIntactCheckpointError,
                     match=rf'(?s)No intact checkpoint in {ckpts}.*step 8: .*'
                     rf'_METADATA.*now in {ckpts}_damaged/8.*trains from '
                     'step 0'):
    trainer.train_and_evaluate(config, str(tmp_path / 'run'),
                               devices=jax.devices()[:1])


def test_resume_with_another_model_config_names_each_entry(
    tmp_path, mnist_data_dir, tiny_config, reference_run):
  config = tiny_config(mnist_data_dir)
  config.model.encoder.z_index_dim = 4  # the run has 8 latents
  workdir = tmp_path / 'run'
  shutil.copytree(os.path.join(reference_run, 'checkpoints'),
                  workdir / 'checkpoints')
  with pytest.raises(checkpoint.ConfigMismatchError) as info:
    trainer.train_and_evaluate(config, str(workdir),
                               devices=jax.devices()[:1])
  message = str(info.value)
  assert ('params/perceiver_encoder/~/trainable_position_encoding/pos_embs  '
          'stored (8, 16), requested (4, 16)') in message
  assert f'The workdir {workdir} belongs to that run' in message
  assert 'give a new --workdir' in message
  assert f'--config.init_from.path={workdir}/checkpoints' in message
  assert info.value.mismatched  # the optimiser's copies are counted too
  # The intact checkpoints stay where they are.
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['4', '8']
  assert not os.path.exists(f'{workdir}/checkpoints_damaged')


def test_non_finite_warm_start_weights_name_the_file_and_entry(tmp_path):
  from perceiver import checkpoint_io  # pylint: disable=g-import-not-at-top
  weights = {'m': {'w': np.ones((2, 2), np.float32)},
             'n': {'w': np.array([1.0, np.inf], np.float32)}}
  pickle_path = str(tmp_path / 'diverged.pickle')
  checkpoint_io.save_params(pickle_path, weights)
  with checkpoint.Checkpointer(str(tmp_path / 'ckpts'),
                               async_checkpointing=False) as ours:
    ours.save(3, {'params': weights, 'state': {}})
  for path, source in ((pickle_path, pickle_path),
                       (str(tmp_path / 'ckpts'), f'{tmp_path}/ckpts/3')):
    with pytest.raises(checkpoint_io.NonFiniteCheckpointError,
                       match=rf'config\.init_from\.path: {source}: params '
                       r'entry n/w holds 1 NaN/Inf values of 2'):
      checkpoint.warm_start(weights, {}, path)


def test_step_best_without_a_metric_says_which_steps_exist(reference_run):
  with checkpoint.Checkpointer(os.path.join(reference_run, 'checkpoints'),
                               read_only=True) as ckpt:
    with pytest.raises(FileNotFoundError,
                       match=r"--step=best: no checkpoint .* carries the "
                       r"metric 'eval/accuracy' \(steps \[4, 8\] exist.*"
                       r'Use --step=latest or a step number \(8\)'):
      checkpoint.resolve_step(ckpt, 'best')
    with pytest.raises(FileNotFoundError, match=r'--step=5: no such '
                       r'checkpoint .*available steps: \[4, 8\]'):
      checkpoint.resolve_step(ckpt, '5')
    with pytest.raises(ValueError, match="--step='last': give 'latest', "
                       "'best' or a step number"):
      checkpoint.resolve_step(ckpt, 'last')
