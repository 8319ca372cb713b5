"""The language tasks through the one training loop (perceiver.train.trainer).

Every language experiment's `smoke` variant trains 2 steps end to end (the
loop raises on a non-finite training loss, and the eval loss is checked);
fine-tuning starts from a release-format .pickle and reports what it newly
initialised; multitask gives one output per task; the eval sums reproduce
perceiver.tasks.language.metrics; the MLM stream resumes exactly.

GLUE itself cannot be downloaded here, so the GLUE runs read
`tfds.testing.mock_data` (random text through the real glue/<task> builders
and the real packing); the embedded corpora are real.
"""
import functools
import logging
import os

import haiku as hk
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from perceiver import checkpoint_io
from perceiver import perceiver
from perceiver.tasks.language import glue_data as glue_lib
from perceiver.tasks.language import metrics as metrics_lib
from perceiver.tasks.language import models
from perceiver.tasks.language import tfds_builders
from perceiver.train import checkpoint
from perceiver.train import config_lib
from perceiver.tasks.language import data
from perceiver.tasks.language import glue as glue_task
from perceiver.train import trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
DEVICES = 2


def load_experiment(name: str, arg: str = ''):
  return config_lib.load_experiment(
      os.path.join(REPO, 'experiments', f'{name}.py'), arg)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory, source_dir):
  """The embedded corpora, built once (real TFDS builds, ~10 s)."""
  d = str(tmp_path_factory.mktemp('tfds_language'))
  for name in tfds_builders.BUILDERS:
    tfds_builders.prepare(name, d, str(source_dir))
  return d


@pytest.fixture(scope='module')
def spm_model(tmp_path_factory, spm_tokenizer):
  path = str(tmp_path_factory.mktemp('spm') / 'spm.model')
  spm_tokenizer.save(path)
  return path


def _train(config, workdir):
  return trainer.train_and_evaluate(config, str(workdir),
                                    devices=jax.devices()[:DEVICES])


def _finite(final):
  assert final and all(np.isfinite(v) for v in final.values()), final


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mlm_bytes', 'mlm_bytes_plusplus',
                                  'mlm_spm_base'])
def test_mlm_smoke_trains(name, tmp_path, data_dir, spm_model):
  arg = 'smoke,spm=' + spm_model if name == 'mlm_spm_base' else 'smoke'
  config = load_experiment(name, arg)
  config.input.data_dir = data_dir
  if name != 'mlm_bytes':
    config.input.eval_split = ''  # one eval (mlm_bytes) is enough for CI
  final = _train(config, tmp_path)
  assert os.path.isdir(tmp_path / 'checkpoints' / '2')
  if name == 'mlm_bytes':
    _finite(final)
    assert final['eval/masked_tokens'] > 0
    assert 0.0 <= final['eval/accuracy'] <= 1.0


@pytest.mark.slow
def test_mlm_ablation_variants_train(tmp_path, data_dir):
  """The plateau ablations' fields (benchmarks/repro/LANGUAGE.md) reach the
  model from the experiment's variants, and the MLM trains with all of them
  and per-byte masking; release values write nothing."""
  release = load_experiment('mlm_bytes', 'smoke')
  same = load_experiment('mlm_bytes', 'smoke,embed_init=1.0,'
                         'input_pos=trainable,input_pos_init=0.02,'
                         'query_pos_init=0.02,cross_heads=4')
  assert same.model.to_dict() == release.model.to_dict()
  config = load_experiment('mlm_bytes', 'smoke,embed_init=0.02,'
                           'input_pos=fourier,query_pos_init=1.0,latents=8,'
                           'cross_heads=8,local=2')
  model = config.model
  assert model.encoder.cross_attend_local_width == 2.0
  assert model.encoder.cross_attend_local_span == model.max_seq_len
  assert model.decoder.local_width == 2.0
  assert model.embedding_init_scale == 0.02
  assert model.input_position_encoding == 'fourier'
  assert model.decoder.trainable_position_encoding_kwargs.init_scale == 1.0
  assert model.encoder.z_index_dim == 8
  assert model.encoder.num_cross_attend_heads == 8
  assert model.encoder.num_self_attend_heads == 4
  config.input.mask_unit = 'token'
  config.input.data_dir = data_dir
  final = _train(config, tmp_path)
  _finite(final)
  assert final['eval/masked_tokens'] > 0
  assert os.path.isdir(tmp_path / 'checkpoints' / '2')
  with pytest.raises(ValueError, match='input_pos=sinusoid'):
    load_experiment('mlm_bytes', 'smoke,input_pos=sinusoid')
  with pytest.raises(ValueError, match='embed_init'):
    load_experiment('mlm_bytes', 'smoke,embed_init=0')
  with pytest.raises(ValueError, match='local'):
    load_experiment('mlm_bytes', 'smoke,local=-1')


@pytest.mark.slow
def test_glue_smoke_trains_single_task(tmp_path):
  config = load_experiment('glue', 'smoke,task=stsb')  # the regression
  config.input.data_dir = str(tmp_path / 'tfds')
  with tfds.testing.mock_data(num_examples=8):
    final = _train(config, tmp_path / 'run')
  _finite(final)
  assert 'eval/pearson' in final and final['eval/num_examples'] == 8


@pytest.mark.slow
def test_multitask_one_output_per_task_through_training(tmp_path):
  config = load_experiment('glue', 'smoke,multitask=task_tokens')
  config.input.data_dir = str(tmp_path / 'tfds')
  config.input.eval_batch_size = 32
  with tfds.testing.mock_data(num_examples=4):
    final = _train(config, tmp_path / 'run')
  _finite(final)
  for task in glue_lib.TASK_NAMES:  # every task was evaluated on its head
    assert f'eval/{task}/score' in final
  assert 'eval/mnli_mismatched/score' in final
  assert 'eval/score' in final  # the GLUE average of the 8 tasks
  ts, step = trainer.restore_state(config, str(tmp_path / 'run'),
                                   devices=jax.devices()[:1])
  assert step == 2
  model = glue_task.make_model(config)
  batch = glue_task.example_batch(config, 3)
  outputs, _ = model.apply(ts.params, ts.state, None, batch,
                           is_training=False)
  assert set(outputs) == set(glue_lib.TASK_NAMES)
  assert outputs['stsb'].shape == (3,) and outputs['mnli'].shape == (3, 3)


def _save_mlm_pickle(path):
  """A small MLM (the smoke bytes model) in the release's format."""
  cfg = models.get_config('mlm_bytes:smoke')
  forward = hk.transform(functools.partial(models.mlm(cfg), is_training=False))
  t = cfg['max_seq_len']
  params = forward.init(jax.random.PRNGKey(7), np.zeros((1, t), np.int32),
                        np.ones((1, t), np.int32))
  checkpoint_io.save_params(path, params)
  return params


@pytest.mark.slow
def test_sentiment_fine_tunes_from_release_pickle_and_resume_wins(
    tmp_path, data_dir, caplog):
  pickle_path = str(tmp_path / 'mlm.pickle')
  release = _save_mlm_pickle(pickle_path)
  config = load_experiment('sentiment', f'smoke,init={pickle_path}')
  config.input.data_dir = data_dir
  config.input.eval_split = config.input.test_split = ''  # CI time
  assert config.init_from.path == pickle_path
  caplog.set_level(logging.INFO)
  _train(config, tmp_path / 'run')  # raises on a non-finite train loss
  # The log carries the warm start's report: encoder loaded, the new
  # decoder query/attention and the head newly initialised.
  assert 'newly initialised' in caplog.text
  assert 'glue_head' in caplog.text and 'glue_decoder' in caplog.text

  # The warm start copies the pickle's embedding and encoder exactly, and
  # leaves the new modules (glue_*) as initialised.
  model = glue_task.make_model(config)
  fresh, _ = model.init(jax.random.PRNGKey(0),
                        glue_task.example_batch(config, 1), is_training=True)
  loaded, _, message = checkpoint.warm_start(fresh, {}, config.init_from.path)
  assert 'Loaded' in message and 'glue_head' in message
  # The run is scanned (the fast path); the pickle is per layer.
  fresh = perceiver.to_release_layout(fresh)
  loaded = perceiver.to_release_layout(loaded)
  shared = [m for m in fresh if m.startswith(('embed', 'perceiver_encoder',
                                              'trainable_position'))]
  assert len(shared) > 5
  for module in shared:
    for name, value in release[module].items():
      np.testing.assert_array_equal(loaded[module][name], value)
  for module in fresh:
    if module.startswith('glue_'):
      for name, value in fresh[module].items():
        np.testing.assert_array_equal(loaded[module][name], value)

  # Resume order: the workdir's checkpoint wins over init_from.
  before, _ = trainer.restore_state(config, str(tmp_path / 'run'),
                                    devices=jax.devices()[:1])
  config.num_train_steps = 3
  caplog.clear()
  _train(config, tmp_path / 'run')
  assert 'Resumed from' in caplog.text and 'newly initialised' not in (
      caplog.text)
  after, step = trainer.restore_state(config, str(tmp_path / 'run'),
                                      devices=jax.devices()[:1])
  assert step == 3
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))),
                       before.params, after.params)
  assert max(jax.tree.leaves(moved)) > 0  # one more step from step 2


@pytest.mark.parametrize('task', ['cola', 'mrpc', 'stsb', 'mnli'])
def test_eval_sums_reproduce_glue_metrics(task):
  rng = np.random.default_rng(0)
  n, spec = 37, glue_lib.TASKS[task]
  config = load_experiment('glue', f'smoke,task={task}')
  if spec.is_regression:
    outputs = rng.normal(size=n).astype(np.float32) * 2 + 2
    labels = rng.uniform(0, 5, n).astype(np.float32)
  else:
    outputs = rng.normal(size=(n, spec.num_classes)).astype(np.float32)
    labels = rng.integers(0, spec.num_classes, n).astype(np.int32)
  mask = (np.arange(n) < n - 5).astype(np.float32)  # 5 padding examples
  batch = {'label': labels, 'mask': mask,
           'task_id': np.full(n, glue_lib.TASK_NAMES.index(task), np.int32)}
  sums = jax.device_get(glue_task.eval_sums(outputs, batch, config))
  got = glue_task.finalize_eval(sums, config)
  want = metrics_lib.glue_metrics(task, outputs[:n - 5], labels[:n - 5])
  for key, value in want.items():
    if key == 'spearman':
      continue  # not a paper metric; not computed from sums
    assert got[key] == pytest.approx(value, abs=1e-5), key
  assert got['num_examples'] == n - 5


def test_mlm_stream_resumes_exactly(data_dir):
  config = load_experiment('mlm_bytes', 'smoke')
  cfg = config.input
  cfg.data_dir = data_dir
  kwargs = dict(data_dir=data_dir, seed=3, process_index=0, process_count=1)
  full = data.mlm_train_iterator(cfg, start_step=0, **kwargs)
  batches = [next(full) for _ in range(4)]
  resumed = next(data.mlm_train_iterator(cfg, start_step=3, **kwargs))
  for key in batches[3]:
    np.testing.assert_array_equal(resumed[key], batches[3][key])
  assert not np.array_equal(batches[2]['inputs'], batches[3]['inputs'])
  # Masked positions are exactly where inputs differ from the targets
  # (every token of a masked word becomes MASK, bert_replacement=False).
  b = batches[0]
  np.testing.assert_array_equal(b['target_mask'] == 1,
                                b['inputs'] != b['targets'])
