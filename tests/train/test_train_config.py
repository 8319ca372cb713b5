"""Config validation, the launch flags' lock, schedules and decay masks."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceiver.train import config_lib
from perceiver.train import optim
from perceiver.tasks.image import task as image_task

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_unknown_keys_are_rejected_with_a_hint(experiment):
  config = experiment('mnist')
  with config.unlocked():
    config.optimizer.weight_decy = 0.1
  with pytest.raises(ValueError, match=r'optimizer\.weight_decy.*Did you mean '
                     r'"config\.optimizer\.weight_decay"'):
    config_lib.validate(config)


EXPERIMENTS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, 'experiments'))
                     if f.endswith('.py'))


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_unknown_variant_is_rejected_and_the_valid_ones_listed(name,
                                                               experiment):
  """One shared parser (config_lib.parse_variants) in every experiment: a
  typo never trains silently with the default."""
  with pytest.raises(ValueError, match=r'unknown variant.*smokey.*Valid '
                     r'variants: .*smoke'):
    experiment(name, 'smokey')


def test_misspelt_batch_variant_is_rejected(experiment):
  # It used to train silently at the default batch 1024.
  with pytest.raises(ValueError, match='"bach": did you mean "batch"'):
    experiment('imagenet_fourier', 'bach=512')
  assert experiment('imagenet_fourier', 'batch=512').input.global_batch_size \
      == 512


def test_variant_given_twice_is_rejected():
  with pytest.raises(ValueError, match='given twice'):
    config_lib.parse_variants('steps=1,steps=2', {'steps'}, 'x.py')


@pytest.mark.slow
def test_launch_flags_lock_the_config(tmp_path):
  """launch/train.py uses lock_config=True: a misspelt override fails before
  anything runs (a real subprocess: absl parses the flags)."""
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  out = subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch', 'train.py'),
       '--config=' + os.path.join(REPO, 'experiments', 'mnist.py:smoke'),
       f'--workdir={tmp_path}', '--config.optimizer.weight_decy=0.1'],
      env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
  assert 'weight_decy' in out.stderr
  assert not os.path.exists(os.path.join(tmp_path, 'checkpoints'))


def test_flat_cosine_schedule_is_the_papers(experiment):
  c = experiment('imagenet_fourier')
  schedule = optim.make_schedule(c.schedule, c.num_train_steps)
  flat = c.schedule.flat_steps
  assert float(schedule(0)) == pytest.approx(2e-3)  # no warmup
  assert float(schedule(flat - 1)) == pytest.approx(2e-3)
  half = flat + c.schedule.decay_steps // 2
  assert float(schedule(half)) == pytest.approx(1e-3, rel=1e-3)
  assert float(schedule(c.num_train_steps)) == pytest.approx(0.0, abs=1e-9)


def test_warmup_cosine_and_step_schedules():
  c = config_lib.base_config().schedule
  c.name, c.base_lr, c.warmup_steps = 'warmup_cosine', 1.0, 10
  s = optim.make_schedule(c, 110)
  assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.5)
  assert float(s(10)) == pytest.approx(1.0)
  assert float(s(60)) == pytest.approx(0.5, rel=1e-3)
  c.name, c.warmup_steps, c.boundaries = 'step', 0, (30, 60)
  s = optim.make_schedule(c, 100)
  assert [float(s(t)) for t in (0, 29, 30, 60)] == pytest.approx(
      [1.0, 1.0, 0.1, 0.01])


def test_weight_decay_mask_skips_biases_norms_and_optionally_positions(
    experiment):
  config = experiment('imagenet_conv', 'smoke')
  model = image_task.make_model(config)
  params, _ = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0),
                         {'images': jnp.zeros((1, 32, 32, 3))},
                         is_training=True))
  for decay_pos in (True, False):
    mask = optim.decay_mask(params, decay_pos_embeddings=decay_pos)
    for module, leaves in mask.items():
      for name, decayed in leaves.items():
        if name == 'b' or 'norm' in module:
          assert not decayed, (module, name)
        elif name == 'pos_embs':
          assert decayed == decay_pos, (module, name)
        else:
          assert decayed, (module, name)
  names = {n for leaves in params.values() for n in leaves}
  assert {'b', 'w', 'scale', 'offset', 'pos_embs'} <= names


def test_gradient_accumulation_applies_the_mean_every_k_steps():
  c = config_lib.base_config().optimizer
  c.name, c.grad_accum_steps = 'adamw', 2
  schedule = optim.make_schedule(config_lib.base_config().schedule, 10)
  tx = optim.make_optimizer(c, schedule)
  params = {'w': jnp.ones(3)}
  state = tx.init(params)
  g1, g2 = {'w': jnp.array([1., 2., 3.])}, {'w': jnp.array([3., 2., 1.])}
  u1, state = tx.update(g1, state, params)
  np.testing.assert_array_equal(u1['w'], 0.0)  # accumulating
  u2, state = tx.update(g2, state, params)
  c.grad_accum_steps = 1
  plain = optim.make_optimizer(c, schedule)
  u, _ = plain.update({'w': jnp.array([2., 2., 2.])}, plain.init(params),
                      params)
  np.testing.assert_allclose(u2['w'], u['w'], rtol=1e-6)


@pytest.mark.parametrize('key, value, complaint', [
    ('global_batch_size', 0, r'config\.input\.global_batch_size must be a '
     r'positive integer, got 0'),
    ('global_batch_size', -16, r'global_batch_size must be a positive '
     r'integer, got -16'),
    ('global_batch_size', 6, r'global_batch_size=6 does not divide across 4 '
     r'devices; use a multiple of 4 \(e\.g\. 4\)'),
    ('eval_batch_size', 1002, r'eval_batch_size=1002 does not divide across '
     r'4 devices'),
])
def test_batch_sizes_must_be_positive_and_divide_across_devices(
    key, value, complaint, experiment):
  config = experiment('mnist')
  config.input[key] = value
  with pytest.raises(ValueError, match=complaint):
    config_lib.validate(config, num_devices=4)


@pytest.mark.parametrize('name, arg', [
    ('imagenet_fourier', 'batch=0'), ('mlm_bytes', 'accum=0'),
    ('glue', 'bs=-4'), ('sentiment', 'bs=0'), ('mnist', 'steps=x'),
    ('optical_flow', 'accum=0'), ('entities', 'batch=-8'),
    ('multimodal_autoencoding', 'cpu,steps=0'),
    ('multimodal_autoencoding', 'cpu,latents=x')])
def test_numeric_variants_must_be_positive(name, arg, experiment):
  """They used to end in ZeroDivisionError or a negative step count."""
  key, value = arg.split(',')[-1].split('=')
  with pytest.raises(ValueError, match=rf'Variant "{key}={value}": {key} must '
                     rf'be a positive integer \(e\.g\. "{key}=\d+"\)'):
    experiment(name, arg)


def test_load_experiment_reads_a_file_and_names_a_missing_one(tmp_path):
  path = tmp_path / 'tiny_experiment.py'
  path.write_text('def get_config(arg=None):\n'
                  '  import ml_collections\n'
                  '  return ml_collections.ConfigDict({"arg": arg})\n')
  assert config_lib.load_experiment(str(path), 'smoke').arg == 'smoke'
  assert config_lib.load_experiment(str(path)).arg is None
  with pytest.raises(FileNotFoundError, match='nowhere.py'):
    config_lib.load_experiment(str(tmp_path / 'nowhere.py'))
