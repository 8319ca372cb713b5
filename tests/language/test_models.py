"""Language models: MLM configs, GLUE classifiers, warm start from the MLM.

Shapes: B batch, T tokens, K prepended tokens, E query channels.
Full-size models are only traced (jax.eval_shape); everything run is tiny.
"""
import functools

import haiku as hk
import jax
import numpy as np
import pytest

from perceiver import checkpoint_io
from perceiver.train import checkpoint
from perceiver import perceiver
from perceiver.tasks.language import models
from tests import golden

# The 8 GLUE tasks of [P] with their label counts (STS-B is a regression).
TASKS = {'cola': 2, 'sst2': 2, 'mrpc': 2, 'stsb': 1, 'qqp': 2, 'mnli': 3,
         'qnli': 2, 'rte': 2}
SMOKE = models.smoke_config('mlm_bytes')
B, T = 2, 24


def _transform(forward):
  # Not jitted: for these tiny models op-by-op dispatch (whose primitives
  # compile once per shape and are shared by every test) beats compiling
  # each model's init and apply.
  return hk.transform(functools.partial(forward, is_training=False))


def _text(seed, batch=B, length=T, valid=(T, 15)):
  """Random byte ids [B, T] and a mask with `valid[b]` leading ones."""
  rng = np.random.default_rng(seed)
  inputs = rng.integers(6, 262, size=(batch, length)).astype(np.int32)
  mask = (np.arange(length)[None] < np.asarray(valid)[:, None]).astype(np.int32)
  return inputs, mask


def _entries(tree):
  return {f'{m}/{n}' for m, leaves in tree.items() for n in leaves}


@pytest.fixture(scope='module')
def mlm_checkpoint(tmp_path_factory):
  """The release's tiny bytes MLM (= SMOKE), saved and re-read as .pickle."""
  params = golden.load_npz('language_mlm_tiny')[0]
  path = str(tmp_path_factory.mktemp('mlm') / 'mlm.pickle')
  checkpoint_io.save_params(path, params)
  loaded, state = checkpoint_io.load_params(path)
  assert state == {}
  return loaded


#  ------------------------  Configs  ------------------------


def test_mlm_bytes_is_the_released_model():
  spec = golden.load_json('full_language_mlm')
  cfg = models.mlm_bytes()
  for key in ('vocab_size', 'd_model', 'max_seq_len', 'encoder', 'decoder'):
    assert cfg[key] == spec[key], key
  shapes = models.param_shapes(cfg)
  assert golden.manifest(shapes) == spec['param_manifest']
  assert models.param_count(cfg) == 201_108_230 == spec['total_params']


@pytest.mark.parametrize('name, paper_params', [
    ('mlm_bytes_plusplus', 425e6),  # [P] Table 11 Perceiver IO++.
    ('mlm_spm_base', 223e6),        # [P] Table 11 Perceiver IO Base.
])
def test_paper_param_counts(name, paper_params):
  count = models.param_count(models.get_config(name))
  assert abs(count - paper_params) / paper_params < 0.01, count


def test_config_variants():
  plusplus = models.mlm_bytes_plusplus()
  assert plusplus['encoder']['num_self_attends_per_block'] == 40
  assert plusplus['encoder']['num_z_channels'] == 1536
  assert plusplus['d_model'] == 768
  spm = models.mlm_spm_base()
  assert (spm['vocab_size'], spm['max_seq_len']) == (32_000, 512)
  assert spm['decoder']['output_index_dims'] == 512
  assert models.get_config('mlm_bytes:smoke') == SMOKE
  tiny = golden.load_json('language_mlm_tiny')  # The release's tiny MLM.
  assert SMOKE == {k: tiny[k] for k in SMOKE}
  assert models.smoke_config('mlm_spm_base')['vocab_size'] == 32_000
  small = models.smoke_config(max_seq_len=16, num_layers=1)
  assert small['decoder']['output_index_dims'] == 16
  assert small['encoder']['num_self_attends_per_block'] == 1
  # Fresh dicts: editing one never changes another.
  models.mlm_bytes()['encoder']['num_blocks'] = 7
  assert models.mlm_bytes()['encoder']['num_blocks'] == 1
  with pytest.raises(ValueError, match='Unknown MLM config'):
    models.get_config('mlm_bert')
  with pytest.raises(ValueError, match='variant'):
    models.get_config('mlm_bytes:tiny')


def test_glue_num_labels_matches_the_data_pipeline():
  assert models.glue_num_labels() == TASKS


#  ------------------------  Classifier  ------------------------


@pytest.mark.slow
@pytest.mark.parametrize('num_labels, want', [(3, (B, 3)), (1, (B,))])
def test_classifier_shapes(num_labels, want):
  model = _transform(models.glue_classifier(SMOKE, num_labels))
  inputs, mask = _text(0)
  params = model.init(jax.random.PRNGKey(0), inputs, mask)
  out = model.apply(params, None, inputs, mask)
  assert out.shape == want
  assert np.all(np.isfinite(out))
  assert params['glue_decoder/~/trainable_position_encoding'][
      'pos_embs'].shape == (1, SMOKE['d_model'])
  assert params['glue_head/hidden']['w'].shape == (SMOKE['d_model'],) * 2
  assert params['glue_head/output']['w'].shape == (SMOKE['d_model'],
                                                   num_labels)


@pytest.mark.slow
def test_classifier_masked_equals_padded():
  """Short input == the same text padded to max_seq_len with junk."""
  model = _transform(models.glue_classifier(SMOKE, 2))
  inputs, mask = _text(1)
  params = model.init(jax.random.PRNGKey(0), inputs, mask)
  short = model.apply(params, None, inputs, mask)
  full_t = SMOKE['max_seq_len']
  junk, _ = _text(2, length=full_t)
  padded = np.where(np.arange(full_t)[None] < T, np.pad(inputs, [(0, 0), (
      0, full_t - T)]), junk)
  padded_mask = np.pad(mask, [(0, 0), (0, full_t - T)])
  padded = np.where(padded_mask == 1, padded, junk)
  np.testing.assert_allclose(model.apply(params, None, padded, padded_mask),
                             short, rtol=1e-5, atol=1e-5)


def test_classifier_rejects_long_inputs():
  model = _transform(models.glue_classifier(SMOKE, 2))
  inputs, mask = _text(0, length=SMOKE['max_seq_len'] + 1, valid=(3, 3))
  with pytest.raises(ValueError, match='at most 64 tokens'):
    model.init(jax.random.PRNGKey(0), inputs, mask)


#  ------------------------  Multitask  ------------------------


@pytest.fixture(scope='module')
def multitask():
  """variant -> (transformed, params, inputs, mask, outputs)."""
  out = {}
  inputs, mask = _text(3)
  for variant in models.MULTITASK_VARIANTS:
    model = _transform(models.glue_multitask(SMOKE, TASKS, variant))
    params = model.init(jax.random.PRNGKey(0), inputs, mask)
    out[variant] = (model.apply, params, inputs, mask,
                    model.apply(params, None, inputs, mask))
  return out


@pytest.mark.slow
@pytest.mark.parametrize('variant', models.MULTITASK_VARIANTS)
def test_multitask_one_output_per_task(multitask, variant):
  _, params, _, _, outputs = multitask[variant]
  assert sorted(outputs) == sorted(TASKS)
  for task, num_labels in TASKS.items():
    want = (B,) if num_labels == 1 else (B, num_labels)
    assert outputs[task].shape == want, task
    assert params[f'glue_head_{task}/hidden']['w'].shape == (32, 32)
  num_tokens = {'query': None, 'shared_token': 1, 'task_tokens': 8}[variant]
  if num_tokens is None:
    assert 'glue_task_tokens' not in params
    assert params['glue_decoder/~/trainable_position_encoding'][
        'pos_embs'].shape == (8, 32)
  else:
    assert params['glue_task_tokens']['embeddings'].shape == (num_tokens, 32)
    assert not any(m.startswith('glue_decoder') for m in params)


def _same_heads(params):
  """All task heads set to cola's, so outputs differ only by their input."""
  params = dict(params)
  for task in TASKS:
    if TASKS[task] == 2:
      for layer in ('hidden', 'output'):
        params[f'glue_head_{task}/{layer}'] = params[f'glue_head_cola/{layer}']
  return params


def test_query_variant_differs_per_task(multitask):
  apply, params, inputs, mask, _ = multitask['query']
  outputs = apply(_same_heads(params), None, inputs, mask)
  binary = [t for t in TASKS if TASKS[t] == 2]
  for task in binary[1:]:
    assert not np.allclose(outputs[task], outputs['cola']), task


def test_shared_token_feeds_every_head(multitask):
  apply, params, inputs, mask, _ = multitask['shared_token']
  outputs = apply(_same_heads(params), None, inputs, mask)
  for task in TASKS:
    if TASKS[task] == 2:
      np.testing.assert_array_equal(outputs[task], outputs['cola'])


@pytest.mark.parametrize('variant, num_tokens',
                         [('shared_token', 1), ('task_tokens', 8)])
def test_token_variants_decode_at_prepended_slots(multitask, variant,
                                                  num_tokens):
  """Only the MLM decoder's queries for slots 0..K-1 reach the outputs."""
  apply, params, inputs, mask, base = multitask[variant]
  queries = params['basic_decoder/~/trainable_position_encoding']['pos_embs']

  def with_queries(new_queries):
    p = dict(params)
    p['basic_decoder/~/trainable_position_encoding'] = {'pos_embs': new_queries}
    return apply(p, None, inputs, mask)

  # Changing the queries of the text slots changes nothing.
  same = with_queries(queries.at[num_tokens:].set(5.0))
  for task in TASKS:
    np.testing.assert_array_equal(same[task], base[task])
  # Changing slot k's query changes exactly the tasks decoded at slot k.
  for slot in range(num_tokens):
    changed = with_queries(queries.at[slot].set(5.0))
    for k, task in enumerate(TASKS):
      reads_slot = variant == 'shared_token' or k == slot
      assert reads_slot != np.allclose(changed[task], base[task]), (slot, task)


@pytest.mark.parametrize('variant', models.MULTITASK_VARIANTS)
def test_multitask_ignores_padded_positions(multitask, variant):
  apply, params, inputs, mask, base = multitask[variant]
  junk, _ = _text(9)
  changed = apply(params, None, np.where(mask == 1, inputs, junk), mask)
  for task in TASKS:
    np.testing.assert_allclose(changed[task], base[task], rtol=1e-5,
                               atol=1e-6)
  # The text itself matters.
  other = apply(params, None, np.where(mask == 1, junk, inputs), mask)
  assert not np.allclose(other['cola'], base['cola'])


def test_task_tokens_need_room_in_the_position_table():
  model = _transform(models.glue_multitask(SMOKE, TASKS, 'task_tokens'))
  inputs, mask = _text(0, length=SMOKE['max_seq_len'] - 7, valid=(3, 3))
  with pytest.raises(ValueError, match='8 slots go to the prepended tokens'):
    model.init(jax.random.PRNGKey(0), inputs, mask)
  with pytest.raises(ValueError, match='variant'):
    models.glue_multitask(SMOKE, TASKS, 'prompt')


#  ------------------------  Warm start  ------------------------


def _init_classifier(config, shapes_only=False):
  """-> (transformed, params); shapes_only: ShapeDtypeStructs, no compute."""
  model = _transform(models.glue_classifier(config, 3))
  inputs, mask = _text(0)
  init = jax.eval_shape if shapes_only else lambda f, *a: f(*a)
  return model, init(model.init, jax.random.PRNGKey(7), inputs, mask)


def test_merge_params_into_classifier(mlm_checkpoint):
  model, params_init = _init_classifier(SMOKE)
  params, report = checkpoint.merge_params(params_init, mlm_checkpoint)

  mlm_entries = _entries(mlm_checkpoint)
  mlm_only = {e for e in mlm_entries
              if e.startswith('basic_decoder/') or e.startswith(
                  'embedding_decoder/')}
  new = {e for e in _entries(params_init) if e.startswith('glue_')}
  assert set(report.new) == new
  assert {e.split('/')[0] for e in new} == {'glue_decoder', 'glue_head'}
  assert 'glue_decoder/~/trainable_position_encoding/pos_embs' in new
  assert set(report.loaded) == mlm_entries - mlm_only
  assert any(e.startswith('perceiver_encoder/') for e in report.loaded)
  assert {'embed/embeddings', 'trainable_position_encoding/pos_embs'} <= set(
      report.loaded)
  assert set(report.unused) == mlm_only
  assert 'embedding_decoder/bias' in report.unused
  assert report.num_new_params + report.num_loaded_params == (
      hk.data_structures.tree_size(params_init))
  assert 'newly initialised' in str(report)

  for entry in report.loaded:
    module, name = entry.rsplit('/', 1)
    np.testing.assert_array_equal(params[module][name],
                                  mlm_checkpoint[module][name])
  for entry in report.new:
    module, name = entry.rsplit('/', 1)
    np.testing.assert_array_equal(params[module][name],
                                  params_init[module][name])
  inputs, mask = _text(0)
  assert np.all(np.isfinite(model.apply(params, None, inputs, mask)))


def test_warm_start_decoder_rename(mlm_checkpoint):
  _, params_init = _init_classifier(SMOKE)
  params, report = checkpoint.merge_params(
      params_init, mlm_checkpoint, rename=models.WARM_START_DECODER)
  assert set(report.new) == (
      {'glue_decoder/~/trainable_position_encoding/pos_embs'}
      | {e for e in _entries(params_init) if e.startswith('glue_head/')})
  assert set(report.unused) == {
      'basic_decoder/~/trainable_position_encoding/pos_embs',
      'embedding_decoder/bias'}
  np.testing.assert_array_equal(
      params['glue_decoder/cross_attention/attention/linear']['w'],
      mlm_checkpoint['basic_decoder/cross_attention/attention/linear']['w'])


def test_merge_params_into_token_variant(mlm_checkpoint):
  model = _transform(models.glue_multitask(SMOKE, TASKS, 'task_tokens'))
  inputs, mask = _text(0)
  params_init = model.init(jax.random.PRNGKey(7), inputs, mask)
  _, report = checkpoint.merge_params(params_init, mlm_checkpoint)
  assert report.unused == ('embedding_decoder/bias',)
  assert set(report.new) == {e for e in _entries(params_init)
                             if e.startswith('glue_')}
  assert 'basic_decoder/~/trainable_position_encoding/pos_embs' in (
      report.loaded)


def test_merge_params_into_scanned_encoder(mlm_checkpoint):
  _, params_init = _init_classifier(
      models.smoke_config(scan_layers=True), shapes_only=True)
  params, report = checkpoint.merge_params(params_init, mlm_checkpoint)
  assert not [e for e in report.new if not e.startswith('glue_')]
  unrolled = perceiver.to_release_layout(params)
  for module, leaves in unrolled.items():
    if module.startswith('perceiver_encoder'):
      for name, value in leaves.items():
        np.testing.assert_array_equal(value, mlm_checkpoint[module][name])


def test_merge_params_shape_mismatch_names_entries(mlm_checkpoint):
  _, params_init = _init_classifier(models.smoke_config(latent_channels=64),
                                    shapes_only=True)
  with pytest.raises(checkpoint_io.CheckpointMismatchError) as err:
    checkpoint.merge_params(params_init, mlm_checkpoint)
  message = str(err.value)
  assert 'perceiver_encoder/~/trainable_position_encoding/pos_embs' in message
  assert 'checkpoint (16, 48) vs model (16, 64)' in message


def test_merge_params_refuses_an_unrelated_checkpoint():
  _, params_init = _init_classifier(SMOKE, shapes_only=True)
  with pytest.raises(checkpoint_io.CheckpointMismatchError,
                     match='no entry matched'):
    checkpoint.merge_params(params_init, {'classifier/linear': {
        'w': np.zeros([2, 2], np.float32)}})


@pytest.mark.slow
def test_mlm_input_position_fields():
  """The config fields of the plateau ablations (benchmarks/repro/LANGUAGE.md):
  release values write nothing; Fourier input positions widen the encoder
  input; the init scales set the stddev of the tables."""
  assert models.smoke_config(input_position_encoding='trainable',
                             input_position_init_scale=0.02,
                             query_position_init_scale=0.02) == SMOKE
  t = SMOKE['max_seq_len']
  inputs, mask = _text(0, length=t, valid=(t, 5))
  fourier = hk.transform(functools.partial(models.mlm(models.smoke_config(
      input_position_encoding='fourier')), is_training=False))
  params = jax.jit(fourier.init)(jax.random.PRNGKey(0), inputs, mask)
  assert 'trainable_position_encoding' not in params  # no input table
  cross = params['perceiver_encoder/~/cross_attention/layer_norm_1']
  assert cross['scale'].shape == (SMOKE['d_model'] + 2 * 64 + 1,)
  logits = jax.jit(fourier.apply)(params, None, inputs, mask)
  assert logits.shape == (B, t, SMOKE['vocab_size'])
  assert np.isfinite(np.asarray(logits)).all()
  scaled = models.smoke_config(input_position_init_scale=1.0,
                               query_position_init_scale=0.5)
  params = jax.jit(hk.transform(functools.partial(
      models.mlm(scaled), is_training=False)).init)(
          jax.random.PRNGKey(0), inputs, mask)
  std = lambda m: float(np.std(params[m]['pos_embs']))  # 64 x 32 values
  # hk TruncatedNormal(s) cuts at 2s: its stddev is 0.88 s.
  assert 0.8 < std('trainable_position_encoding') < 0.95
  assert 0.4 < std('basic_decoder/~/trainable_position_encoding') < 0.475
  with pytest.raises(ValueError, match='input_position_encoding'):
    models.mlm(models.smoke_config(input_position_encoding='sinusoid'))


@pytest.mark.slow
def test_mlm_embedding_init_scale_field():
  """embedding_init_scale (benchmarks/repro/LANGUAGE.md): the release's 1.0
  writes nothing and keeps hk.Embed's init bit for bit; another value sets
  the token table's stddev, in the MLM and in the GLUE encoder alike."""
  assert models.smoke_config(embedding_init_scale=1.0) == SMOKE
  t = SMOKE['max_seq_len']
  inputs, mask = _text(0, length=t, valid=(t, 5))

  def embeddings(config):
    params = jax.jit(hk.transform(functools.partial(
        models.mlm(config), is_training=False)).init)(
            jax.random.PRNGKey(0), inputs, mask)
    return np.asarray(params['embed']['embeddings'])

  release = embeddings(models.smoke_config())
  small = embeddings(models.smoke_config(embedding_init_scale=0.02))
  # The same draw, scaled: TruncatedNormal(s) is s * TruncatedNormal(1).
  np.testing.assert_allclose(small, 0.02 * release, rtol=1e-5, atol=1e-9)
  assert 0.8 < release.std() < 0.95  # hk TruncatedNormal(1): 0.88
  classifier = hk.transform(functools.partial(models.glue_classifier(
      models.smoke_config(embedding_init_scale=0.02), 2), is_training=False))
  params = jax.jit(classifier.init)(jax.random.PRNGKey(0), inputs, mask)
  assert 0.016 < float(np.std(params['embed']['embeddings'])) < 0.019


def test_local_cross_attention_changes_no_parameter():
  """The locality prior (local_cross_attention, a DEVIATION): off writes
  nothing; on, the same parameter tree and the same seeded init, and
  initial logits that differ between positions (the release's start almost
  position-free, which is the unigram plateau of benchmarks/repro/
  LANGUAGE.md)."""
  assert models.smoke_config(local_cross_attention=0.0) == SMOKE
  local = models.smoke_config(local_cross_attention=2.0)
  t = SMOKE['max_seq_len']
  inputs, mask = _text(0, length=t, valid=(t, t))

  def run(config):
    model = hk.transform(functools.partial(models.mlm(config),
                                           is_training=False))
    params = jax.jit(model.init)(jax.random.PRNGKey(0), inputs, mask)
    return params, jax.jit(model.apply)(params, None, inputs, mask)

  params, logits = run(SMOKE)
  local_params, local_logits = run(local)
  jax.tree.map(np.testing.assert_array_equal, local_params, params)
  spread = float(np.std(logits, axis=1).mean())
  local_spread = float(np.std(local_logits, axis=1).mean())
  assert local_spread > 3 * spread, (local_spread, spread)


@pytest.mark.parametrize('multitask', ['query', 'task_tokens'])
def test_local_cross_attention_in_the_fine_tuning_models(multitask):
  """The fine-tuning models keep the pretrained encoder's prior (so a
  checkpoint sees the inputs it was trained on); the new query decoders
  get none, and the MLM decoder at the prepended slots uses theirs."""
  local = models.smoke_config(local_cross_attention=2.0)
  inputs, mask = _text(0)
  for forward in (models.glue_classifier(local, 2),
                  models.glue_multitask(local, TASKS, multitask)):
    model = _transform(forward)
    params = model.init(jax.random.PRNGKey(0), inputs, mask)
    out = model.apply(params, None, inputs, mask)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(out))
  plain = _transform(models.glue_classifier(SMOKE, 2))
  params = plain.init(jax.random.PRNGKey(0), inputs, mask)
  assert not np.allclose(
      plain.apply(params, None, inputs, mask),
      _transform(models.glue_classifier(local, 2)).apply(
          params, None, inputs, mask))


def test_local_decoder_needs_the_positions_of_subsampled_queries():
  local = models.smoke_config(local_cross_attention=2.0)

  def decode(query_positions=None):
    decoder = perceiver.BasicDecoder(**local['decoder'])
    query = decoder.decoder_query(np.zeros((1, 1, 1)))[:, :3]
    return decoder(query, np.ones((1, 16, 48), np.float32),
                   is_training=False, query_positions=query_positions)

  model = hk.transform(decode)
  with pytest.raises(ValueError, match='need query_positions'):
    model.init(jax.random.PRNGKey(0))
  model = hk.transform(lambda: decode(np.arange(3)))
  params = model.init(jax.random.PRNGKey(0))
  assert model.apply(params, None).shape == (1, 3, SMOKE['d_model'])
