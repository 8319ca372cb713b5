"""The flow task's functions, standalone: curriculum, resumable iterators,
eval padding, loss and config checks."""
import jax
import numpy as np
import pytest

from perceiver.tasks.flow import task
from tests.flow import streams
from tests.training_fixtures import load_experiment


def test_curriculum_phases(smoke_config):
  c = smoke_config
  c.num_train_steps = 100
  assert task.phase_at(c, 1) == (0, 0.0, True)  # no augmentation, both ways
  assert task.phase_at(c, 10) == (0, 0.0, True)
  assert task.phase_at(c, 11) == (1, pytest.approx(1 / 3), False)
  assert task.phase_at(c, 41)[:2] == (2, pytest.approx(2 / 3))
  assert task.phase_at(c, 100) == (3, 1.0, False)


def test_train_stream_resumes_exactly_and_splits_over_processes(smoke_config):
  c = smoke_config
  c.num_train_steps = 4
  whole = streams.check_resume_and_process_split(c, None)
  assert whole[0]['images'].shape == (8, 2, 12, 16, 3)
  # Step 1 is in the reversed first phase: pairs 2i, 2i + 1 mirror.
  np.testing.assert_array_equal(whole[0]['images'][1],
                                whole[0]['images'][0][::-1])
  assert not np.array_equal(whole[0]['images'], whole[1]['images'])


def test_eval_split_is_padded_and_masked(smoke_config):
  c = smoke_config
  c.input.num_eval_examples = 5
  c.input.eval_batch_size = 4
  batches, n = task.eval_iterator(c, 'heldout', data_dir=None,
                                  process_index=0, process_count=1)
  batches = list(batches)
  assert n == 2 and len(batches) == 2
  np.testing.assert_array_equal(batches[1]['mask'], [1, 0, 0, 0])
  assert batches[1]['images'].shape == (4, 2, 12, 16, 3)
  again, _ = task.eval_iterator(c, 'heldout', data_dir=None, process_index=0,
                                process_count=1)
  np.testing.assert_array_equal(next(iter(again))['flow'], batches[0]['flow'])
  train = next(task.train_iterator(c, data_dir=None, seed=c.input.eval_seed,
                                   start_step=0, process_index=0,
                                   process_count=1))
  assert not np.array_equal(train['flow'][0], batches[0]['flow'][0])
  with pytest.raises(ValueError, match='launch/flow.py'):
    task.eval_iterator(c, 'test', data_dir=None, process_index=0,
                       process_count=1)


def test_loss_and_eval_sums(smoke_config):
  c = smoke_config
  gt = np.zeros((1, 2, 2, 2), np.float32)
  pred = np.array([[[[3, 4], [1, 0]], [[0, 0], [0, -2]]]], np.float32)
  batch = {'flow': gt, 'valid': np.array([[[1, 1], [1, 0]]], np.float32),
           'mask': np.ones(1, np.float32)}
  loss, m = task.loss_and_metrics(pred, batch, c)
  np.testing.assert_allclose(loss, (7 + 1 + 0 + 2) / 4)  # L1, all pixels
  np.testing.assert_allclose(m['epe'], (5 + 1 + 0) / 3)  # valid only
  np.testing.assert_allclose(m['zero_loss'], 0)  # zero flow is exact here
  swapped = dict(batch, flow=pred)  # now zero flow errs by |pred|
  np.testing.assert_allclose(task.loss_and_metrics(gt, swapped, c)[1][
      'zero_loss'], loss)
  c.task.supervise_occluded = False
  np.testing.assert_allclose(task.loss_and_metrics(pred, batch, c)[0], 8 / 3)
  c.task.loss = 'epe'
  np.testing.assert_allclose(task.loss_and_metrics(pred, batch, c)[0], 6 / 3)
  sums = jax.device_get(task.eval_sums(pred, batch, c))
  result = task.finalize_eval(sums, c)
  np.testing.assert_allclose(result['epe'], 2.0)
  assert result['out3px'] == pytest.approx(1 / 3)
  assert result['num_examples'] == 1


def test_config_errors_name_the_fix(smoke_config):
  c = smoke_config
  c.input.image_size = (16, 16)
  with pytest.raises(ValueError, match='output_image_shape'):
    task.make_model(c)
  c.input.image_size = (12, 16)
  c.input.phase_ends = (0.1, 0.5, 0.9, 0.95)
  with pytest.raises(ValueError, match='increase to 1.0'):
    task.make_model(c)
  c.input.phase_ends = (0.5, 1.0)
  with pytest.raises(ValueError, match='same length'):
    task.make_model(c)
  c.input.phase_severities = (0.0, 1.0)
  c.task.loss = 'l2'
  with pytest.raises(ValueError, match="'l1', 'epe'"):
    task.make_model(c)


@pytest.mark.slow
def test_model_outputs_flow_in_pixels(smoke_config):
  model = task.make_model(smoke_config)
  batch = task.example_batch(smoke_config, 2)
  params, state = jax.jit(lambda b: model.init(
      jax.random.PRNGKey(0), b, is_training=True))(batch)
  flow, _ = jax.jit(lambda p, s, b: model.apply(
      p, s, None, b, is_training=False))(params, state, batch)
  assert flow.shape == (2, 12, 16, 2)
  # The release zero-initialises the output Linear: flow starts at 0.
  np.testing.assert_array_equal(flow, 0)


def test_paper_experiment_is_the_released_architecture():
  """experiments/optical_flow.py builds the release's 41,057,134-parameter
  tree (perceiver/release_specs/full_optical_flow.json), scanned."""
  from perceiver import perceiver as perceiver_lib  # pylint: disable=g-import-not-at-top
  from tests import golden  # pylint: disable=g-import-not-at-top
  config = load_experiment('optical_flow')
  assert config.input.image_size == (368, 496)
  assert config.input.global_batch_size == 512
  assert config.num_train_steps == 375_000  # 480 epochs of 400k pairs
  assert config.schedule.base_lr == 4e-4 and config.optimizer.name == 'lamb'
  model = task.make_model(config)
  batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                       task.example_batch(config, 1))
  params, _ = jax.eval_shape(
      lambda b: model.init(jax.random.PRNGKey(0), b, is_training=True),
      batch)
  release = perceiver_lib.to_release_layout(
      jax.tree.map(lambda s: np.zeros(s.shape, np.int8), params))
  spec = golden.load_json('full_optical_flow')
  assert golden.manifest(release) == spec['param_manifest']
  assert sum(x.size for x in jax.tree.leaves(release)) == spec['total_params']


def test_cli_model_loads_a_release_file_and_matches_the_release(
    smoke_config, tmp_path):
  """The smoke model is the golden tiny flow model: its release-format
  params, written as a .pystate, load into launch/flow.py's model and give
  the release's outputs (tests/golden_data/optical_flow_tiny.npz)."""
  from perceiver import checkpoint_io  # pylint: disable=g-import-not-at-top
  from perceiver.tasks.flow import inference  # pylint: disable=g-import-not-at-top
  from tests import golden  # pylint: disable=g-import-not-at-top
  params, state, inputs, outputs = golden.load_npz('optical_flow_tiny')
  path = str(tmp_path / 'optical_flow_checkpoint.pystate')
  checkpoint_io.save_params(path, params, state or None)
  apply_fn = inference.load(smoke_config, path)
  np.testing.assert_allclose(apply_fn(inputs['images']), outputs['out'],
                             rtol=1e-4, atol=1e-5)
  with pytest.raises(checkpoint_io.CheckpointMismatchError):
    inference.load(load_experiment('optical_flow', 'cpu'), path)


# Fitting 4 fixed pairs: Adam steps, and the required final loss as a
# fraction of zero flow's (about 0.3 is reached in 60 steps).
FIT_STEPS, FIT_RATIO = 60, 0.5


@pytest.mark.slow
def test_smoke_model_fits_a_fixed_batch_of_pairs(smoke_config):
  """The model, loss and output scale can learn: the release's zero-init,
  x 20 / 100 head gets gradients, and 4 fixed generated pairs are fitted
  well below zero flow's loss (benchmarks/repro/FLOW.md)."""
  import optax  # pylint: disable=g-import-not-at-top
  from perceiver.tasks.flow import autoflow  # pylint: disable=g-import-not-at-top
  c = smoke_config
  model = task.make_model(c)
  # Random-noise textures: cheaper to load than the photos.
  textures = tuple(np.random.default_rng(k).random((64, 64, 3), np.float32)
                   for k in range(3))
  batch = autoflow.make_batch(
      textures, range(4), size=tuple(c.input.image_size), seed=0,
      stream=task.TRAIN_STREAM, options=task.scene_options(c.input))
  params, state = jax.jit(lambda b: model.init(
      jax.random.PRNGKey(0), b, is_training=True))(batch)
  optimizer = optax.adam(3e-3)

  def loss_fn(params):
    flow, _ = model.apply(params, state, None, batch, is_training=True)
    return task.loss_and_metrics(flow, batch, c)[0]

  @jax.jit
  def step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  zero = float(task.loss_and_metrics(np.zeros_like(batch['flow']), batch, c)[0])
  opt_state, losses = optimizer.init(params), []
  for _ in range(FIT_STEPS):
    params, opt_state, loss = step(params, opt_state)
    losses.append(float(loss))  # blocks every step
  assert losses[0] == pytest.approx(zero, rel=1e-6)  # starts at zero flow
  assert losses[-1] < FIT_RATIO * zero, (zero, losses[::10])
