"""The fast path trains the release's model: scanned layers, chunked
attention, remat and the fast kernels change how the step is computed, not
what.

One step from the same release-layout pickle on the fast path equals one
step on the release-exact path (config_lib.release_exact) to float
tolerance; the fast run's export (the release's per-layer layout) gives the
release-exact model the fast model's outputs. Real MNIST, the trainer, Orbax
checkpoints and the release pickle format throughout.
"""
import glob
import os
import pickle

import jax
import numpy as np
import pytest

from perceiver import checkpoint_io
from perceiver import perceiver as perceiver_lib
from perceiver.train import config_lib
from perceiver.train import trainer
from tests.training_fixtures import REPO, load_experiment

EXPERIMENTS = sorted(os.path.basename(p)[:-3] for p in glob.glob(
    os.path.join(REPO, 'experiments', '*.py')))


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_every_experiment_trains_on_the_fast_path(name):
  for arg in ('', 'smoke'):
    config = load_experiment(name, arg)
    assert config.scan_layers and config.fast_kernels, (name, arg)
    exact = config_lib.release_exact(config)
    assert not (exact.scan_layers or exact.remat or exact.fast_kernels)
    assert exact.compute_dtype == 'float32'
    assert not any(k in str(exact.model.to_dict())
                   for k in config_lib.CHUNK_KEYS)


@pytest.mark.slow
def test_lamb_takes_its_trust_ratio_per_scanned_layer():
  """LAMB's ||param|| / ||update|| is per leaf; a scanned stack's leaves
  hold every layer, so the project's LAMB takes it per layer: the update of
  a stacked tree is the stacked update of the release's per-layer tree, and
  on an unscanned tree it is optax.lamb's, bit for bit."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from perceiver.train import optim  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  enc = 'perceiver_encoder/~/self_attention'
  # Layers of very different sizes: one shared ratio would be far off.
  per_layer = {f'{enc}{s}/attention/linear': {
      'w': jnp.asarray(rng.normal(size=(4, 4)) * scale, jnp.float32),
      'b': jnp.zeros((4,), jnp.float32)}
               for s, scale in (('', 1.0), ('_1', 30.0))}
  per_layer['classifier/linear'] = {
      'w': jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}
  grads = jax.tree.map(
      lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), per_layer)
  cfg = config_lib.base_config().optimizer
  cfg.name, cfg.weight_decay, cfg.clip_global_norm = 'lamb', 0.1, 0.0
  tx = optim.make_optimizer(cfg, optax.constant_schedule(1e-2))

  def update(params, g):
    return tx.update(g, tx.init(params), params)[0]

  want = update(per_layer, grads)
  stacked = perceiver_lib.from_release_layout
  assert perceiver_lib.is_scanned(stacked(per_layer))
  got = perceiver_lib.to_release_layout(update(stacked(per_layer),
                                               stacked(grads)))
  for module in want:
    for name in want[module]:
      np.testing.assert_allclose(got[module][name], want[module][name],
                                 rtol=1e-6, atol=1e-9, err_msg=module)
  reference = optax.lamb(1e-2, eps=cfg.eps, weight_decay=0.1,
                         mask=lambda p: optim.decay_mask(
                             p, decay_pos_embeddings=True))
  ref = reference.update(grads, reference.init(per_layer), per_layer)[0]
  jax.tree.map(np.testing.assert_array_equal, want, ref)


def _fast(config):
  """Every switch of the fast path, sized to bite on the tiny model: 49
  inputs in 4 kv chunks, 2 scanned layers rematerialised, the fast
  kernels (perceiver.kernels)."""
  config.scan_layers = True
  config.remat = True
  config.fast_kernels = True
  config.model.encoder.kv_chunk_size = 16
  return config


@pytest.fixture(scope='module')
def one_step_each_way(tmp_path_factory, mnist_data_dir):
  """(exact config, fast config, exact workdir, fast workdir, batch,
  release-layout init): one optimiser step each, from the same pickle."""
  from tests.training_fixtures import _tiny_config  # pylint: disable=g-import-not-at-top
  from perceiver.tasks.image import task as image_task  # pylint: disable=g-import-not-at-top
  tmp = tmp_path_factory.mktemp('fast_path')
  base = _tiny_config(mnist_data_dir, num_train_steps=1,
                      **{'optimizer.grad_accum_steps': 1,
                         'schedule.warmup_steps': 0})
  base.model.encoder.num_self_attends_per_block = 2
  exact = config_lib.release_exact(base)
  fast = _fast(config_lib.release_exact(base))
  batch = {'images': np.random.default_rng(0).normal(
      size=(4, 28, 28, 1)).astype(np.float32)}
  init, _ = image_task.make_model(exact).init(jax.random.PRNGKey(7), batch,
                                              is_training=True)
  path = str(tmp / 'init.pickle')
  checkpoint_io.save_params(path, init)
  workdirs = []
  for name, config in (('exact', exact), ('fast', fast)):
    config.init_from.path = path
    workdirs.append(str(tmp / name))
    trainer.train_and_evaluate(config, workdirs[-1],
                               devices=jax.devices()[:1])
  return exact, fast, workdirs[0], workdirs[1], batch, init


def _restore(workdir, config):
  ts, _ = trainer.restore_state(config, workdir, devices=jax.devices()[:1])
  return jax.device_get(ts)


@pytest.mark.slow
def test_one_fast_step_equals_one_release_exact_step(one_step_each_way):
  exact, fast, exact_dir, fast_dir, _, init = one_step_each_way
  want = _restore(exact_dir, exact).params
  got = _restore(fast_dir, fast).params
  assert perceiver_lib.is_scanned(got) and not perceiver_lib.is_scanned(want)
  got = perceiver_lib.to_release_layout(got)
  assert set(got) == set(want)
  moved = 0.0
  for module in want:
    for name in want[module]:
      np.testing.assert_allclose(got[module][name], want[module][name],
                                 rtol=1e-5, atol=1e-6, err_msg=module)
      moved = max(moved, float(np.abs(want[module][name] -
                                      init[module][name]).max()))
  assert moved > 1e-4  # the step changed the parameters


def test_fast_run_exports_a_checkpoint_the_release_exact_model_runs(
    one_step_each_way, tmp_path):
  from perceiver.tasks.image import task as image_task  # pylint: disable=g-import-not-at-top
  exact, fast, _, fast_dir, batch, init = one_step_each_way
  exported = trainer.export(fast, fast_dir, str(tmp_path / 'fast.pickle'))
  with open(exported, 'rb') as f:
    release = pickle.load(f)  # the release's format: a pickle of dicts
  # The release's per-layer layout, module for module and shape for shape.
  assert {m: {k: np.shape(v) for k, v in leaves.items()}
          for m, leaves in release.items()} == {
              m: {k: np.shape(v) for k, v in leaves.items()}
              for m, leaves in init.items()}
  assert any(m.endswith('/self_attention_1/attention/linear')
             for m in release)
  ts = _restore(fast_dir, fast)
  want, _ = image_task.make_model(fast).apply(ts.params, ts.state, None,
                                              batch, is_training=False)
  got, _ = image_task.make_model(exact).apply(release, {}, None, batch,
                                              is_training=False)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert np.abs(got).max() > 1e-3  # not a vacuous all-zero comparison
