"""Tests for perceiver.checkpoint_io (release-format checkpoint reading/writing)."""
import builtins
import collections
import io
import os
import pickle
import pickletools
import struct

import haiku as hk
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from perceiver import checkpoint_io
from perceiver.checkpoint_io import (CheckpointFormatError,
                                     CheckpointMismatchError,
                                     UnsafeCheckpointError, check_tree,
                                     load_params, save_params)


def assert_bit_identical(actual, expected):
  """Same nested keys; every leaf the same dtype, shape and bytes."""
  assert type(actual) is dict
  assert actual.keys() == expected.keys()
  for key, value in expected.items():
    if isinstance(value, dict):
      assert_bit_identical(actual[key], value)
    else:
      want = np.asarray(value)
      got = actual[key]
      assert type(got) is np.ndarray, key
      assert got.dtype == want.dtype, key
      assert got.shape == want.shape, key
      assert got.tobytes() == want.tobytes(), key


def sample_params():
  # 'b' holds NaN and Inf on purpose (special values survive bit for bit);
  # reading it back needs allow_non_finite=True.
  rng = np.random.default_rng(0)
  return {
      'encoder/~/linear': {
          'w': rng.standard_normal((3, 5)).astype(np.float32),
          'b': np.array([np.nan, -0.0, np.inf, 1e-40, 2.5], np.float32),
      },
      'encoder/~/embed': {
          'embeddings': rng.standard_normal((4, 2)).astype(np.float16),
          'ids': np.arange(6, dtype=np.int32).reshape(2, 3),
          'mask': np.array([True, False]),
          'bf16': rng.standard_normal(3).astype(ml_dtypes.bfloat16),
          'scalar': np.array(7.0, np.float64),
          'fortran': np.asfortranarray(np.arange(6.0).reshape(2, 3)),
      },
  }


def sample_state():
  return {
      'batch_norm/~/mean_ema': {
          'counter': np.array(3, np.int32),
          'hidden': np.ones((1, 5), np.float32),
          'average': np.full((1, 5), 0.5, np.float32),
      },
  }


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


def test_pickle_round_trip_is_bit_exact(tmp_path):
  path = tmp_path / 'language.pickle'
  save_params(path, sample_params())
  params, state = load_params(path, allow_non_finite=True)
  assert_bit_identical(params, sample_params())
  assert state == {}


def test_pystate_round_trip_is_bit_exact(tmp_path):
  path = tmp_path / 'imagenet.pystate'
  save_params(path, sample_params(), sample_state())
  params, state = load_params(path, allow_non_finite=True)
  assert_bit_identical(params, sample_params())
  assert_bit_identical(state, sample_state())


def test_saved_files_are_in_release_format(tmp_path):
  # Plain pickle (as the release colabs read the files) sees plain dicts of
  # numpy arrays, in the layout of the release; protocol 4 (3.8+ readable).
  save_params(tmp_path / 'a.pickle', sample_params())
  save_params(tmp_path / 'b.pystate', sample_params(), sample_state())
  raw_pickle = (tmp_path / 'a.pickle').read_bytes()
  raw_pystate = (tmp_path / 'b.pystate').read_bytes()
  assert raw_pickle[:2] == raw_pystate[:2] == b'\x80\x04'
  assert_bit_identical(pickle.loads(raw_pickle), sample_params())
  bundle = pickle.loads(raw_pystate)
  assert set(bundle) == {'params', 'state'}
  assert_bit_identical(bundle['params'], sample_params())
  assert_bit_identical(bundle['state'], sample_state())


def test_save_converts_jax_arrays_and_flatmaps(tmp_path):
  params = jax.tree.map(jnp.asarray, sample_params())
  state = jax.tree.map(jnp.asarray, sample_state())
  path = tmp_path / 'p.pystate'
  save_params(path, hk.data_structures.to_immutable_dict(params), state)
  loaded, loaded_state = load_params(path, allow_non_finite=True)
  assert_bit_identical(loaded, jax.tree.map(np.asarray, params))
  assert_bit_identical(loaded_state, jax.tree.map(np.asarray, state))


def test_pystate_holding_params_alone_loads_with_empty_state(tmp_path):
  # optical_flow_checkpoint.pystate and video_autoencoding_checkpoint.pystate
  # hold a bare params mapping.
  path = tmp_path / 'optical_flow_checkpoint.pystate'
  path.write_bytes(pickle.dumps(sample_params(), protocol=4))
  params, state = load_params(path, allow_non_finite=True)
  assert_bit_identical(params, sample_params())
  assert state == {}


@pytest.mark.slow
def test_round_trip_of_haiku_model_gives_identical_outputs(tmp_path):
  model = hk.without_apply_rng(
      hk.transform(lambda x: hk.nets.MLP([16, 8, 4])(x)))
  x = jax.random.normal(jax.random.key(1), (5, 3))
  params = model.init(jax.random.key(0), x)
  path = tmp_path / 'mlp.pickle'
  save_params(path, params)
  loaded, _ = load_params(
      path, expected=jax.eval_shape(model.init, jax.random.key(0), x))
  np.testing.assert_array_equal(model.apply(loaded, x), model.apply(params, x))


def test_round_trip_of_stateful_haiku_model(tmp_path):

  def forward(x, is_training):
    x = hk.nets.MLP([8, 4])(x)
    return hk.BatchNorm(True, True, 0.9)(x, is_training)

  model = hk.transform_with_state(forward)
  rng = jax.random.key(0)
  x = jax.random.normal(jax.random.key(1), (6, 3))
  params, state = model.init(rng, x, True)
  _, state = model.apply(params, state, None, x, True)  # Non-trivial EMAs.
  path = tmp_path / 'bn.pystate'
  save_params(path, params, state)

  want_params, want_state = jax.eval_shape(
      lambda rng, x: model.init(rng, x, True), rng, x)
  loaded, loaded_state = load_params(
      path, expected=want_params, expected_state=want_state)
  out, _ = model.apply(loaded, loaded_state, None, x, False)
  ref, _ = model.apply(params, state, None, x, False)
  np.testing.assert_array_equal(out, ref)


# ---------------------------------------------------------------------------
# 2021-style files: Haiku FlatMapping, numpy 1.x, old protocols
# ---------------------------------------------------------------------------
#
# The release files were pickled in 2021 from Haiku's FlatMapping, whose
# __reduce__ was `return FlatMapping, (self._to_mapping(),)`. pickle therefore
# wrote: the global haiku._src.data_structures.FlatMapping, a dict, TUPLE1 and
# REDUCE, with one such FlatMapping per module nested inside the outer one.
# jax 0.2.x's DeviceArray forwarded __reduce__ to its numpy value, so each
# leaf is an ordinary ndarray pickle, and numpy 1.x named its reconstructor
# numpy.core.multiarray._reconstruct. The helpers below assemble exactly that
# opcode stream by hand (protocol 2, which stores bytes via _codecs.encode), so
# the test needs neither the original file nor a 2021 Haiku.


def _op_global(module, name):
  """The GLOBAL opcode: 'c' module '\\n' name '\\n'."""
  return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def _op_str(text):
  """BINUNICODE: 'X', 4-byte little-endian length, utf-8 bytes."""
  data = text.encode()
  return b'X' + struct.pack('<I', len(data)) + data


def _op_ndarray_numpy1(array):
  """An ndarray's protocol-2 opcodes as numpy 1.x wrote them (no PROTO/STOP).

  Pickled without a memo (Pickler.fast) so the fragments can be concatenated.
  """
  buffer = io.BytesIO()
  pickler = pickle.Pickler(buffer, protocol=2)
  pickler.fast = True
  pickler.dump(array)
  data = buffer.getvalue()
  assert data[:2] == b'\x80\x02' and data[-1:] == b'.'
  return data[2:-1].replace(b'cnumpy._core.multiarray\n',
                            b'cnumpy.core.multiarray\n')


def _op_flat_mapping(items):
  """FlatMapping.__reduce__ -> (FlatMapping, ({k: v, ...},)): GLOBAL,
  EMPTY_DICT, MARK, key/value pairs, SETITEMS, TUPLE1, REDUCE."""
  out = _op_global('haiku._src.data_structures', 'FlatMapping')
  out += b'}('
  for key, value_ops in items:
    out += _op_str(key) + value_ops
  return out + b'u' + b'\x85' + b'R'


def _flat_mapping_pickle(params):
  modules = [(module,
              _op_flat_mapping([(name, _op_ndarray_numpy1(array))
                                for name, array in entries.items()]))
             for module, entries in params.items()]
  data = b'\x80\x02' + _op_flat_mapping(modules) + b'.'
  pickletools.dis(data, out=io.StringIO())  # Self-check: well formed.
  return data


def _globals_named(data):
  names = []

  class Recorder(pickle.Unpickler):

    def find_class(self, module, name):
      names.append((module, name))
      return checkpoint_io.RestrictedUnpickler.find_class(self, module, name)

  Recorder(io.BytesIO(data)).load()
  return names


def test_loads_hand_built_2021_flatmapping_pickle(tmp_path):
  params = sample_params()
  data = _flat_mapping_pickle(params)
  assert ('haiku._src.data_structures', 'FlatMapping') in _globals_named(data)
  assert ('numpy.core.multiarray', '_reconstruct') in _globals_named(data)
  assert ('_codecs', 'encode') in _globals_named(data)

  path = tmp_path / 'language_perceiver_io_bytes.pickle'
  path.write_bytes(data)
  loaded, state = load_params(path, allow_non_finite=True)
  assert_bit_identical(loaded, params)
  assert state == {}

  bundle = (b'\x80\x02}(' + _op_str('params') + data[2:-1] + _op_str('state') +
            b'}u.')
  path = tmp_path / 'imagenet_conv_preprocessing.pystate'
  path.write_bytes(bundle)
  loaded, state = load_params(path, allow_non_finite=True)
  assert_bit_identical(loaded, params)
  assert state == {}


@pytest.mark.parametrize('protocol', [2, 3, 4, 5])
def test_loads_flatmap_pickled_by_installed_haiku(tmp_path, protocol):
  # Current Haiku still reduces its FlatMap to the 2021 global, and with
  # protocols 4-5 pickle uses STACK_GLOBAL and numpy's _frombuffer.
  flat = hk.data_structures.to_immutable_dict(sample_params())
  data = pickle.dumps(flat, protocol=protocol)
  assert ('haiku._src.data_structures', 'FlatMapping') in _globals_named(data)
  path = tmp_path / 'p.pystate'
  path.write_bytes(data)
  loaded, _ = load_params(path, allow_non_finite=True)
  assert_bit_identical(loaded, sample_params())


def test_loads_ordered_dicts_and_numpy_scalars(tmp_path):
  raw = collections.OrderedDict(
      linear=collections.OrderedDict(w=np.float32(1.5), b=np.int64(-2)))
  path = tmp_path / 'p.pickle'
  path.write_bytes(pickle.dumps(raw, protocol=2))
  params, _ = load_params(path)
  assert type(params) is dict and type(params['linear']) is dict
  assert_bit_identical(
      params,
      {'linear': {
          'w': np.array(1.5, np.float32),
          'b': np.array(-2, np.int64)
      }})


# ---------------------------------------------------------------------------
# Refusing unsafe pickles
# ---------------------------------------------------------------------------


class _RunsCode:
  """Pickles as a call fn(arg): what a hostile checkpoint would contain."""

  def __init__(self, fn, arg):
    self.fn, self.arg = fn, arg

  def __reduce__(self):
    return self.fn, (self.arg,)


@pytest.mark.parametrize(
    'make_payload, refused',
    [
        (lambda marker: _RunsCode(os.system, f'touch {marker}'),
         rf'{os.system.__module__}\.system'),
        (lambda marker: _RunsCode(builtins.eval, f'open({str(marker)!r}, "w")'),
         r'(builtins|__builtin__)\.eval'),  # Protocol 2 writes __builtin__.
        # Hidden as one leaf of a legitimate-looking checkpoint.
        (lambda marker: {
            'linear': {
                'w': np.zeros(2),
                'b': _RunsCode(builtins.exec, f'open({str(marker)!r}, "w")')
            }
        }, r'(builtins|__builtin__)\.exec'),
    ])
@pytest.mark.parametrize('protocol', [2, 4])
def test_refuses_malicious_pickle_without_running_it(tmp_path, make_payload,
                                                     refused, protocol):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'evil.pickle'
  path.write_bytes(pickle.dumps(make_payload(marker), protocol=protocol))
  with pytest.raises(UnsafeCheckpointError, match=refused) as info:
    load_params(path)
  assert isinstance(info.value, pickle.UnpicklingError)
  assert str(path) in str(info.value)
  assert not marker.exists()


@pytest.mark.parametrize(
    'module, name',
    [
        ('numpy', 'dtype.__class__'),  # Dotted-name traversal (protocol 4).
        ('numpy', 'load'),  # Allowed module, other name.
        ('haiku._src.data_structures', 'Stack'),
        ('jax._src.array', '_reconstruct_array'),
        ('builtins', 'getattr'),
    ])
def test_refuses_every_global_off_the_allowlist(module, name):
  data = b'\x80\x04' + _op_global(module, name) + b'.'
  with pytest.raises(UnsafeCheckpointError, match=f'{module}.{name}'):
    checkpoint_io.restricted_load(io.BytesIO(data))


def test_refuses_jax_array_pickle_with_a_hint(tmp_path):
  path = tmp_path / 'jax.pickle'
  path.write_bytes(pickle.dumps({'m': {'w': jnp.ones(2)}}))
  with pytest.raises(UnsafeCheckpointError, match='save_params'):
    load_params(path)


def test_codecs_stand_in_only_decodes_latin1():
  payload = (b'\x80\x02' + _op_global('_codecs', 'encode') + _op_str('x') +
             _op_str('rot13') + b'\x86R.')
  with pytest.raises(UnsafeCheckpointError, match='rot13'):
    checkpoint_io.restricted_load(io.BytesIO(payload))


# ---------------------------------------------------------------------------
# Mismatch reporting
# ---------------------------------------------------------------------------


def _shapes(tree):
  return {
      m: {
          n: jax.ShapeDtypeStruct(s, jnp.float32) for n, s in e.items()
      } for m, e in tree.items()
  }


CHECKPOINT_SHAPES = {
    'mlp/~/linear_0': {
        'w': (3, 16),
        'b': (16,)
    },
    'mlp/~/linear_1': {
        'w': (16, 4),
        'b': (4,)
    },
    'old_head': {
        'w': (4, 10)
    },
}
MODEL_SHAPES = {
    'mlp/~/linear_0': {
        'w': (3, 8),
        'b': (8,)
    },
    'mlp/~/linear_1': {
        'w': (8, 4),
        'b': (4,)
    },
    'layer_norm': {
        'scale': (4,),
        'offset': (4,)
    },
}


def test_mismatch_lists_every_missing_unexpected_and_misshaped_entry(tmp_path):
  path = tmp_path / 'p.pickle'
  save_params(
      path, {
          m: {
              n: np.zeros(s, np.float32) for n, s in e.items()
          } for m, e in CHECKPOINT_SHAPES.items()
      })
  with pytest.raises(CheckpointMismatchError) as info:
    load_params(path, expected=_shapes(MODEL_SHAPES))
  err = info.value
  assert err.what == 'params'
  assert err.missing == [('layer_norm/offset', (4,)),
                         ('layer_norm/scale', (4,))]
  assert err.unexpected == [('old_head/w', (4, 10))]
  assert err.mismatched == [('mlp/~/linear_0/b', (16,), (8,)),
                            ('mlp/~/linear_0/w', (3, 16), (3, 8)),
                            ('mlp/~/linear_1/w', (16, 4), (8, 4))]
  message = str(err)
  assert '2 missing, 1 unexpected, 3 with the wrong shape' in message
  for line in [
      'layer_norm/offset  model shape (4,)',
      'layer_norm/scale  model shape (4,)',
      'old_head/w  checkpoint shape (4, 10)',
      'mlp/~/linear_0/b  checkpoint (16,) vs model (8,)',
      'mlp/~/linear_0/w  checkpoint (3, 16) vs model (3, 8)',
      'mlp/~/linear_1/w  checkpoint (16, 4) vs model (8, 4)', 'Hint:'
  ]:
    assert line in message
  assert 'mlp/~/linear_1/b' not in message  # Matching entries stay quiet.


def test_check_tree_alone_and_for_state():
  actual = {'m': {'w': np.zeros((2, 3))}}
  check_tree(actual, {'m': {'w': jax.ShapeDtypeStruct((2, 3), jnp.int8)}})
  with pytest.raises(CheckpointMismatchError, match=r'^state do not') as info:
    check_tree(actual, {'m': {'w': np.zeros((3, 2))}}, what='state')
  assert info.value.mismatched == [('m/w', (2, 3), (3, 2))]


def test_expected_state_is_checked(tmp_path):
  path = tmp_path / 's.pystate'
  save_params(path, {'m': {'w': np.zeros(2)}}, sample_state())
  with pytest.raises(CheckpointMismatchError) as info:
    load_params(path, expected_state={})
  assert info.value.what == 'state'
  assert [n for n, _ in info.value.unexpected] == [
      'batch_norm/~/mean_ema/average', 'batch_norm/~/mean_ema/counter',
      'batch_norm/~/mean_ema/hidden'
  ]


# ---------------------------------------------------------------------------
# Clear errors
# ---------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
  path = tmp_path / 'nowhere' / 'ckpt.pystate'
  with pytest.raises(FileNotFoundError, match=str(path)):
    load_params(path)


@pytest.mark.parametrize('name', ['ckpt.pkl', 'ckpt.npz', 'ckpt'])
def test_wrong_extension(tmp_path, name):
  with pytest.raises(CheckpointFormatError, match=r'\.pickle or \.pystate'):
    load_params(tmp_path / name)
  with pytest.raises(CheckpointFormatError, match=r'\.pickle or \.pystate'):
    save_params(tmp_path / name, {})


@pytest.mark.parametrize(
    'damage',
    [
        lambda data: data[:len(data) // 2],  # Truncated download.
        lambda data: data[:-1],  # Lost the STOP opcode.
        lambda data: b'',  # Empty file.
        lambda data: b'<html>404</html>',  # An error page saved as the file.
    ])
def test_corrupted_or_truncated_pickle(tmp_path, damage):
  good = tmp_path / 'good.pystate'
  save_params(good, sample_params(), sample_state())
  bad = tmp_path / 'bad.pystate'
  bad.write_bytes(damage(good.read_bytes()))
  with pytest.raises(
      CheckpointFormatError, match='corrupted or truncated') as info:
    load_params(bad)
  assert str(bad) in str(info.value)


@pytest.mark.parametrize('content, complaint', [
    ([1, 2], 'got list'),
    (np.zeros(3), 'got ndarray'),
    ({
        'linear': np.zeros(3)
    }, r"params\['linear'\] must be a mapping"),
    ({
        'linear': {
            'w': 'text'
        }
    }, 'linear/w must be a numeric array, got str'),
    ({
        'linear': {
            'w': np.array([None])
        }
    }, 'linear/w .* dtype object'),
    ({
        'params': {
            'm': {
                'w': np.zeros(1)
            }
        },
        'state': [1]
    }, 'state must be a mapping'),
    ({
        3: {
            'w': np.zeros(1)
        }
    }, 'non-string module name 3'),
])
def test_content_of_the_wrong_type(tmp_path, content, complaint):
  path = tmp_path / 'p.pickle'
  path.write_bytes(pickle.dumps(content, protocol=4))
  with pytest.raises(CheckpointFormatError, match=complaint):
    load_params(path)


def test_pickle_file_cannot_hold_state(tmp_path):
  with pytest.raises(CheckpointFormatError, match='.pystate'):
    save_params(tmp_path / 'p.pickle', sample_params(), sample_state())
  assert not os.listdir(tmp_path)


def test_save_rejects_non_array_leaves(tmp_path):
  with pytest.raises(CheckpointFormatError, match='m/w'):
    save_params(tmp_path / 'p.pickle', {'m': {'w': object()}})


def test_failed_save_keeps_the_old_file_and_leaves_no_temp(
    tmp_path, monkeypatch):
  path = tmp_path / 'ckpt.pystate'
  save_params(path, sample_params(), sample_state())
  before = path.read_bytes()

  class FailingPickler:

    def __init__(self, file, protocol):
      self.file = file

    def dump(self, obj):
      self.file.write(b'\x80\x04partial')
      raise OSError('disk full')

  monkeypatch.setattr(checkpoint_io.pickle, 'Pickler', FailingPickler)
  with pytest.raises(OSError, match='disk full'):
    save_params(path, {'m': {'w': np.zeros(1)}})
  assert path.read_bytes() == before
  assert sorted(os.listdir(tmp_path)) == ['ckpt.pystate', 'ckpt.pystate.sha256']
  checkpoint_io.verify_checksum(path)  # the old checksum: the old file


def test_save_leaves_no_temp_and_overwrites(tmp_path):
  path = tmp_path / 'ckpt.pickle'
  save_params(path, {'m': {'w': np.zeros(1)}})
  save_params(str(path), sample_params())
  assert sorted(os.listdir(tmp_path)) == ['ckpt.pickle', 'ckpt.pickle.sha256']
  assert_bit_identical(
      load_params(str(path), allow_non_finite=True)[0], sample_params())


# ---------------------------------------------------------------------------
# Checksums: <file>.sha256 beside what save_params writes
# ---------------------------------------------------------------------------


def _big_params():
  rng = np.random.default_rng(0)
  return {'m': {'w': rng.standard_normal((64, 64)).astype(np.float32)}}


def test_save_writes_a_sha256sum_checksum(tmp_path):
  import hashlib  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'params.pystate'
  save_params(path, sample_params(), sample_state())
  digest = hashlib.sha256(path.read_bytes()).hexdigest()
  assert (tmp_path / 'params.pystate.sha256').read_text() == (
      f'{digest}  params.pystate\n')
  if shutil.which('sha256sum'):
    subprocess.run(['sha256sum', '-c', 'params.pystate.sha256'],
                   cwd=tmp_path,
                   check=True,
                   capture_output=True)
  assert checkpoint_io.verify_checksum(path)


def test_flipped_bytes_in_array_data_are_refused_naming_the_file(tmp_path):
  path = tmp_path / 'params.pystate'
  params = _big_params()
  save_params(path, params)
  data = bytearray(path.read_bytes())
  start = data.find(params['m']['w'].tobytes()[:64]) + 1000
  assert start > 1000  # inside the array's bytes
  data[start:start + 20] = bytes(b ^ 0x5A for b in data[start:start + 20])
  path.write_bytes(bytes(data))
  with pytest.raises(
      checkpoint_io.CorruptCheckpointError,
      match=f'{path} is damaged: its SHA-256 is'):
    load_params(path)
  # Without the checksum the same bytes load as different weights.
  os.remove(tmp_path / 'params.pystate.sha256')
  loaded, _ = load_params(path)
  assert not np.array_equal(loaded['m']['w'], params['m']['w'])


def test_garbled_checksum_file_is_refused_naming_both(tmp_path):
  path = tmp_path / 'params.pickle'
  save_params(path, sample_params())
  (tmp_path / 'params.pickle.sha256').write_text('not a checksum\n')
  with pytest.raises(
      checkpoint_io.CorruptCheckpointError,
      match=f'{path}: its checksum file {path}.sha256 is not'):
    load_params(path, allow_non_finite=True)


def test_file_without_checksum_loads_and_says_so_once(tmp_path, caplog):
  """Release files have no checksum: they load, with one warning."""
  path = tmp_path / 'release.pickle'
  path.write_bytes(pickle.dumps(_big_params(), protocol=4))
  with caplog.at_level('WARNING', logger='perceiver.checkpoint_io'):
    for _ in range(2):
      params, _ = load_params(path)
      assert_bit_identical(params, _big_params())
  notes = [
      r.getMessage()
      for r in caplog.records
      if 'has no checksum file' in r.getMessage()
  ]
  assert notes == [
      f'{path} has no checksum file (release.pickle.sha256); it is read '
      'without an integrity check (files this project did not write, such '
      'as the release files, have none).'
  ]


# ---------------------------------------------------------------------------
# Dtypes and values: nothing silently accepted
# ---------------------------------------------------------------------------


def _float_model():
  return {
      'm': {
          'w': jax.ShapeDtypeStruct((2, 3), jnp.float32),
          'b': jax.ShapeDtypeStruct((3,), jnp.float32)
      }
  }


def test_integer_weights_for_a_float_model_are_refused(tmp_path):
  path = tmp_path / 'ints.pickle'
  save_params(
      path,
      {'m': {
          'w': np.ones((2, 3), np.int32),
          'b': np.zeros(3, np.float32)
      }})
  with pytest.raises(checkpoint_io.CheckpointDtypeError) as info:
    load_params(path, expected=_float_model())
  message = str(info.value)
  assert str(path) in message
  assert 'm/w  checkpoint int32 vs model float32' in message
  assert 'm/b' not in message  # the float entry is fine
  assert 'cannot stand for float' in message
  with pytest.raises(checkpoint_io.CheckpointDtypeError):
    load_params(path, expected=_float_model(), allow_cast=True)


def test_string_leaves_are_refused_with_or_without_the_model(tmp_path):
  path = tmp_path / 'text.pickle'
  path.write_bytes(pickle.dumps({'m': {'w': np.array(['a', 'bc'])}}))
  for expected in (None, _float_model()):
    with pytest.raises(
        CheckpointFormatError,
        match=r'm/w must be a numeric array, got ndarray '
        r'of dtype <U2'):
      load_params(path, expected=expected)


def test_half_precision_weights_need_allow_cast(tmp_path):
  path = tmp_path / 'bf16.pickle'
  w = np.arange(6, dtype=np.float32).reshape(2, 3)
  save_params(
      path,
      {'m': {
          'w': w.astype(ml_dtypes.bfloat16),
          'b': np.ones(3, np.float16)
      }})
  with pytest.raises(
      checkpoint_io.CheckpointDtypeError,
      match=r'(?s)m/b  checkpoint float16 vs model float32.*'
      r'm/w  checkpoint bfloat16 vs model float32.*'
      'allow_cast=True'):
    load_params(path, expected=_float_model())
  params, _ = load_params(path, expected=_float_model(), allow_cast=True)
  assert params['m']['w'].dtype == np.float32
  np.testing.assert_array_equal(params['m']['w'], w)  # exact in bf16


def test_nan_or_inf_weights_name_the_file_and_first_entry(tmp_path):
  path = tmp_path / 'diverged.pystate'
  bad = np.ones((2, 3), np.float32)
  bad[1, 2] = np.nan
  save_params(
      path, {
          'm': {
              'w': bad,
              'b': np.zeros(3, np.float32)
          },
          'z': {
              'w': np.full(2, np.inf, np.float32)
          }
      })
  with pytest.raises(
      checkpoint_io.NonFiniteCheckpointError,
      match=r'diverged\.pystate: params entry m/w holds 1 '
      r'NaN/Inf values of 6.*use another checkpoint'):
    load_params(path)
  params, _ = load_params(path, allow_non_finite=True)
  assert np.isnan(params['m']['w'][1, 2])


def test_garbled_length_field_is_a_format_error_not_a_memory_error(tmp_path):
  # BINBYTES8 announcing 2**62 bytes: pickle tries to allocate them.
  path = tmp_path / 'garbled.pickle'
  path.write_bytes(b'\x80\x04\x8e' + struct.pack('<Q', 2**62) + b'.')
  with pytest.raises(
      CheckpointFormatError,
      match=r'garbled\.pickle: not a readable pickle '
      r'\(corrupted or truncated\?\): MemoryError'):
    load_params(path)
