"""Which model a checkpoint holds, and the checkpoint itself.

Glossary of shapes: B batch, H, W image size, T frames (video) or tokens
(text), K classes, N_a audio samples, P output points.

A *spec* is a dict naming one of the builders of perceiver/builders.py and
its keyword arguments, in the format of perceiver/release_specs/*.json and
tests/golden_data/*.json (the released checkpoints' constructor kwargs):

  {'builder': 'image_classifier', 'num_classes': K, 'config': {
       'input_preprocessor': ..., 'encoder': ..., 'decoder': ...}}
  {'builder': 'mlm', 'vocab_size': V, 'd_model': E, 'max_seq_len': T,
   'encoder': ..., 'decoder': ...}
  {'builder': 'optical_flow', 'input_preprocessor': ..., 'encoder': ...,
   'decoder': ..., 'flow_scale_factor': 20}
  {'builder': 'video_autoencoder', 'num_frames': ..., ... (VIDEO_KEYS)}

A spec comes from a training config (`spec_from_config`), a released family
(`release_spec('imagenet_fourier')`) or a JSON file (`load_spec`).
Computation-only switches (scan_layers, remat, attention chunk sizes) are
dropped: they change how a model runs, not what it computes.

Checkpoints (`read_checkpoint`) are returned in the release's per-layer
layout whatever they were saved in: a training run's Orbax checkpoints
(scanned runs stack the self-attention layers on a leading [L] axis), or a
release-format `.pickle` / `.pystate`.
"""
import copy
import json
import os
from typing import Any, Callable, Mapping, Optional, Sequence

import haiku as hk
import numpy as np

from perceiver import builders
from perceiver import perceiver
from perceiver import release_specs
from perceiver.train import checkpoint

Spec = dict[str, Any]
Tree = dict[str, dict[str, np.ndarray]]

RELEASE_FAMILIES = ('language_mlm', 'imagenet_fourier', 'imagenet_learned',
                    'imagenet_conv', 'optical_flow', 'video_autoencoding')
# Switches that change how a model runs, not the function it computes.
COMPUTE_ONLY_KEYS = ('scan_layers', 'remat', 'q_chunk_size', 'kv_chunk_size')
# Keys of the golden/release JSON files that describe data, not the model.
_NOT_MODEL_KEYS = ('family', 'is_training', 'inputs', 'outputs',
                   'param_manifest', 'state_manifest', 'total_params', 'note')


def _strip(kwargs: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
  if kwargs is None:
    return None
  return {k: copy.deepcopy(v) for k, v in kwargs.items()
          if k not in COMPUTE_ONLY_KEYS}


def clean(spec: Mapping[str, Any]) -> Spec:
  """A copy of `spec` without manifests and computation-only switches."""
  out = {k: copy.deepcopy(v) for k, v in spec.items()
         if k not in _NOT_MODEL_KEYS}
  if 'builder' not in out:
    raise ValueError(f"A spec needs a 'builder' key (one of {BUILDERS}); got "
                     f'keys {sorted(spec)}.')
  if out['builder'] not in BUILDERS:
    raise ValueError(f"Unknown builder {out['builder']!r}; expected one of "
                     f'{BUILDERS}.')
  if out['builder'] == 'image_classifier':
    out['config'] = dict(out['config'])
    out['config']['encoder'] = _strip(out['config']['encoder'])
    out['config']['decoder'] = _strip(out['config'].get('decoder'))
  elif out['builder'] in ('mlm', 'optical_flow'):
    out['encoder'] = _strip(out['encoder'])
    out['decoder'] = _strip(out['decoder'])
  else:
    for key in ('encoder_kwargs', 'decoder_kwargs'):
      if out.get(key):
        out[key] = _strip(out[key])
  return out


def release_spec(family: str) -> Spec:
  """The spec of a released checkpoint (perceiver/release_specs)."""
  if family not in RELEASE_FAMILIES:
    raise ValueError(f'Unknown release family {family!r}; expected one of '
                     f'{RELEASE_FAMILIES}.')
  return clean(release_specs.load(f'full_{family}'))


def load_spec(name_or_path: str) -> Spec:
  """A release family name (e.g. 'optical_flow') or a spec JSON file."""
  if name_or_path in RELEASE_FAMILIES:
    return release_spec(name_or_path)
  if not os.path.exists(name_or_path):
    raise FileNotFoundError(
        f'--spec={name_or_path!r} is neither a release family '
        f'{RELEASE_FAMILIES} nor a JSON file.')
  with open(name_or_path) as f:
    return clean(json.load(f))


#  ------------------------------------------------------------
#  -----------------  From a training config  -----------------
#  ------------------------------------------------------------


def _image_spec(model: Mapping[str, Any]) -> Spec:
  return clean({
      'builder': 'image_classifier', 'num_classes': model['num_classes'],
      'input_channels': model.get('input_channels', 3),
      'config': {'input_preprocessor': model['input_preprocessor'],
                 'encoder': model['encoder'],
                 'decoder': model.get('decoder'),
                 'projection_decoder': model.get('projection_decoder', False)}})


def _mlm_spec(model: Mapping[str, Any]) -> Spec:
  if model.get('input_position_encoding', 'trainable') != 'trainable':
    raise ValueError(
        f"config.model.input_position_encoding="
        f"{model['input_position_encoding']!r}: transformers' Perceiver text "
        "preprocessor has a learned position table only; export an MLM "
        "with the release's 'trainable' input positions.")
  keys = ('vocab_size', 'd_model', 'max_seq_len', 'encoder', 'decoder')
  return clean(dict({k: model[k] for k in keys}, builder='mlm'))


# Task modules (config.task.module) whose config.model holds a builder's
# kwargs. A task whose model transformers has (e.g. flow, video) joins here.
TASK_SPECS: dict[str, Callable[[Mapping[str, Any]], Spec]] = {
    'perceiver.tasks.image.task': _image_spec,
    'perceiver.tasks.language.mlm': _mlm_spec,
}


def spec_from_config(config) -> Spec:
  """The spec of the model an experiment config trains."""
  task = config.task.module
  if task not in TASK_SPECS:
    raise ValueError(
        f'No transformers export is known for the task {task!r} (known: '
        f'{sorted(TASK_SPECS)}). Write the checkpoint with launch/export.py '
        'and pass its architecture with --spec=FAMILY_OR_JSON.')
  return TASK_SPECS[task](config.model.to_dict())


#  ------------------------------------------------------------
#  -------------------  Spec -> Haiku model  -------------------
#  ------------------------------------------------------------

BUILDERS = ('image_classifier', 'mlm', 'optical_flow', 'video_autoencoder')


def build(spec: Mapping[str, Any]) -> tuple[hk.TransformedWithState,
                                            Sequence[str]]:
  """-> (transformed, input names) for `spec` (perceiver.builders.build,
  except that the video autoencoder takes its subsampled points as inputs).

  apply(params, state, rng, *inputs, is_training) with inputs:
    image_classifier  images [B, H, W, C]                 -> [B, K]
    mlm               inputs [B, T] int, input_mask [B, T] -> [B, T, V]
    optical_flow      images [B, 2, H, W, 3]               -> [B, H, W, 2]
    video_autoencoder images [B, T, H, W, 3], audio [B, N_a, 1],
                      subsampled_image [P_i], subsampled_audio [P_a]
                      -> {'image': [B, P_i, 3], 'audio': [B, P_a * s],
                          'label': [B, K]}
  """
  spec = clean(spec)
  if spec['builder'] != 'video_autoencoder':
    return (hk.transform_with_state(builders.build(spec)),
            builders.INPUT_NAMES[spec['builder']])
  video = builders.video_autoencoder_from_spec(spec)

  def fwd(images, audio, subsampled_image, subsampled_audio, *, is_training):
    return video(images, audio, {'image': subsampled_image,
                                 'audio': subsampled_audio},
                 is_training=is_training)
  return hk.transform_with_state(fwd), ('images', 'audio', 'subsampled_image',
                                        'subsampled_audio')


#  ------------------------------------------------------------
#  ------------------------  Checkpoints  ---------------------
#  ------------------------------------------------------------


def _as_numpy(tree) -> Tree:
  return {m: {n: np.asarray(v) for n, v in leaves.items()}
          for m, leaves in (tree or {}).items()}


def release_layout(params: Mapping[str, Mapping[str, Any]]) -> Tree:
  """Params in the release's per-layer layout (unstacks scanned layers)."""
  if perceiver.is_scanned(params):
    params = perceiver.to_release_layout(params)
  return _as_numpy(params)


def read_checkpoint(path: str, *, step: str = 'latest',
                    best_metric: str = 'eval/accuracy',
                    best_mode: str = 'max') -> tuple[Tree, Tree]:
  """(params, state) as numpy, release layout, from any of our checkpoints.

  Args:
    path: a release-format `.pickle` / `.pystate` file, a training workdir
      (holding checkpoints/), its checkpoints/ directory or one step
      directory in it.
    step: for Orbax checkpoints: 'latest', 'best' or a step number.
    best_metric, best_mode: the run's config.best_metric and
      config.best_mode (read for step='best').
  """
  params, state = checkpoint.read_params(
      path, step=step, layout='release', best_metric=best_metric,
      best_mode=best_mode)
  return _as_numpy(params), _as_numpy(state)
