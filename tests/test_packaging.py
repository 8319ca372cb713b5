"""The package installs whole: a wheel built from the tree holds every module
and data file of `perceiver/`, and works without the checkout.

The wheel is built from a copy of the files a clone has (tracked and
not-ignored files), installed into a folder of its own, and used by a
subprocess that runs outside the checkout with only that folder on its path:
it imports every module, builds a released architecture from the wheel's own
`release_specs` and loads an experiment config through the wheel's recipes.
"""
import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def _clone_files() -> list[str]:
  out = subprocess.run(
      ['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
      cwd=REPO, capture_output=True, text=True, check=True).stdout
  return [f for f in out.splitlines() if os.path.isfile(os.path.join(REPO, f))]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
  """(path of the built wheel, the package files a clone has)."""
  root = tmp_path_factory.mktemp('wheel')
  src = root / 'src'
  files = _clone_files()
  for name in files:
    target = src / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.join(REPO, name), target)
  subprocess.run(
      [sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
       '--no-build-isolation', '-w', str(root / 'dist'), str(src)],
      check=True, capture_output=True, text=True)
  (path,) = list((root / 'dist').glob('perceiver_io-*.whl'))
  package_files = [f for f in files if f.startswith('perceiver/')
                   and '__pycache__' not in f]
  return str(path), package_files


def test_wheel_holds_every_module_and_data_file(wheel):
  path, package_files = wheel
  with zipfile.ZipFile(path) as z:
    held = set(z.namelist())
  assert any(f.endswith('.json') for f in package_files)  # specs are there
  missing = sorted(set(package_files) - held)
  assert not missing, f'the wheel leaves out: {missing}'


_USE_THE_WHEEL = r'''
import importlib, importlib.util, json, os, pkgutil, sys
import jax
import perceiver
site = sys.argv[1]
assert perceiver.__file__.startswith(site), perceiver.__file__
names = [m.name for m in pkgutil.walk_packages(perceiver.__path__, 'perceiver.')]
for name in names:
  importlib.import_module(name)
from importlib import resources
from perceiver import builders, model_card
spec_file = resources.files('perceiver') / 'release_specs' / 'full_optical_flow.json'
assert str(spec_file).startswith(site), spec_file
spec = json.loads(spec_file.read_text())
params, state = model_card.init_shapes(builders.build(spec),
                                       builders.example_inputs(spec))
count = sum(x.size for x in jax.tree.leaves(params))
from perceiver.train import config_lib
config = config_lib.load_experiment(sys.argv[2], 'smoke')
print(json.dumps({'modules': names, 'params': count,
                  'spec_total': spec['total_params'],
                  'task': config.task.module}))
'''


def test_installed_wheel_works_without_the_checkout(wheel, tmp_path):
  path, package_files = wheel
  site = tmp_path / 'site'
  subprocess.run(
      [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
       '--no-index', '--target', str(site), path],
      check=True, capture_output=True, text=True)
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  env['PYTHONPATH'] = str(site)
  run = subprocess.run(
      [sys.executable, '-c', _USE_THE_WHEEL, str(site),
       os.path.join(REPO, 'experiments', 'optical_flow.py')],
      cwd=str(tmp_path), env=env, capture_output=True, text=True,
      check=False)
  assert run.returncode == 0, run.stderr[-4000:]
  result = json.loads(run.stdout.strip().splitlines()[-1])
  expected = sorted(
      f[:-len('.py')].replace('/', '.').removesuffix('.__init__')
      for f in package_files if f.endswith('.py'))
  assert sorted(['perceiver'] + result['modules']) == expected
  assert result['params'] == result['spec_total'] == 41_057_134
  assert result['task'] == 'perceiver.tasks.flow.task'


def _canonical(name: str) -> str:
  return re.sub(r'[-_.]+', '-', name).lower()


def test_wheel_requires_every_distribution_the_package_imports(wheel):
  """install_requires (and the hf extra) name every third-party
  distribution that perceiver/ imports, so `pip install` brings them."""
  path, package_files = wheel
  with zipfile.ZipFile(path) as z:
    (meta,) = [n for n in z.namelist() if n.endswith('.dist-info/METADATA')]
    lines = z.read(meta).decode().splitlines()
  required, extra = set(), set()
  for line in lines:
    if line.startswith('Requires-Dist:'):
      spec = line.split(':', 1)[1].strip()
      name = _canonical(re.match(r'[A-Za-z0-9_.-]+', spec).group(0))
      (extra if 'extra ==' in spec else required).add(name)
  imported = set()
  for name in package_files:
    if not name.endswith('.py'):
      continue
    with open(os.path.join(REPO, name), encoding='utf-8') as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        imported.update(a.name.split('.')[0] for a in node.names)
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        imported.add(node.module.split('.')[0])
  distributions = importlib.metadata.packages_distributions()
  needed = {}
  for module in sorted(imported - set(sys.stdlib_module_names)):
    if module == 'perceiver':
      continue
    assert module in distributions, f'{module}: installed by no distribution'
    needed[module] = {_canonical(d) for d in distributions[module]}
  hf_only = {'torch', 'transformers', 'safetensors'}
  missing = []
  for module, names in needed.items():
    if module == 'tensorflow':  # the user's choice of build (setup.py)
      continue
    where = extra if module in hf_only else required
    if not names & where:
      missing.append(f'{module} ({sorted(names)})')
  assert not missing, f'not required by the wheel: {missing}'
