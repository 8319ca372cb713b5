"""Writes one of our checkpoints as a directory transformers loads.

Glossary of shapes: B batch, N latents, D latent channels.

  export(spec, params, state, output_dir)     the library call
  export_checkpoint(output_dir, checkpoint=..., config=... | spec=...)
                                              what launch/export_hf.py runs

The directory holds what `PerceiverFor*.from_pretrained(output_dir)` reads:
  config.json                 PerceiverConfig, `architectures` naming the class
  model.safetensors           the weights, float32, transformers' names
  model.safetensors.sha256    its SHA-256 (`sha256sum -c` format), checked by
                              perceiver.hf.load (transformers ignores it)
  tokenizer_config.json ...   PerceiverTokenizer (MLM on bytes)
and, for the way back (perceiver.hf.load), files transformers ignores:
  perceiver_io.json           our spec, the source, the parity measured
  perceiver_io_state.safetensors  Haiku state transformers has no slot for
                              (BatchNorm's EMA `hidden` sums and counter)

Every export is checked (verify=True): the directory is loaded with
`from_pretrained` and run next to our model on random inputs
(perceiver.hf.parity); an exact family outside rtol 1e-4 / atol 1e-5 fails
the export. Files are written to a temporary sibling directory and renamed
into place only when they pass.
"""
import dataclasses
import json
import os
import shutil
from typing import Any, Mapping, Optional

import numpy as np

from perceiver import checkpoint_io
from perceiver.hf import mapping
from perceiver.hf import parity as parity_lib
from perceiver.hf import specs

SIDECAR = 'perceiver_io.json'
SIDECAR_STATE = 'perceiver_io_state.safetensors'
WEIGHTS = 'model.safetensors'


class ParityError(RuntimeError):
  """The exported model does not compute what ours computes."""


@dataclasses.dataclass(frozen=True)
class Exported:
  """What `export` wrote."""
  directory: str
  plan: mapping.Plan
  parity: Optional[parity_lib.Parity]

  def __str__(self):
    lines = [f'{self.directory}: {self.plan.hf_class} '
             f'({self.plan.family}); load it with\n'
             f'  transformers.{self.plan.hf_class}.from_pretrained('
             f'{self.directory!r})']
    lines += [f'note: {n}' for n in self.plan.notes]
    lines += [f'INEXACT: {n}' for n in self.plan.inexact]
    if self.parity is not None:
      lines.append(str(self.parity))
    return '\n'.join(lines)


def _transformers():
  try:
    # Optional dependency (the hf extra): imported where it is used.
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    import transformers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f'{e}. Exporting to transformers needs PyTorch and transformers: '
        "pip install -e '.[hf]' (scripts/env.sh installs them).") from None
  return transformers


def check_against_module(hf_class, config,
                         shapes: Mapping[str, tuple[int, ...]]):
  """Raises unless `shapes` ({key: shape}) are exactly the module's
  state_dict. The module is built on the meta device: nothing is allocated,
  so full-size models are checked in a second."""
  # Optional dependency (the hf extra): imported where it is used.
  import torch  # pylint: disable=g-import-not-at-top
  with torch.device('meta'):
    module = hf_class(config)
  want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
  have = {k: tuple(v) for k, v in shapes.items()}
  missing = sorted(set(want) - set(have))
  unexpected = sorted(set(have) - set(want))
  wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
  if missing or unexpected or wrong:
    raise mapping.UnsupportedByTransformersError(
        f'{hf_class.__name__} does not take these weights: missing '
        f'{missing[:5]}, unexpected {unexpected[:5]}, wrong shapes '
        + ', '.join(f'{k} {have[k]} vs {want[k]}' for k in wrong[:5]))


def jsonable(value):
  """`value` with numpy scalars/arrays and tuples as JSON types."""
  if isinstance(value, Mapping):
    return {k: jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return value


def export(spec: Mapping[str, Any], params, state, output_dir: str, *,
           allow_inexact: bool = False, tokenizer: bool = True,
           verify: bool = True, overwrite: bool = False, source: str = '',
           rtol: float = parity_lib.RTOL, atol: float = parity_lib.ATOL,
           parity_batch: int = 1) -> Exported:
  """Writes `output_dir` for transformers' `from_pretrained`.

  Args:
    spec: the model (perceiver.hf.specs); computation-only switches are
      ignored.
    params, state: its parameters and Haiku state, per-layer (release) or
      scanned layout.
    output_dir: a new (or, with overwrite, replaced) directory.
    allow_inexact: export a family transformers holds but computes
      differently (the ImageNet conv stem); its parity is measured and
      reported, not enforced.
    tokenizer: MLM: write PerceiverTokenizer files (bytes models only).
    verify: load the result with from_pretrained and compare it with our
      model on random inputs; raises ParityError when an exact family
      disagrees beyond (rtol, atol).
    source: where the weights came from, recorded in perceiver_io.json.
    parity_batch: batch size of the verification inputs.
  """
  transformers = _transformers()
  spec = specs.clean(spec)
  params = specs.release_layout(params)
  state = {m: {n: np.asarray(v) for n, v in leaves.items()}
           for m, leaves in (state or {}).items()}
  plan = mapping.plan(spec, params, allow_inexact=allow_inexact,
                      tokenizer=tokenizer)
  tensors, extras = mapping.to_hf(spec, params, state)
  hf_class = getattr(transformers, plan.hf_class)
  config = transformers.PerceiverConfig(**plan.hf_config)
  check_against_module(hf_class, config,
                       {k: v.shape for k, v in tensors.items()})

  output_dir = os.path.abspath(output_dir)
  if os.path.exists(output_dir) and os.listdir(output_dir) and not overwrite:
    raise FileExistsError(f'{output_dir} exists and is not empty; choose a '
                          'new directory or pass overwrite=True (--overwrite).')
  tmp = output_dir.rstrip('/') + '.tmp-export'
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  # Optional dependency (the hf extra): imported where it is used.
  from safetensors import numpy as st  # pylint: disable=g-import-not-at-top
  config.save_pretrained(tmp)
  st.save_file(tensors, os.path.join(tmp, WEIGHTS), metadata={'format': 'pt'})
  # <WEIGHTS>.sha256 (sha256sum format), checked by perceiver.hf.load.
  checkpoint_io.write_checksum(os.path.join(tmp, WEIGHTS))
  if plan.tokenizer:
    transformers.PerceiverTokenizer(
        model_max_length=spec['max_seq_len']).save_pretrained(tmp)
  if extras:
    st.save_file(extras, os.path.join(tmp, SIDECAR_STATE))

  result = None
  if verify:
    model = hf_class.from_pretrained(tmp).eval()
    result = parity_lib.check(spec, params, state, model, batch=parity_batch,
                              rtol=rtol, atol=atol)
    if not result.ok and not plan.inexact:
      shutil.rmtree(tmp, ignore_errors=True)
      raise ParityError(f'{plan.hf_class} loaded from the export disagrees '
                        f'with our model; nothing was written.\n{result}')
  with open(os.path.join(tmp, SIDECAR), 'w') as f:
    json.dump(jsonable({
        'format': 1, 'spec': spec, 'family': plan.family,
        'hf_class': plan.hf_class, 'source': source,
        'inexact': list(plan.inexact), 'notes': list(plan.notes),
        'parity': dataclasses.asdict(result) if result else None,
        'transformers_version': transformers.__version__}), f, indent=1)
  if os.path.exists(output_dir):
    shutil.rmtree(output_dir)
  os.replace(tmp, output_dir)
  return Exported(directory=output_dir, plan=plan, parity=result)


def export_checkpoint(output_dir: str, *, checkpoint: str,
                      config=None, spec: Optional[str] = None,
                      step: str = 'latest', **kwargs) -> Exported:
  """Reads any of our checkpoints and exports it (launch/export_hf.py).

  Args:
    output_dir: the directory to write.
    checkpoint: a training workdir (Orbax), its checkpoints/ or a step
      directory, or a release-format .pickle / .pystate file.
    config: the experiment config the checkpoint was trained with; gives
      the architecture (specs.spec_from_config).
    spec: instead of config: a release family name or a spec JSON file.
    step: Orbax: 'latest', 'best' or a step number.
    **kwargs: passed to `export`.
  """
  if (config is None) == (spec is None):
    raise ValueError('Give the architecture either as the training config '
                     '(--config) or as a spec (--spec), not both or neither.')
  model_spec = (specs.spec_from_config(config) if config is not None
                else specs.load_spec(spec))
  best = ({} if config is None else
          {'best_metric': config.best_metric, 'best_mode': config.best_mode})
  params, state = specs.read_checkpoint(checkpoint, step=step, **best)
  return export(model_spec, params, state, output_dir,
                source=os.path.abspath(checkpoint), **kwargs)
