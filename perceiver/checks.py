"""Argument checks at the modules' entry points: one clear error each.

Glossary of shapes: B batch, M input elements, T tokens, V vocabulary.

Constructors check their sizes (`positive`, `positive_dims`); `__call__`
entry points check static shapes (`non_empty`) and token ids (`token_ids`).
Every check reads Python values, shapes and dtypes at construction or trace
time, so nothing is added to the compiled computation. `keyword_arguments`
makes an unknown keyword argument to a module or builder name the closest
valid one (`closest_name`, also used by perceiver.train.config_lib). The one value check,
token ids in [0, V), runs only on concrete arrays (outside `jax.jit`): under
jit the ids are tracers, and `hk.Embed` (`jnp.take`) clamps an id outside
[0, V) to the nearest valid one without an error. Check ids before a jitted
call with `token_ids` (or run the model once eagerly).
"""
import difflib
import functools
import inspect
import numbers
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np


def _is_positive_int(value: Any) -> bool:
  return (not isinstance(value, bool) and isinstance(value, numbers.Integral)
          and value >= 1)


def positive(owner: str, **arguments: Any) -> None:
  """Raises ValueError naming the first argument that is not a positive
  integer; None (the default of an optional size) is skipped."""
  for name, value in arguments.items():
    if value is not None and not _is_positive_int(value):
      raise ValueError(f'{owner}: {name} must be a positive integer, got '
                       f'{value!r}.')


def positive_dims(owner: str, name: str,
                  dims: Optional[Union[int, Sequence[int]]]) -> None:
  """Index dims (an int or a sequence of ints) must all be positive."""
  if dims is None:
    return
  values = (dims,) if isinstance(dims, numbers.Integral) else tuple(dims)
  if not values or not all(_is_positive_int(d) for d in values):
    raise ValueError(f'{owner}: {name} must be positive integers (an index '
                     f'size per dimension), got {dims!r}.')


def non_empty(owner: str, name: str, x: Any, axes: Mapping[int, str],
              fix: str = '') -> None:
  """Raises if x (an array, or a tree of arrays) has size 0 on one of `axes`
  ({axis: letter of the glossary})."""
  for leaf in jax.tree.leaves(x):
    shape = tuple(np.shape(leaf))
    for axis, letter in axes.items():
      if len(shape) > axis and shape[axis] == 0:
        what = 'no examples' if letter == 'B' else 'no elements'
        raise ValueError(
            f'{owner}: {name} has {what} ({letter}=0 in shape {shape}). '
            + (fix or f'Give at least one ({letter} >= 1).'))


def token_ids(owner: str, inputs: Any, vocab_size: int) -> None:
  """Token ids must be integers; concrete ids must lie in [0, vocab_size).

  Traced ids (inside jax.jit) cannot be read: the jitted path clamps ids out
  of range (module docstring). Call this on the host batch before a jitted
  call to check them there too.
  """
  dtype = getattr(inputs, 'dtype', None)
  if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
    raise ValueError(
        f'{owner}: token ids must be an integer array, got dtype {dtype}; '
        'tokenize the text (perceiver.tasks.language.tokenizers) or cast '
        'the ids with .astype(np.int32).')
  if isinstance(inputs, jax.core.Tracer):
    return
  values = np.asarray(inputs)
  if values.size and (values.min() < 0 or values.max() >= vocab_size):
    raise ValueError(
        f'{owner}: token ids must lie in [0, {vocab_size}) (the model\'s '
        f'vocabulary), got values in [{values.min()}, {values.max()}]. Use '
        'the tokenizer the model was trained with; under jax.jit such ids '
        'would be silently clamped.')


def closest_name(name: str, candidates: Iterable[str]) -> Optional[str]:
  """The candidate most like `name` (difflib's ratio, at least 0.6), or
  None when none is close."""
  close = difflib.get_close_matches(name, list(candidates), n=1)
  return close[0] if close else None


def unexpected_keyword(owner: str, name: str, valid: Sequence[str]) -> str:
  """The message of a TypeError for keyword argument `name`, which `owner`
  does not take: the closest of `valid`, or all of them."""
  close = closest_name(name, valid)
  hint = (f"did you mean '{close}'?" if close else
          f"valid arguments: {', '.join(valid) or 'none'}.")
  return f"{owner} got an unexpected keyword argument '{name}'; {hint}"


def _keywords(fn: Callable[..., Any]) -> tuple[str, ...]:
  """The keyword arguments `fn` (a function or a class) accepts: those
  `keyword_arguments` checks, else its signature's named ones."""
  if inspect.isclass(fn):
    fn = fn.__init__
  if hasattr(fn, '__valid_keywords__'):
    return fn.__valid_keywords__
  names = tuple(name for name, p in inspect.signature(fn).parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
  return names[1:] if fn.__name__ == '__init__' else names  # not `self`


def keyword_arguments(fn: Optional[Callable[..., Any]] = None, *,
                      forwards_to: Optional[Callable[..., Any]] = None,
                      bound: Sequence[str] = ()) -> Any:
  """Decorator: a keyword argument that `fn` does not take raises a
  TypeError naming the closest valid one, e.g. "PerceiverEncoder got an
  unexpected keyword argument 'z_index_dims'; did you mean 'z_index_dim'?".

  A function whose **kwargs go on to another (BasicDecoder's to
  build_position_encoding, ClassificationDecoder's to BasicDecoder) names
  it in `forwards_to`: that one's keywords are valid too, except those
  `fn` sets itself (`bound`). A function with **kwargs and no
  `forwards_to` is returned as it is.

  For an `__init__` the owner named is the class constructed. The
  signature is `fn`'s (functools.wraps; inspect.signature follows it), and
  the arguments are passed on untouched, so module names and parameter
  trees do not change.
  """
  if fn is None:
    return functools.partial(keyword_arguments, forwards_to=forwards_to,
                             bound=bound)
  parameters = inspect.signature(fn).parameters
  has_var_keywords = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
  if has_var_keywords and forwards_to is None:
    return fn
  valid = _keywords(fn)
  if forwards_to is not None:
    if not has_var_keywords:
      raise TypeError(f'{fn.__qualname__} has no **kwargs to forward.')
    valid += tuple(k for k in _keywords(forwards_to)
                   if k not in valid and k not in bound)
  is_init = fn.__name__ == '__init__'

  @functools.wraps(fn)
  def checked(*args, **kwargs):
    for name in kwargs:
      if name not in valid:
        owner = type(args[0]).__name__ if is_init and args else fn.__name__
        raise TypeError(unexpected_keyword(owner, name, valid))
    return fn(*args, **kwargs)

  checked.__valid_keywords__ = valid
  return checked
