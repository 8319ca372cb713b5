"""Export to transformers, parity in PyTorch, and the way back.

Real transformers 5.23 / torch 2.13 (CPU) on tiny random models of the six
released families (conftest.py), plus the full-size release architectures
checked by shape only (meta device, nothing allocated).
"""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers

from perceiver import perceiver
from perceiver import release_specs
from perceiver.hf import export
from perceiver.hf import load
from perceiver.hf import mapping
from perceiver.hf import parity
from perceiver.hf import specs
from perceiver.tasks.language import models
from tests.hf.conftest import EXACT_FAMILIES, FAMILIES
from tests.hf.conftest import REPO


def _hf_model(case):
  cls = getattr(transformers, case.exported.plan.hf_class)
  return cls.from_pretrained(case.directory).eval()


def _parity(case, model):
  return parity.compare(case.ours, parity.run_hf(model, case.spec, case.inputs),
                        valid=case.inputs.get('input_mask'))


def _assert_trees_identical(a, b):
  assert sorted(a) == sorted(b)
  for module in a:
    assert sorted(a[module]) == sorted(b[module]), module
    for name, value in a[module].items():
      other = b[module][name]
      assert other.dtype == value.dtype and other.shape == value.shape, (
          module, name)
      assert np.array_equal(other, value), (module, name)


#  ------------------------------  Parity  ------------------------------


@pytest.mark.parametrize('family', EXACT_FAMILIES)
def test_transformers_computes_what_we_compute(hf_case, family):
  case = hf_case(family)
  assert sorted(os.listdir(case.directory)) == sorted(
      ['config.json', 'model.safetensors', 'model.safetensors.sha256',
       export.SIDECAR]
      + (['tokenizer_config.json'] if family == 'language_mlm' else []))
  result = _parity(case, _hf_model(case))
  assert result.ok, str(result)
  for name, r in result.outputs.items():  # real signal, not zeros
    assert r['scale'] > 0.1, (name, r)
  # The two batch elements give different outputs: inputs reach the output.
  for name, value in case.ours.items():
    assert np.abs(value[0] - value[1]).max() > 1e-3, name


def test_mlm_tokenizer_matches_ours(hf_case):
  from perceiver import bytes_tokenizer  # pylint: disable=g-import-not-at-top
  tokenizer = transformers.PerceiverTokenizer.from_pretrained(
      hf_case('language_mlm').directory)
  text = 'Perceiver IO liest Bytes: ü'
  ids = tokenizer(text, add_special_tokens=False)['input_ids']
  np.testing.assert_array_equal(ids, bytes_tokenizer.BytesTokenizer().to_int(
      text))
  assert tokenizer.model_max_length == 12  # pads to max_seq_len


def test_conv_stem_differs_from_the_release_only_by_its_padding(hf_case):
  """transformers' conv stem pads 3/3 and pools unpadded; the release (and
  we) use TensorFlow SAME. With SAME emulated around transformers' own conv
  and batch-norm modules, the export agrees: the weights map exactly."""
  case = hf_case('imagenet_conv')
  assert case.exported.plan.inexact == (mapping.CONV_INEXACT,)
  model = _hf_model(case)
  as_is = _parity(case, model)
  assert not as_is.ok and as_is.outputs['logits']['max_abs'] > 0.1

  convnet = model.perceiver.input_preprocessor.convnet

  def same_padding(size, kernel, stride):
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2

  def tf_same(x):  # [B, 3, H, W] -> [B, 64, H/4, W/4]
    (t, b), (l, r) = (same_padding(s, 7, 2) for s in x.shape[2:])
    x = F.conv2d(F.pad(x, (l, r, t, b)), convnet.conv.weight, stride=2)
    x = F.relu(convnet.batchnorm(x))
    (t, b), (l, r) = (same_padding(s, 3, 2) for s in x.shape[2:])
    return F.max_pool2d(F.pad(x, (l, r, t, b), value=-float('inf')), 3, 2)

  convnet.forward = tf_same
  emulated = _parity(case, model)
  assert emulated.ok, str(emulated)


def test_export_refuses_outputs_that_disagree(hf_case, tmp_path,
                                              monkeypatch):
  """The export's own check fails, and writes nothing, when the weights are
  mapped wrongly (here: every query and key matrix scaled by 1.01)."""
  case = hf_case('language_mlm')
  to_hf = mapping.to_hf

  def skewed(*args):
    tensors, extras = to_hf(*args)
    return {k: v * np.float32(1.01) if '.query.' in k else v
            for k, v in tensors.items()}, extras

  monkeypatch.setattr(mapping, 'to_hf', skewed)
  with pytest.raises(export.ParityError, match='disagrees'):
    export.export(case.spec, case.params, case.state, str(tmp_path / 'bad'))
  assert not os.path.exists(tmp_path / 'bad')
  assert not os.path.exists(str(tmp_path / 'bad') + '.tmp-export')


#  ----------------------------  Round trip  ----------------------------


@pytest.mark.parametrize('family', FAMILIES)
def test_round_trip_reproduces_our_tree_bit_for_bit(hf_case, family):
  case = hf_case(family)
  back = load.load(case.directory)
  _assert_trees_identical(back.params, case.params)
  _assert_trees_identical(back.state, case.state)
  assert back.spec == specs.clean(case.spec)


def test_weights_carry_a_checksum_that_refuses_damaged_files(
    hf_case, tmp_path):
  """model.safetensors.sha256 is a sha256sum line for the weights; the way
  back refuses a copy with 20 flipped bytes in the tensor data, naming it."""
  import hashlib  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  from perceiver import checkpoint_io  # pylint: disable=g-import-not-at-top
  case = hf_case('language_mlm')
  weights = os.path.join(case.directory, 'model.safetensors')
  with open(weights, 'rb') as f:
    data = f.read()
  with open(weights + '.sha256') as f:
    line = f.read()
  assert line == f'{hashlib.sha256(data).hexdigest()}  model.safetensors\n'
  if shutil.which('sha256sum'):
    subprocess.run(['sha256sum', '-c', 'model.safetensors.sha256'],
                   cwd=case.directory, check=True, capture_output=True)
  damaged = tmp_path / 'damaged'
  shutil.copytree(case.directory, damaged)
  middle = len(data) - len(data) // 3  # in the tensor data, past the header
  flipped = bytearray(data)
  flipped[middle:middle + 20] = bytes(b ^ 0xFF for b in data[middle:
                                                             middle + 20])
  (damaged / 'model.safetensors').write_bytes(bytes(flipped))
  with pytest.raises(checkpoint_io.CorruptCheckpointError,
                     match=f'{damaged}/model.safetensors is damaged'):
    load.load(str(damaged))
  os.remove(damaged / 'model.safetensors.sha256')  # what it guards against:
  back = load.load(str(damaged))  # unchecked, the damage loads silently
  assert any(not np.array_equal(back.params[m][n], v)
             for m, leaves in case.params.items() for n, v in leaves.items())


@pytest.mark.parametrize('family', FAMILIES)
def test_spec_derived_from_config_json_alone_builds_the_same_model(
    hf_case, family, tmp_path):
  """A directory without our sidecar (a hub or PyTorch checkpoint): the
  architecture comes from config.json, and the weights still round-trip."""
  case = hf_case(family)
  bare = tmp_path / 'bare'
  bare.mkdir()
  for name in ('config.json', 'model.safetensors'):
    os.symlink(os.path.join(case.directory, name), bare / name)
  back = load.load(str(bare))
  _assert_trees_identical(back.params, case.params)
  derived = parity.run_ours(back.spec, back.params, back.state, case.inputs)
  for name, value in case.ours.items():  # BatchNorm reads only the averages
    np.testing.assert_array_equal(derived[name], value)
  if family == 'imagenet_conv':  # no sidecar: EMA hidden = average
    for ema in back.state.values():
      np.testing.assert_array_equal(ema['hidden'], ema['average'])
      assert ema['counter'] >= 158
    assert mapping.CONV_INEXACT in back.notes


def test_pytorch_fine_tunes_come_back(hf_case, tmp_path):
  """A model changed in PyTorch and saved by transformers (sharded
  safetensors, or a pytorch_model.bin as on the hub) loads back with the
  change, and only it."""
  case = hf_case('language_mlm')
  model = _hf_model(case)
  with torch.no_grad():
    model.embedding_decoder.bias += 1.0  # "fine-tuning"
  model.save_pretrained(tmp_path / 'sharded', max_shard_size='100KB')
  assert os.path.exists(tmp_path / 'sharded' / 'model.safetensors.index.json')
  os.makedirs(tmp_path / 'bin')
  torch.save(model.state_dict(), tmp_path / 'bin' / 'pytorch_model.bin')
  os.symlink(tmp_path / 'sharded' / 'config.json',
             tmp_path / 'bin' / 'config.json')
  for name in ('sharded', 'bin'):
    back = load.load(str(tmp_path / name))
    want = {m: dict(leaves) for m, leaves in case.params.items()}
    want['embedding_decoder'] = {
        'bias': case.params['embedding_decoder']['bias'] + np.float32(1)}
    _assert_trees_identical(back.params, want)


def test_release_format_files_export(hf_case, tmp_path):
  """.pickle (params) and .pystate (params and BatchNorm state) files, with
  the architecture as a spec JSON (launch/export_hf.py --checkpoint --spec)."""
  import json  # pylint: disable=g-import-not-at-top
  from perceiver import checkpoint_io  # pylint: disable=g-import-not-at-top
  for family, suffix in (('language_mlm', '.pickle'),
                         ('imagenet_conv', '.pystate')):
    case = hf_case(family)
    path = str(tmp_path / (family + suffix))
    checkpoint_io.save_params(path, case.params, case.state or None)
    with open(path + '.json', 'w') as f:
      json.dump(case.spec, f)
    out = export.export_checkpoint(
        str(tmp_path / family), checkpoint=path, spec=path + '.json',
        verify=False, allow_inexact=True)
    assert out.plan.family == family
    back = load.load(out.directory)
    _assert_trees_identical(back.params, case.params)
    _assert_trees_identical(back.state, case.state)


def test_scanned_params_export_like_unscanned(hf_case):
  case = hf_case('language_mlm')
  scanned = perceiver.from_release_layout(case.params)
  assert any(f'/{perceiver.SCAN_NAME}/' in m for m in scanned)
  ours, _ = mapping.to_hf(case.spec, specs.release_layout(scanned))
  want, _ = mapping.to_hf(case.spec, case.params)
  assert sorted(ours) == sorted(want)
  for key, value in want.items():
    np.testing.assert_array_equal(ours[key], value)


#  ------------------  What transformers cannot express  -----------------


def _refusal(spec, **kwargs):
  with pytest.raises(mapping.UnsupportedByTransformersError) as err:
    mapping.plan(spec, **kwargs)
  return str(err.value)


def test_refuses_released_learned_decoder_and_names_the_option():
  message = _refusal(specs.release_spec('imagenet_learned'))
  assert 'decoder.use_query_residual=False' in message
  assert 'PerceiverForImageClassificationLearned' in message


def test_refuses_conv_stem_unless_allowed():
  spec = specs.release_spec('imagenet_conv')
  assert '55x55' in _refusal(spec) and '--allow_inexact' in _refusal(spec)
  assert mapping.plan(spec, allow_inexact=True).inexact


def test_refuses_the_locality_prior():
  """A model trained with local_cross_attention (a DEVIATION) computes a
  function transformers cannot: its export is refused, naming both
  options, instead of writing weights that would decode differently."""
  spec = dict(models.smoke_config('mlm_bytes', local_cross_attention=2.0),
              builder='mlm')
  message = _refusal(spec)
  assert 'encoder.cross_attend_local_width=2.0' in message
  assert 'decoder.local_width=2.0' in message


def test_refuses_the_autoencoders_deviations():
  """The video autoencoder's audio_gain and time locality prior (both
  DEVIATIONs) have no counterpart in the class: refused, each by name."""
  release = specs.release_spec('video_autoencoding')
  mapping.plan(release)  # the release's own spec maps
  for key, value in (('audio_gain', 8.0), ('local_width', 1.0)):
    message = _refusal(dict(release, **{key: value}))
    assert f'{key}={value}' in message and 'DEVIATION' in message


def test_language_variants():
  # ++ (40 layers, D = 1536) fits PerceiverConfig as it is.
  plus = dict(models.mlm_bytes_plusplus(), builder='mlm')
  config = mapping.plan(plus).hf_config
  assert (config['num_self_attends_per_block'], config['d_latents']) == (40,
                                                                         1536)
  # SentencePiece: the model fits, PerceiverTokenizer (bytes) does not.
  spm = dict(models.mlm_spm_base(), builder='mlm')
  message = _refusal(spm)
  assert 'vocab_size=32000' in message and 'SentencePiece' in message
  assert not mapping.plan(spm, tokenizer=False).tokenizer
  # The smoke model's decoder has 4 heads of 16 qk channels; the class 8x256.
  message = _refusal(dict(models.get_config('mlm_bytes:smoke'), builder='mlm'))
  assert 'decoder.num_heads=4' in message
  assert 'decoder.qk_channels (effective)=16' in message


def test_refuses_mnist_and_the_projection_decoder():
  from tests.training_fixtures import load_experiment  # pylint: disable=g-import-not-at-top
  for variant in ('', 'smoke'):  # MNIST is grey: one channel
    message = _refusal(specs.spec_from_config(load_experiment('mnist',
                                                              variant)))
    assert 'input_channels=1' in message, message
  spec = specs.spec_from_config(load_experiment('imagenet_perceiver'))
  assert 'projection_decoder=True' in _refusal(spec)


@pytest.mark.parametrize('family', specs.RELEASE_FAMILIES)
def test_full_size_release_architectures_fit_transformers_modules(family):
  """Every released checkpoint's tree (perceiver/release_specs manifests)
  maps onto the transformers module of its class, name for name and shape
  for shape; the learned family with the class's query residual."""
  full = release_specs.load(f'full_{family}')
  spec = specs.clean(full)
  params = None
  if family == 'imagenet_learned':
    spec['config']['decoder']['use_query_residual'] = True
    rows = full['param_manifest'][mapping.LEARNED_POS]['pos_embs']
    params = {mapping.LEARNED_POS: {
        'pos_embs': np.broadcast_to(np.float32(0), rows)}}
  plan = mapping.plan(spec, params, allow_inexact=True)
  shapes = mapping.hf_shapes(spec, full['param_manifest'],
                             full.get('state_manifest'))
  # Every released parameter has its place (and nothing else is mapped).
  assert len(mapping.pairs(spec)[0]) == sum(
      len(v) for v in full['param_manifest'].values())
  export.check_against_module(getattr(transformers, plan.hf_class),
                              transformers.PerceiverConfig(**plan.hf_config),
                              shapes)


def test_missing_extra_is_a_clear_error(monkeypatch):
  monkeypatch.setitem(__import__('sys').modules, 'transformers', None)
  with pytest.raises(ImportError, match=r"pip install -e '\.\[hf\]'"):
    export._transformers()  # pylint: disable=protected-access


def test_core_and_the_weight_mapping_do_not_import_torch():
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ('import sys; import perceiver.builders, perceiver.checkpoint_io, '
          'perceiver.hf.mapping, perceiver.hf.specs, perceiver.hf.load; '
          'print(sorted(m for m in ("torch", "transformers") '
          'if m in sys.modules))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, cwd=REPO, check=True,
                       env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert out.stdout.strip() == '[]', out.stdout + out.stderr


def test_refuses_fourier_input_positions():
  """transformers' text preprocessor has a learned position table only."""
  model = models.get_config('mlm_bytes:smoke',
                            input_position_encoding='fourier')
  with pytest.raises(ValueError, match="input_position_encoding='fourier'"):
    specs.TASK_SPECS['perceiver.tasks.language.mlm'](model)
