"""The released architectures: one JSON spec per checkpoint family.

`full_<family>.json` holds the builder (a perceiver/builders.py function),
its keyword configuration and the parameter manifest of the checkpoint that
DeepMind released for [P] (arXiv 2107.14795). They are the one home of the
released architectures: the recipes (perceiver/tasks/*/recipes.py), the
transformers mapping (perceiver/hf/mapping.py) and the model card read them
through `load`, and derive smaller models with `override`.
"""
import copy
import functools
import json
import os
from typing import Any, Mapping

DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def _read(name: str) -> dict[str, Any]:
  path = os.path.join(DIR, name + '.json')
  if not os.path.exists(path):
    known = sorted(f[:-5] for f in os.listdir(DIR) if f.endswith('.json'))
    raise KeyError(f'No release spec {name!r}; known: {known}.')
  with open(path) as f:
    return json.load(f)


def load(name: str) -> dict[str, Any]:
  """A released architecture, e.g. 'full_imagenet_fourier' (a fresh copy
  that the caller may change)."""
  return copy.deepcopy(_read(name))


def override(tree: Mapping[str, Any], diffs: Mapping[str, Any]
             ) -> dict[str, Any]:
  """A copy of `tree` with dotted-path diffs applied, e.g.
  {'encoder.z_index_dim': 64}. Every path but the last key must exist, so
  that a misspelt path fails instead of adding a key nobody reads."""
  out = copy.deepcopy(dict(tree))
  for path, value in diffs.items():
    *parents, key = path.split('.')
    node = out
    for i, part in enumerate(parents):
      if not isinstance(node.get(part), dict):
        raise KeyError(f'override {path!r}: no dict at '
                       f'{".".join(parents[:i + 1])!r}.')
      node = node[part]
    node[key] = copy.deepcopy(value)
  return out
