"""launch/export_hf.py and launch/import_hf.py as a user runs them, on a real
training run, and the README section's PyTorch snippet.

The run: 2 steps of experiments/mlm_bytes.py:smoke on the embedded KJV +
Shakespeare corpus, with the scanned layer stack (Orbax then stores the
self-attention layers stacked) and the decoder that transformers'
PerceiverForMaskedLM hard-wires: 8 heads of 256 qk channels (the smoke
model's 4 x 16 is refused, see test_hf_export.py). MNIST, the cheapest
smoke run, is single-channel and patch-based: no transformers image
classifier can hold it (also tested there).
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from perceiver import checkpoint_io
from perceiver.hf import load
from perceiver.hf import specs
from tests import training_fixtures
from tests.hf.conftest import REPO

EXPERIMENT = os.path.join(REPO, 'experiments', 'mlm_bytes.py:smoke')
OVERRIDES = {'model.decoder.num_heads': 8, 'model.decoder.qk_channels': 256,
             'scan_layers': True, 'input.eval_split': ''}
README_DIR = 'workdirs/mlm_hf'  # the export directory the README names


@pytest.fixture(scope='module')
def mlm_run(tmp_path_factory):
  import jax  # pylint: disable=g-import-not-at-top
  from perceiver.train import trainer  # pylint: disable=g-import-not-at-top
  from tests.training_fixtures import load_experiment  # pylint: disable=g-import-not-at-top
  config = load_experiment('mlm_bytes', 'smoke')
  config.update_from_flattened_dict(OVERRIDES)
  workdir = str(tmp_path_factory.mktemp('mlm_run'))
  trainer.train_and_evaluate(config, workdir, devices=jax.devices()[:1])
  return workdir


def _cli(script, *flags):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  # One device is enough here.
  env['XLA_FLAGS'] = training_fixtures.subprocess_xla_flags()
  out = subprocess.run([sys.executable, os.path.join(REPO, 'launch', script),
                        *flags], env=env, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
  return out.stdout


@pytest.fixture(scope='module')
def exported(mlm_run, tmp_path_factory):
  output = str(tmp_path_factory.mktemp('mlm_export') / 'mlm_hf')
  stdout = _cli('export_hf.py', f'--config={EXPERIMENT}',
                *[f'--config.{k}={v}' for k, v in OVERRIDES.items()],
                f'--workdir={mlm_run}', f'--output={output}')
  return output, stdout


@pytest.mark.slow
def test_cli_exports_a_training_run_and_checks_it(mlm_run, exported):
  output, stdout = exported
  assert 'PerceiverForMaskedLM' in stdout and 'OK' in stdout, stdout
  assert 'logits: max |diff|' in stdout
  # The workdir holds the stacked (scanned) layout; the export per layer.
  raw = specs.read_checkpoint(mlm_run)
  from perceiver.train import checkpoint  # pylint: disable=g-import-not-at-top
  ckpt = checkpoint.Checkpointer(os.path.join(mlm_run, 'checkpoints'),
                                 read_only=True)
  stacked = ckpt.restore(ckpt.latest_step())['params']
  ckpt.close()
  assert any('/self_attends/layer_stack/' in m for m in stacked)
  back = load.load(output)
  assert sorted(back.params) == sorted(raw[0])
  for module, leaves in raw[0].items():
    for name, value in leaves.items():
      np.testing.assert_array_equal(back.params[module][name], value)


def test_cli_imports_it_back_bit_for_bit(mlm_run, exported, tmp_path):
  output, _ = exported
  pystate = str(tmp_path / 'from_hf.pystate')
  _cli('import_hf.py', f'--hf_dir={output}', f'--output={pystate}')
  params, state = checkpoint_io.load_params(pystate)
  want, _ = specs.read_checkpoint(mlm_run)
  assert state == {} and sorted(params) == sorted(want)
  for module, leaves in want.items():
    for name, value in leaves.items():
      assert params[module][name].dtype == value.dtype
      np.testing.assert_array_equal(params[module][name], value)
  assert specs.load_spec(pystate + '.spec.json')['builder'] == 'mlm'


def _readme_snippet():
  """The PyTorch snippet of the README's transformers section."""
  with open(os.path.join(REPO, 'README.md')) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  return [b for b in blocks if 'PerceiverForMaskedLM.from_pretrained' in b]


def test_readme_pytorch_snippet_runs(exported, capsys):
  snippets = _readme_snippet()
  assert len(snippets) == 1, 'the README section has one PyTorch snippet'
  code = snippets[0]
  assert README_DIR in code
  exec(compile(code.replace(README_DIR, exported[0]), 'README', 'exec'), {})  # pylint: disable=exec-used
  assert 'torch.Size([1, 64, 262])' in capsys.readouterr().out
