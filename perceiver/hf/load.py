"""The way back: a transformers Perceiver directory -> our parameter tree.

Glossary of shapes: N latents, D latent channels, C channels.

  imported = load('exported_or_hub_dir')
  model, names = perceiver.hf.specs.build(imported.spec)
  model.apply(imported.params, imported.state, None, *inputs,
              is_training=False)

Reads config.json and the weights (model.safetensors, sharded safetensors
with model.safetensors.index.json, or a PyTorch pytorch_model.bin as older
hub checkpoints have), and returns the release-layout Haiku params and
state with the spec of the matching builder. For a directory that
perceiver.hf.export wrote, the spec and the Haiku state transformers has no
slot for come from its perceiver_io.json / perceiver_io_state.safetensors,
so export followed by load reproduces the original tree bit for bit. For
any other directory the spec is derived from config.json
(mapping.spec_from_hf_config); see there for the BatchNorm statistics.

Only safetensors is needed to read safetensors weights; torch only for
pytorch_model.bin.
"""
import dataclasses
import json
import os
from typing import Any

import numpy as np

from perceiver import checkpoint_io
from perceiver.hf import export
from perceiver.hf import mapping
from perceiver.hf import specs


@dataclasses.dataclass(frozen=True)
class Imported:
  params: specs.Tree  # release layout
  state: specs.Tree  # Haiku state ({} unless BatchNorm)
  spec: specs.Spec  # the builder and its kwargs (perceiver.hf.specs)
  notes: tuple[str, ...]  # what differs from the transformers model


def read_weights(directory: str) -> dict[str, np.ndarray]:
  """{state_dict key: array} from a transformers model directory."""
  # Optional dependency (the hf extra): imported where it is used.
  from safetensors import numpy as st  # pylint: disable=g-import-not-at-top
  single = os.path.join(directory, export.WEIGHTS)
  index = single + '.index.json'
  if os.path.exists(single):
    # Ours come with model.safetensors.sha256: a damaged file is refused
    # (checkpoint_io.CorruptCheckpointError); others load unchecked.
    checkpoint_io.verify_checksum(single)
    return st.load_file(single)
  if os.path.exists(index):
    with open(index) as f:
      files = sorted(set(json.load(f)['weight_map'].values()))
    out = {}
    for name in files:
      out.update(st.load_file(os.path.join(directory, name)))
    return out
  bin_path = os.path.join(directory, 'pytorch_model.bin')
  if os.path.exists(bin_path):
    # Optional dependency (the hf extra): imported where it is used.
    import torch  # pylint: disable=g-import-not-at-top
    return {k: v.numpy() for k, v in
            torch.load(bin_path, map_location='cpu', weights_only=True).items()}
  raise FileNotFoundError(
      f'{directory}: no {export.WEIGHTS}, sharded safetensors or '
      'pytorch_model.bin.')


def load(directory: str) -> Imported:
  """(params, state, spec, notes) of a transformers Perceiver directory."""
  config_path = os.path.join(directory, 'config.json')
  if not os.path.exists(config_path):
    raise FileNotFoundError(f'{directory}: no config.json; expected a '
                            'directory written by save_pretrained or '
                            'perceiver.hf.export.')
  with open(config_path) as f:
    config: dict[str, Any] = json.load(f)
  spec, notes = mapping.spec_from_hf_config(config)
  extras = None
  sidecar = os.path.join(directory, export.SIDECAR)
  if os.path.exists(sidecar):
    with open(sidecar) as f:
      ours = json.load(f)
    if ours.get('hf_class') == mapping.class_of(config):
      spec = specs.clean(ours['spec'])
      state_path = os.path.join(directory, export.SIDECAR_STATE)
      if os.path.exists(state_path):
        # Optional dependency (the hf extra): imported where it is used.
        from safetensors import numpy as st  # pylint: disable=g-import-not-at-top
        extras = st.load_file(state_path)
  params, state = mapping.from_hf(spec, read_weights(directory), extras)
  return Imported(params=params, state=state, spec=spec, notes=tuple(notes))


def import_to_file(directory: str, output: str) -> dict[str, Any]:
  """Writes `directory`'s weights to a release-format `output` (.pickle or
  .pystate) and its spec to `output`.spec.json; returns a summary
  (launch/import_hf.py)."""
  imported = load(directory)
  checkpoint_io.save_params(output, imported.params, imported.state or None)
  spec_path = output + '.spec.json'
  with open(spec_path, 'w') as f:
    json.dump(export.jsonable(imported.spec), f, indent=1)
  return {'output': output, 'spec': spec_path,
          'builder': imported.spec['builder'],
          'num_params': int(sum(v.size for leaves in imported.params.values()
                                for v in leaves.values())),
          'notes': list(imported.notes)}
