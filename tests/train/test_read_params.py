"""checkpoint.read_params: every way of naming a checkpoint gives the same
parameters, in the layout asked for (the reader behind warm starts, exports,
the HF export and the flow and reconstruction CLIs)."""
import os

import jax
import numpy as np
import pytest

from perceiver import checkpoint_io
from perceiver import perceiver
from perceiver.train import checkpoint
from perceiver.train import trainer

pytestmark = pytest.mark.slow  # the session's reference run trains first


def _equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_every_name_of_a_run_reads_the_same_step(reference_run):
  ckpts = os.path.join(reference_run, 'checkpoints')
  with checkpoint.Checkpointer(ckpts, read_only=True) as ckpt:
    latest = ckpt.latest_step()
    earlier = min(ckpt.all_steps())
    want = ckpt.restore(latest)['params']
    want_earlier = ckpt.restore(earlier)['params']
  assert earlier < latest
  for path in (reference_run, ckpts, os.path.join(ckpts, str(latest))):
    params, state = checkpoint.read_params(path, layout='saved')
    _equal(params, want)
    assert state == {}
  params, _ = checkpoint.read_params(reference_run, step=str(earlier),
                                     layout='saved')
  _equal(params, want_earlier)
  # A step directory names its own step, whatever `step` says.
  params, _ = checkpoint.read_params(os.path.join(ckpts, str(earlier)),
                                     step='latest', layout='saved')
  _equal(params, want_earlier)


def test_layouts_and_release_files_agree(reference_run, tmp_path):
  release, _ = checkpoint.read_params(reference_run, layout='release')
  assert not perceiver.is_scanned(release)
  scanned, _ = checkpoint.read_params(reference_run, layout='scanned')
  assert perceiver.is_scanned(scanned)
  _equal(perceiver.to_release_layout(scanned), release)
  path = str(tmp_path / 'run.pickle')
  checkpoint_io.save_params(path, release)
  from_file, _ = checkpoint.read_params(path, layout='release')
  _equal(from_file, release)
  from_file, _ = checkpoint.read_params(path, layout='scanned')
  _equal(from_file, scanned)


def test_expected_tree_names_the_entry_that_differs(reference_run):
  release, _ = checkpoint.read_params(reference_run, layout='release')
  expected = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                          release)
  module = sorted(expected)[0]
  name = sorted(expected[module])[0]
  expected[module][name] = jax.ShapeDtypeStruct((3, 5, 7), np.float32)
  with pytest.raises(checkpoint_io.CheckpointMismatchError,
                     match=f'{module}.*{name}|{name}.*{module}'):
    checkpoint.read_params(reference_run, expected=expected)


def test_bad_names_fail_clearly(reference_run, tmp_path):
  with pytest.raises(ValueError, match="layout='stacked'"):
    checkpoint.read_params(reference_run, layout='stacked')
  with pytest.raises(FileNotFoundError, match='no such checkpoint'):
    checkpoint.read_params(str(tmp_path / 'nowhere'))
  with pytest.raises(FileNotFoundError, match='available steps'):
    checkpoint.read_params(reference_run, step='999')


def test_export_writes_what_read_params_reads(reference_run, tiny_config,
                                              mnist_data_dir, tmp_path):
  config = tiny_config(mnist_data_dir)
  path = trainer.export(config, reference_run, str(tmp_path / 'x.pystate'))
  exported, _ = checkpoint_io.load_params(path)
  want, _ = checkpoint.read_params(reference_run)
  _equal(exported, want)
