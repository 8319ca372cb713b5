"""The flow levers (recipes.LEVERS, each a DEVIATION, off by default):
off they change nothing; on they change only what they name; each trains."""
import jax
import numpy as np
import pytest

from perceiver import io_processors
from perceiver.tasks.flow import recipes
from perceiver.tasks.flow import task
from tests.training_fixtures import load_experiment


def _init(config):
  model = task.make_model(config)
  batch = task.example_batch(config, 1)
  params, _ = jax.jit(lambda b: model.init(
      jax.random.PRNGKey(0), b, is_training=True))(batch)
  return params


def _leaves(params):
  return {f'{m}/{n}': np.asarray(v)
          for m, d in params.items() for n, v in d.items()}


def test_levers_are_off_by_default():
  for variant in ('smoke', 'cpu', ''):
    c = load_experiment('optical_flow', variant)
    assert not c.model.decoder.use_query_residual
    assert c.model.decoder.output_w_init == 'zeros'
    assert 'conv_stem' not in c.model
    assert c.input.motion_warmup == 0.0
    assert task.motion_at(c, 1) == 1.0


@pytest.mark.slow
def test_each_lever_changes_only_what_it_names():
  """Same seed: qres and motion leave the parameters as they are; head_init
  changes only the output Linear's weights; stem adds its convolutions and
  widens only the layers that read the inputs (the cross-attentions, and the
  decoder's output Linear, which reads its query's width)."""
  base = _leaves(_init(load_experiment('optical_flow', 'smoke')))
  for lever in ('qres', 'motion=0.5'):
    got = _leaves(_init(load_experiment('optical_flow', 'smoke,' + lever)))
    assert got.keys() == base.keys()
    for k in base:
      np.testing.assert_array_equal(got[k], base[k], err_msg=f'{lever} {k}')
  got = _leaves(_init(load_experiment('optical_flow', 'smoke,head_init')))
  assert got.keys() == base.keys()
  changed = [k for k in base if not np.array_equal(got[k], base[k])]
  assert changed == ['flow_decoder/~/basic_decoder/output/w'], changed
  assert np.all(base[changed[0]] == 0) and np.std(got[changed[0]]) > 0
  got = _leaves(_init(load_experiment('optical_flow', 'smoke,stem')))
  stem = sorted(k for k in got if k.startswith('flow_conv_stem/'))
  assert len(stem) == 8  # 4 convolutions, w and b
  assert set(got) - set(base) == set(stem) and set(base) <= set(got)
  widened = sorted(k for k in base if got[k].shape != base[k].shape)
  assert 'flow_decoder/~/basic_decoder/output/w' in widened
  assert all('cross_attention' in k or k.endswith('/output/w')
             for k in widened), widened


def test_motion_curriculum_scales_the_scene_ranges(smoke_config):
  c = load_experiment('optical_flow', 'smoke,motion=0.5')
  c.num_train_steps = 100
  assert c.input.motion_warmup == 0.5
  assert task.motion_at(c, 1) == pytest.approx(0.25)  # motion_start
  assert task.motion_at(c, 26) == pytest.approx(0.25 + 0.75 * 0.5)
  assert task.motion_at(c, 51) == pytest.approx(1.0)
  assert task.motion_at(c, 100) == 1.0
  opts = task.scene_options(c.input, 0.25)
  full = task.scene_options(c.input)
  assert opts.max_translation == pytest.approx(full.max_translation / 4)
  assert opts.max_rotation == pytest.approx(full.max_rotation / 4)
  assert opts.nonrigid_lipschitz == pytest.approx(full.nonrigid_lipschitz / 4)
  assert opts.max_layers == full.max_layers
  # Early pairs move less than late ones (same scene indices).
  early = task.train_iterator(c, data_dir=None, seed=0, start_step=11,
                              process_index=0, process_count=1)
  late = task.train_iterator(c, data_dir=None, seed=0, start_step=60,
                             process_index=0, process_count=1)
  c_off = load_experiment('optical_flow', 'smoke')
  c_off.num_train_steps = 100
  ref = task.train_iterator(c_off, data_dir=None, seed=0, start_step=11,
                            process_index=0, process_count=1)
  size = lambda b: np.mean(np.abs(b['flow']))
  assert size(next(early)) < 0.6 * size(next(ref))
  assert size(next(late)) > 0  # full ranges: rendered as without the lever
  with pytest.raises(ValueError, match='fraction of training'):
    load_experiment('optical_flow', 'smoke,motion=2')
  smoke_config.input.motion_start = 0.0
  with pytest.raises(ValueError, match='motion_start'):
    task.make_model(smoke_config)


def test_conv_stem_sees_31_pixels():
  """Receptive field 1 + 2 * (1 + 2 + 4 + 8) = 31: a change 15 pixels away
  reaches the centre's features, one 16 away does not."""
  import haiku as hk  # pylint: disable=g-import-not-at-top
  stem = hk.without_apply_rng(hk.transform(
      lambda x: io_processors.FlowConvStem()(x)))
  frames = np.random.default_rng(0).normal(size=(1, 2, 41, 41, 3))
  params = stem.init(jax.random.PRNGKey(0), frames)
  centre = lambda f: np.asarray(stem.apply(params, f))[0, 20, 20]
  for offset, reaches in ((15, True), (16, False)):
    moved = frames.copy()
    moved[0, 1, 20, 20 + offset] += 1.0
    assert (not np.allclose(centre(moved), centre(frames))) == reaches
  empty = hk.transform(lambda x: io_processors.FlowConvStem(rates=())(x))
  with pytest.raises(ValueError, match='dilation rates'):
    empty.init(jax.random.PRNGKey(0), frames)


def test_lever_names_are_experiment_variants():
  assert set(recipes.LEVERS) <= set(recipes.VARIANTS)
  with pytest.raises(ValueError, match='did you mean "qres"'):
    load_experiment('optical_flow', 'smoke,qre')


@pytest.mark.slow
def test_all_levers_train_two_steps_and_load_for_inference(tmp_path):
  """The smoke run with every lever on trains through the trainer, and
  launch/flow.py's loader reads its checkpoint into the same model."""
  from perceiver.tasks.flow import inference  # pylint: disable=g-import-not-at-top
  from perceiver.train import trainer  # pylint: disable=g-import-not-at-top
  config = load_experiment('optical_flow',
                           'smoke,qres,head_init,stem,motion=0.5')
  config.update_from_flattened_dict({'num_train_steps': 2, 'eval_every': 0,
                                     'input.num_eval_examples': 8})
  metrics = trainer.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(metrics['eval/epe']) and metrics['eval/epe'] > 0
  apply_fn = inference.load(config, str(tmp_path))
  flow = apply_fn(np.zeros((1, 2, 12, 16, 3), np.float32))
  assert flow.shape == (1, 12, 16, 2) and np.all(np.isfinite(flow))
