"""Both entity encoders train end to end: the `smoke` variant of
experiments/entities.py through perceiver.train.trainer.train_and_evaluate
(Perceiver IO) and through launch/train.py as a user runs it (the
Transformer), on generated battle sets."""
import json
import os
import subprocess
import sys

import pytest

from perceiver.train import config_lib
from perceiver.train import trainer
from tests import training_fixtures
from tests.training_fixtures import load_experiment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
EXPECTED = {'eval/pointer_accuracy', 'eval/pointer_accuracy_in_range',
            'eval/pointer_accuracy_nearest', 'eval/win_accuracy',
            'eval/pointer_loss', 'eval/win_loss', 'eval/loss'}


def test_full_configs_are_valid():
  for arg in ('', 'encoder=transformer', 'latents=64', 'steps=10,batch=4'):
    config = load_experiment('entities', arg)
    config_lib.validate(config)
    assert config.input.max_entities == 512
  with pytest.raises(ValueError, match='latents'):
    load_experiment('entities', 'latents=48')
  with pytest.raises(ValueError, match='encoder'):
    load_experiment('entities', 'encoder=lstm')


@pytest.mark.slow
def test_perceiver_smoke_trains_through_the_trainer(tmp_path):
  config = load_experiment('entities', 'smoke')
  assert config.model.encoder == 'perceiver'
  result = trainer.train_and_evaluate(config, str(tmp_path))
  assert EXPECTED <= set(result)
  assert result['eval/num_examples'] == config.input.num_eval_examples
  assert 0.0 <= result['eval/pointer_accuracy'] <= 1.0


@pytest.mark.slow
def test_transformer_smoke_trains_through_launch_train(tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  env['XLA_FLAGS'] = training_fixtures.subprocess_xla_flags()  # one device
  out = subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch', 'train.py'),
       '--config=' + os.path.join(REPO, 'experiments',
                                  'entities.py:smoke,encoder=transformer'),
       f'--workdir={tmp_path}'],
      env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  with open(os.path.join(tmp_path, 'metrics.json')) as f:
    metrics = json.load(f)
  assert EXPECTED <= set(metrics)
  assert metrics['eval/num_examples'] == 4
