"""Argument checks at the modules' entry points: one clear error each.

Glossary of shapes: B batch, M input elements, T tokens, V vocabulary.

Constructors check their sizes (`positive`, `positive_dims`); `__call__`
entry points check static shapes (`non_empty`) and token ids (`token_ids`).
Every check reads Python values, shapes and dtypes at construction or trace
time, so nothing is added to the compiled computation. The one value check,
token ids in [0, V), runs only on concrete arrays (outside `jax.jit`): under
jit the ids are tracers, and `hk.Embed` (`jnp.take`) clamps an id outside
[0, V) to the nearest valid one without an error. Check ids before a jitted
call with `token_ids` (or run the model once eagerly).
"""
import numbers
from typing import Any, Mapping, Optional, Sequence, Union

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
