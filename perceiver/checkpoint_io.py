"""Reading and writing Perceiver IO checkpoints in DeepMind's release format.

The release files
-----------------
DeepMind's Perceiver IO release (deepmind-research/perceiver, 2021) ships six
pickled checkpoints:

* ``language_perceiver_io_bytes.pickle`` - the masked byte-level language
  model; a params mapping alone.
* ``imagenet_learned_position_encoding.pystate``,
  ``imagenet_fourier_position_encoding.pystate``,
  ``imagenet_conv_preprocessing.pystate`` - ImageNet classifiers; a dict
  ``{'params': ..., 'state': ...}`` (state holds e.g. batch-norm
  statistics, and may be empty).
* ``optical_flow_checkpoint.pystate`` and
  ``video_autoencoding_checkpoint.pystate`` - a params mapping alone, even
  though the extension is ``.pystate``.

A params (or state) mapping is two levels deep: ``{module_path: {name: array}}``,
for example ``params['perceiver_encoder/~/cross_attention/attention/linear']
['w']``. :func:`load_params` accepts all of the layouts above from either
extension and always returns plain dicts of ``numpy.ndarray``, every leaf
numeric (strings and objects are refused). Given the model's tree
(``expected``), it checks names, shapes and dtypes (``allow_cast=True`` casts
bfloat16/float16 weights to float32); weights holding NaN or Inf are refused
with their own message naming the first such entry.
:func:`save_params` writes the same layouts (``.pickle``: params alone;
``.pystate``: ``{'params': ..., 'state': ...}``), so the files it writes load
with ``pickle.load`` in the release's own colabs as well.

What is accepted, and why
-------------------------
Unpickling runs whatever callables the file names, so ``pickle.load`` on a
downloaded file executes code chosen by whoever wrote it. Here every pickle is
read by :class:`RestrictedUnpickler`, which resolves a global only if it is on
a short allowlist and refuses everything else with
:class:`UnsafeCheckpointError` *before* anything is called:

* numpy arrays, dtypes and scalars: ``numpy(._)core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy(._)core.multiarray.scalar`` and
  ``numpy(._)core.numeric._frombuffer`` (how numpy pickles an array under
  protocol 5). Extended float types from ``ml_dtypes`` (``bfloat16`` and
  kin) are accepted as dtypes.
* ``collections.OrderedDict``; plain dicts, lists and tuples need no global.
* ``_codecs.encode``, which protocol-2 pickles use to store bytes, is replaced
  by a local function that only turns a latin-1 ``str`` into ``bytes``.
* ``haiku._src.data_structures.FlatMapping`` (and the older ``frozendict``),
  replaced by a local function that returns a plain ``dict``; Haiku itself is
  never imported for this.

How the 2021 files pickled. Haiku's ``init`` returned a ``FlatMapping``
(renamed ``FlatMap`` later), whose ``__reduce__`` returned
``(FlatMapping, (plain_dict,))``: the file names the global
``haiku._src.data_structures.FlatMapping`` and applies it to a dict whose
values are again FlatMappings (one per module) holding arrays. Current Haiku
pickles its ``FlatMap`` the same way for backward compatibility. (The first
FlatMapping, early 2020, had no ``__reduce__`` and could not be pickled at
all; ``frozendict`` before it pickled as ``(frozendict, (plain_dict,))``.)
jax 0.2.x's ``DeviceArray`` forwarded ``__reduce__`` to its numpy value, so
2021 jax arrays were stored exactly like numpy arrays and need nothing extra.
A current ``jax.Array`` pickles through ``jax._src.array._reconstruct_array``,
which is refused; :func:`save_params` converts to numpy first.

Checksums
---------
:func:`save_params` (and so ``launch/export.py``) writes ``<file>.sha256``
beside the file, one line ``<hex digest>  <file name>`` in the format of
``sha256sum``, so ``sha256sum -c params.pystate.sha256`` checks it in a
shell. :func:`load_params` checks the file against it when it is present
and refuses a damaged file with :class:`CorruptCheckpointError`; pickle has
no checksum of its own, and a flipped bit in array data would otherwise load
as a silently different weight. The release files come without one: they
load as before, with a warning (once per file) that they were not checked.

Glossary
--------
params
    The trainable parameters of a Haiku model, ``{module_path: {name: array}}``.
state
    Haiku's non-trainable mutable state (``hk.get_state``; e.g. batch-norm
    moving averages), same layout; ``{}`` for stateless models.
module path
    The ``/``-joined Haiku module name, ``~`` marking a submodule created
    inside another module's method, e.g. ``mlp/~/linear_0``.
entry
    One leaf, named ``module_path/name`` in messages, e.g. ``mlp/~/linear_0/w``.
FlatMapping
    Haiku's immutable mapping that ``init`` returned in 2021.
global
    A ``module.name`` reference stored in a pickle that unpickling imports and
    usually calls; the only way a pickle can run code.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import pickle
import secrets
import struct
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np

try:  # numpy >= 2 moved numpy.core to numpy._core (numpy.core warns).
  from numpy._core import multiarray as _np_multiarray
  from numpy._core import numeric as _np_numeric
except ImportError:  # pragma: no cover - numpy 1.x
  from numpy.core import multiarray as _np_multiarray
  from numpy.core import numeric as _np_numeric

__all__ = [
    'CheckpointDtypeError',
    'CheckpointError',
    'CheckpointFormatError',
    'CheckpointMismatchError',
    'CorruptCheckpointError',
    'NonFiniteCheckpointError',
    'RestrictedUnpickler',
    'UnsafeCheckpointError',
    'check_dtypes',
    'check_extension',
    'check_finite',
    'check_tree',
    'checksum_path',
    'load_params',
    'restricted_load',
    'save_params',
    'verify_checksum',
    'write_checksum',
]

PICKLE_PROTOCOL = 4  # Readable by Python 3.4+, which covers 3.8+.
EXTENSIONS = ('.pickle', '.pystate')

Tree = dict[str, dict[str, np.ndarray]]

CHECKSUM_SUFFIX = '.sha256'
_CHUNK = 1 << 22  # bytes read at a time while hashing

_log = logging.getLogger(__name__)
_unchecked_reported: set[str] = set()  # files already reported unchecked

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class CheckpointError(Exception):
  """Base class of the errors raised by this module."""


class CorruptCheckpointError(CheckpointError, ValueError):
  """The file's bytes do not match the checksum recorded beside it."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
  """The pickle names a global that is not on the allowlist."""


class CheckpointFormatError(CheckpointError, ValueError):
  """The file is not a checkpoint this module can read or write."""


class CheckpointDtypeError(CheckpointError, ValueError):
  """Entries whose dtype is not the one the model expects.

  Attributes:
    entries: ``[(name, checkpoint_dtype, expected_dtype)]``.
  """

  def __init__(self, message, entries):
    self.entries = entries
    super().__init__(message)


class NonFiniteCheckpointError(CheckpointError, ValueError):
  """The weights hold NaN or Inf (a damaged file or a diverged run)."""


class CheckpointMismatchError(CheckpointError, ValueError):
  """A checkpoint's entries do not match those the model expects.

  Attributes:
    what: ``'params'`` or ``'state'``.
    missing: ``[(name, expected_shape)]`` the model needs but the checkpoint
      lacks.
    unexpected: ``[(name, checkpoint_shape)]`` the checkpoint has but the
      model does not use.
    mismatched: ``[(name, checkpoint_shape, expected_shape)]``.
  """

  def __init__(self, what, missing, unexpected, mismatched):
    self.what = what
    self.missing = missing
    self.unexpected = unexpected
    self.mismatched = mismatched
    super().__init__(_mismatch_message(what, missing, unexpected, mismatched))


# ---------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------


def _plain_dict(mapping: Any) -> dict:
  """Stands in for Haiku's FlatMapping/frozendict: (dict,) -> dict."""
  if not isinstance(mapping, Mapping):
    raise pickle.UnpicklingError('Haiku FlatMapping was pickled with a '
                                 f'{type(mapping).__name__}, expected a dict')
  return dict(mapping)


def _latin1_encode(text: Any, encoding: str = 'latin1') -> bytes:
  """Stands in for ``_codecs.encode`` as protocol-2 pickles use it."""
  if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
    raise UnsafeCheckpointError(
        f'_codecs.encode is only accepted as encode(str, "latin1"), got '
        f'encode({type(text).__name__}, {encoding!r})')
  return text.encode('latin1')


def _build_allowlist() -> dict[tuple[str, str], Any]:
  numpy_globals = {
      'multiarray._reconstruct': _np_multiarray._reconstruct,
      'multiarray.scalar': _np_multiarray.scalar,
      'numeric._frombuffer': _np_numeric._frombuffer,
  }
  allowed: dict[tuple[str, str], Any] = {
      ('numpy', 'ndarray'): np.ndarray,
      ('numpy', 'dtype'): np.dtype,
      ('collections', 'OrderedDict'): collections.OrderedDict,
      ('_codecs', 'encode'): _latin1_encode,
      ('haiku._src.data_structures', 'FlatMapping'): _plain_dict,
      ('haiku._src.data_structures', 'frozendict'): _plain_dict,
  }
  # Files name the numpy module that wrote them: numpy.core before 2.0,
  # numpy._core since. Both resolve to the installed functions.
  for package in ('numpy.core', 'numpy._core'):
    for dotted, fn in numpy_globals.items():
      submodule, name = dotted.split('.')
      allowed[(f'{package}.{submodule}', name)] = fn
  try:
    import ml_dtypes  # Ships with jaxlib; holds bfloat16 and float8s.
  except ImportError:  # pragma: no cover
    pass
  else:
    for name in dir(ml_dtypes):
      value = getattr(ml_dtypes, name)
      if isinstance(value, type) and issubclass(value, np.generic):
        allowed[('ml_dtypes', name)] = value
  return allowed


_ALLOWED_GLOBALS = _build_allowlist()


class RestrictedUnpickler(pickle.Unpickler):
  """Unpickler that resolves only the allowlisted globals (module docstring).

  Everything else raises :class:`UnsafeCheckpointError` naming the global;
  the refusal happens while the name is looked up, before any call, so a
  hostile ``__reduce__`` never runs. Lookups are exact ``(module, name)``
  pairs, so dotted names such as ``ndarray.__init__`` are refused too.
  """

  def find_class(self, module: str, name: str) -> Any:
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      pass
    hint = ''
    if module.startswith('jax'):
      hint = (' (a jax array pickled directly; re-save the tree with '
              'numpy leaves, e.g. via save_params)')
    raise UnsafeCheckpointError(
        f'refusing to load global {module}.{name}{hint}: a checkpoint may '
        'only contain numpy arrays, dicts and Haiku FlatMappings')

  def persistent_load(self, pid: Any) -> Any:
    raise UnsafeCheckpointError(
        f'refusing persistent id {pid!r}: checkpoints have none')


def restricted_load(file: BinaryIO) -> Any:
  """``pickle.load`` through :class:`RestrictedUnpickler`."""
  return RestrictedUnpickler(file).load()


# ---------------------------------------------------------------------------
# Tree handling
# ---------------------------------------------------------------------------


def _as_tree(obj: Any, what: str, source: str, *,
             convert: Callable[[Any], np.ndarray]) -> Tree:
  """Checks the ``{module: {name: array}}`` layout; returns plain dicts."""
  if not isinstance(obj, Mapping):
    raise CheckpointFormatError(
        f'{source}: {what} must be a mapping {{module: {{name: array}}}}, '
        f'got {type(obj).__name__}')
  tree: Tree = {}
  for module, entries in obj.items():
    if not isinstance(module, str):
      raise CheckpointFormatError(
          f'{source}: {what} has a non-string module name {module!r}')
    if not isinstance(entries, Mapping):
      raise CheckpointFormatError(
          f'{source}: {what}[{module!r}] must be a mapping '
          f'{{name: array}}, got {type(entries).__name__}')
    tree[module] = {}
    for name, leaf in entries.items():
      if not isinstance(name, str):
        raise CheckpointFormatError(
            f'{source}: {what}[{module!r}] has a non-string name '
            f'{name!r}')
      array = convert(leaf)
      if (not isinstance(array, np.ndarray) or not _is_numeric(array.dtype)):
        raise CheckpointFormatError(
            f'{source}: {what} entry {module}/{name} must be a numeric '
            f'array, got {type(leaf).__name__}' +
            (f' of dtype {array.dtype}' if isinstance(array, np.ndarray) else ''
            ))
      tree[module][name] = array
  return tree


def _is_numeric(dtype: np.dtype) -> bool:
  """bool, integers, floats, complex, and ml_dtypes' bfloat16/float8/int4;
  not strings, bytes, records or objects."""
  if dtype.kind in 'biufc':
    return True
  return dtype.type.__module__.startswith('ml_dtypes') and not dtype.fields


def _is_float(dtype: np.dtype) -> bool:
  return dtype.kind == 'f' or (dtype.type.__module__.startswith('ml_dtypes') and
                               'float' in dtype.name)


def _loaded_leaf(leaf: Any) -> Any:
  # numpy scalars (np.generic) become 0-d arrays; anything else stays as
  # it is and is rejected by _as_tree.
  return np.asarray(leaf) if isinstance(leaf, np.generic) else leaf


def _flatten(tree: Mapping, prefix: tuple = ()) -> dict[tuple, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, prefix + (key,)))
    else:
      flat[prefix + (key,)] = value
  return flat


def _shape(leaf: Any) -> tuple:
  shape = getattr(leaf, 'shape', None)
  return tuple(shape) if shape is not None else np.shape(leaf)


def _name(path: tuple) -> str:
  return '/'.join(str(part) for part in path)


def _mismatch_message(what, missing, unexpected, mismatched) -> str:
  lines = [
      f'{what} do not match the model: {len(missing)} missing, '
      f'{len(unexpected)} unexpected, {len(mismatched)} with the wrong '
      'shape.'
  ]
  if missing:
    lines.append('  missing from the checkpoint (the model needs them):')
    lines += [f'    {n}  model shape {s}' for n, s in missing]
  if unexpected:
    lines.append('  unexpected in the checkpoint (the model has no such '
                 'entry):')
    lines += [f'    {n}  checkpoint shape {s}' for n, s in unexpected]
  if mismatched:
    lines.append('  wrong shape:')
    lines += [f'    {n}  checkpoint {c} vs model {e}' for n, c, e in mismatched]
  hints = []
  if missing or unexpected:
    hints.append('names differ when the checkpoint belongs to another model or '
                 'config, or a module was renamed (Haiku names come from the '
                 'module class or its name= argument and the nesting of calls)')
  if mismatched:
    hints.append(
        'shapes differ when the model config (widths, heads, latent '
        'count, vocabulary, input size) differs from the checkpoint\'s')
  lines.append('Hint: ' + '; '.join(hints) + '. Build the model with the '
               'config the checkpoint was trained with.')
  return '\n'.join(lines)


def check_tree(actual: Mapping,
               expected: Mapping,
               what: str = 'params') -> None:
  """Raises :class:`CheckpointMismatchError` unless names and shapes agree.

  Args:
    actual: the loaded tree, ``{module: {name: array}}``.
    expected: a tree of the same layout whose leaves have ``.shape``, e.g.
      ``jax.eval_shape(model.init, rng, *inputs)``; dtypes are not compared.
    what: the word used in the message, e.g. ``'params'`` or ``'state'``.

  The error lists every missing, unexpected and mis-shaped entry, in sorted
  order, as ``module_path/name``.
  """
  got = {path: _shape(leaf) for path, leaf in _flatten(actual).items()}
  want = {path: _shape(leaf) for path, leaf in _flatten(expected).items()}
  missing = [(_name(p), want[p]) for p in sorted(want.keys() - got.keys())]
  unexpected = [(_name(p), got[p]) for p in sorted(got.keys() - want.keys())]
  mismatched = [(_name(p), got[p], want[p])
                for p in sorted(got.keys() & want.keys())
                if got[p] != want[p]]
  if missing or unexpected or mismatched:
    raise CheckpointMismatchError(what, missing, unexpected, mismatched)


def check_dtypes(actual: Tree,
                 expected: Mapping,
                 source: str,
                 what: str = 'params',
                 allow_cast: bool = False) -> Tree:
  """Compares each entry's dtype with the model's; returns ``actual``, with
  float entries cast to the model's float dtype when ``allow_cast``.

  Entries absent from either tree, and expected leaves without a
  ``.dtype``, are not compared (:func:`check_tree` checks names and
  shapes).

  Raises:
    CheckpointDtypeError: naming every entry whose dtype differs, e.g. int32
      or bool weights for a float32 model, or bfloat16 weights without
      ``allow_cast``.
  """
  want = _flatten(expected)
  bad, out = [], {}
  for module, entries in actual.items():
    out[module] = {}
    for name, array in entries.items():
      target = getattr(want.get((module, name)), 'dtype', None)
      if target is not None and array.dtype != np.dtype(target):
        target = np.dtype(target)
        if allow_cast and _is_float(array.dtype) and _is_float(target):
          array = array.astype(target)
        else:
          bad.append((f'{module}/{name}', array.dtype, target))
      out[module][name] = array
  if bad:
    bad.sort(key=lambda entry: entry[0])
    lines = [f'    {n}  checkpoint {d} vs model {e}' for n, d, e in bad[:30]]
    if len(bad) > 30:
      lines.append(f'    ... and {len(bad) - 30} more')
    all_float = all(_is_float(d) and _is_float(e) for _, d, e in bad)
    hint = ('Pass allow_cast=True to cast these float weights to the '
            "model's dtype." if all_float else
            'Integer, bool or complex weights cannot stand for float '
            'parameters: this file belongs to another model, or is '
            'damaged.')
    raise CheckpointDtypeError(
        f'{source}: {len(bad)} {what} entries have a dtype the model does '
        'not expect:\n' + '\n'.join(lines) + '\n' + hint, bad)
  return out


def check_finite(tree: Mapping, source: str, what: str = 'params') -> None:
  """Raises :class:`NonFiniteCheckpointError` naming ``source`` and the
  first entry (in sorted order) that holds NaN or Inf."""
  for path, leaf in sorted(_flatten(tree).items()):
    array = np.asarray(leaf)
    if not _is_float(array.dtype) and array.dtype.kind != 'c':
      continue
    if array.dtype.kind not in 'fc':  # ml_dtypes: bfloat16, float8s
      array = array.astype(np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
      raise NonFiniteCheckpointError(
          f'{source}: {what} entry {_name(path)} holds '
          f'{int(bad.sum())} NaN/Inf values of {array.size} (the first '
          'such entry). The file is damaged or was saved from a '
          'diverged run; use another checkpoint (an earlier step, or '
          'the original release file).')


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def check_extension(path: str) -> None:
  """Raises :class:`CheckpointFormatError` unless ``path`` ends in .pickle
  or .pystate."""
  if os.path.splitext(path)[1] not in EXTENSIONS:
    raise CheckpointFormatError(
        f'{path}: expected a {" or ".join(EXTENSIONS)} file (the release '
        'format)')


def checksum_path(path: str | os.PathLike) -> str:
  """``<path>.sha256``: where the checksum of ``path`` is kept."""
  return os.fspath(path) + CHECKSUM_SUFFIX


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    while chunk := f.read(_CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


def write_checksum(path: str | os.PathLike) -> str:
  """Writes ``<path>.sha256`` (``sha256sum`` format: ``<hex>  <name>``,
  the name relative to the checksum file's directory) atomically; returns
  the checksum file's path."""
  path = os.fspath(path)
  line = f'{_sha256(path)}  {os.path.basename(path)}\n'
  target = checksum_path(path)
  tmp = os.path.join(
      os.path.dirname(os.path.abspath(target)),
      f'.{os.path.basename(target)}.{secrets.token_hex(6)}'
      '.tmp')
  try:
    with open(tmp, 'w') as f:
      f.write(line)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, target)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return target


def verify_checksum(path: str | os.PathLike) -> bool:
  """Checks ``path`` against ``<path>.sha256``.

  Returns:
    True when the checksum file exists and matches; False when there is
    none (reported once per file with a warning: release files have none).

  Raises:
    CorruptCheckpointError: the file does not match, or the checksum file
      is not a ``sha256sum`` line for it; the message names both files.
  """
  path = os.fspath(path)
  record = checksum_path(path)
  if not os.path.exists(record):
    key = os.path.abspath(path)
    if key not in _unchecked_reported:
      _unchecked_reported.add(key)
      _log.warning(
          '%s has no checksum file (%s); it is read without '
          'an integrity check (files this project did not '
          'write, such as the release files, have none).', path,
          os.path.basename(record))
    return False
  with open(record, 'rb') as f:
    fields = f.read(4096).split()
  expected = fields[0].decode('ascii', 'replace').lower() if fields else ''
  if (len(fields) != 2 or len(expected) != 64 or
      fields[1].lstrip(b'*') != os.path.basename(path).encode()):
    raise CorruptCheckpointError(
        f'{path}: its checksum file {record} is not a sha256sum line '
        f'"<64 hex digits>  {os.path.basename(path)}"; the file cannot '
        'be checked. Restore both files from a good copy.')
  actual = _sha256(path)
  if actual != expected:
    raise CorruptCheckpointError(
        f'{path} is damaged: its SHA-256 is {actual}, but {record} '
        f'records {expected} (written when the file was saved). It was '
        'not loaded; restore it from a good copy or export it again.')
  return True


def _is_bundle(obj: Mapping) -> bool:
  """``{'params': ..., 'state': ...}`` rather than a bare params mapping."""
  return 'params' in obj and set(obj) <= {'params', 'state'}


def load_params(path: str | os.PathLike,
                expected: Mapping | None = None,
                expected_state: Mapping | None = None,
                *,
                allow_cast: bool = False,
                allow_non_finite: bool = False) -> tuple[Tree, Tree]:
  """Reads a release checkpoint safely; returns ``(params, state)``.

  Args:
    path: a ``.pickle`` or ``.pystate`` file holding either a params mapping
      or ``{'params': ..., 'state': ...}``.
    expected: optional params tree with ``.shape`` leaves (e.g. from
      ``jax.eval_shape`` of the model's ``init``) to check against.
    expected_state: the same for the state.
    allow_cast: with ``expected``, cast float entries (e.g. bfloat16 or
      float16 weights) to the expected float dtype instead of refusing
      them. Integer/bool entries are never cast to floats.
    allow_non_finite: accept float entries holding NaN or Inf (refused by
      default, naming the first such entry).

  Returns:
    Plain nested dicts of numpy arrays; ``state`` is ``{}`` when the file has
    none. Every leaf is numeric (bool, integer, float, complex); with
    ``expected``, of the expected dtypes.

  Raises:
    FileNotFoundError: no file at ``path``.
    UnsafeCheckpointError: the pickle names a global outside the allowlist.
    CorruptCheckpointError: the file does not match the checksum recorded
      beside it (``<path>.sha256``); a file without one is read unchecked,
      with a warning.
    CheckpointFormatError: wrong extension, a corrupted or truncated pickle,
      or content of the wrong type (strings, objects).
    CheckpointMismatchError: ``expected``/``expected_state`` disagree on
      names or shapes.
    CheckpointDtypeError: they disagree on dtypes.
    NonFiniteCheckpointError: a float entry holds NaN or Inf.
  """
  path = os.fspath(path)
  check_extension(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'no checkpoint at {path}')
  verify_checksum(path)
  with open(path, 'rb') as f:
    try:
      obj = restricted_load(f)
    except UnsafeCheckpointError as e:
      raise UnsafeCheckpointError(f'{path}: {e}') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, struct.error, OverflowError,
            UnicodeDecodeError, MemoryError, RecursionError) as e:
      # A garbled length field makes pickle allocate absurd sizes
      # (MemoryError) or nest without end (RecursionError).
      raise CheckpointFormatError(
          f'{path}: not a readable pickle (corrupted or truncated?): '
          f'{type(e).__name__}: {e}') from e

  if not isinstance(obj, Mapping):
    raise CheckpointFormatError(
        f'{path}: expected a params mapping {{module: {{name: array}}}} or '
        f"{{'params': ..., 'state': ...}}, got {type(obj).__name__}")
  if _is_bundle(obj):
    raw_params, raw_state = obj['params'], obj.get('state')
  else:
    raw_params, raw_state = obj, None
  params = _as_tree(raw_params, 'params', path, convert=_loaded_leaf)
  state = ({} if raw_state is None else _as_tree(
      raw_state, 'state', path, convert=_loaded_leaf))

  if expected is not None:
    check_tree(params, expected, 'params')
    params = check_dtypes(params, expected, path, 'params', allow_cast)
  if expected_state is not None:
    check_tree(state, expected_state, 'state')
    state = check_dtypes(state, expected_state, path, 'state', allow_cast)
  if not allow_non_finite:
    check_finite(params, path, 'params')
    check_finite(state, path, 'state')
  return params, state


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------


def _atomic_write(path: str, payload: Any) -> None:
  """Pickles ``payload`` to a temporary file, then renames it onto ``path``
  and writes ``<path>.sha256``.

  A reader never sees a partial file, and a failed write leaves an existing
  checkpoint untouched. The temporary file lives in the same directory (a
  rename is only atomic within one file system) and is created with the
  usual umask-derived permissions.
  """
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'no directory {directory} to write {path}')
  tmp = os.path.join(directory,
                     f'.{os.path.basename(path)}.{secrets.token_hex(6)}.tmp')
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, 'wb') as f:
      pickle.Pickler(f, protocol=PICKLE_PROTOCOL).dump(payload)
      f.flush()
      os.fsync(f.fileno())
    # An old checksum goes first: a crash between the two renames leaves
    # a file without a checksum (read with a warning), never a new file
    # beside the old file's checksum (refused as damaged).
    if os.path.exists(checksum_path(path)):
      os.unlink(checksum_path(path))
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except FileNotFoundError:
      pass
    raise
  write_checksum(path)


def save_params(path: str | os.PathLike,
                params: Mapping,
                state: Mapping | None = None) -> None:
  """Writes params (and state) in the release format, atomically.

  ``.pickle`` holds the params mapping alone (so ``state`` must be empty);
  ``.pystate`` holds ``{'params': params, 'state': state or {}}``. Leaves
  are converted with ``np.asarray`` (jax arrays included) and mappings
  (Haiku's FlatMap included) to plain dicts; the pickle uses protocol 4 and
  names only numpy and builtin types, so plain ``pickle.load`` and
  :func:`load_params` both read it. ``<path>.sha256`` is written beside it
  (``sha256sum -c`` format), which :func:`load_params` checks.
  """
  path = os.fspath(path)
  check_extension(path)
  params = _as_tree(params, 'params', path, convert=np.asarray)
  state = _as_tree(state or {}, 'state', path, convert=np.asarray)
  if path.endswith('.pickle'):
    if state:
      raise CheckpointFormatError(
          f'{path}: a .pickle checkpoint holds params only; save a '
          'model with state to a .pystate file')
    payload: Any = params
  else:
    payload = {'params': params, 'state': state}
  _atomic_write(path, payload)
