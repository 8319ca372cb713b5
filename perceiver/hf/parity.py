"""Runs our model and the transformers model on the same inputs and compares.

Glossary of shapes: B batch, H, W image size, T frames (video) or tokens
(text), V vocabulary, K classes, N_a audio samples, P decoded points.

Inputs are made in our layout (channels last) and handed to transformers
in its own (channels first; flow as 3x3 patches [B, 2, 27, H, W]). What is
compared, per family:
  * MLM: the logits [B, T, V] at the valid positions (input_mask 1). At
    padded positions the release zeroes the decoder attention of masked
    queries, while transformers ignores the query mask there; those logits
    feed no loss.
  * image classifiers: the logits [B, K].
  * optical flow: the flow [B, H, W, 2]; transformers returns it without
    the release's flow_scale_factor, which is applied to its output here.
  * multimodal autoencoding: the decoded image points [B, P_i, 3], audio
    [B, P_a * samples_per_patch] and label logits [B, K], for the same
    subsampled output points.
Tolerance: |ours - theirs| <= atol + rtol * |theirs| (np.allclose), rtol
1e-4 and atol 1e-5 in float32 by default. Measured: the Fourier features
alone differ by up to 3e-5, because torch.linspace and jnp.linspace round
the band frequencies (up to res / 2 = 112) differently in the last bit and
sin(pi * f * x) magnifies it; everything else agrees to a few 1e-6.
"""
import dataclasses
import functools
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from perceiver import io_processors
from perceiver.hf import mapping
from perceiver.hf import specs

RTOL, ATOL = 1e-4, 1e-5


def _image_size(spec, params) -> tuple[int, int]:
  fam = mapping.family(spec)
  if fam == 'imagenet_learned':
    rows = params[mapping.LEARNED_POS]['pos_embs'].shape[0]
    side = int(round(np.sqrt(rows)))
    return side, side
  prep = spec['config']['input_preprocessor']
  res = (prep.get('fourier_position_encoding_kwargs') or {}).get(
      'max_resolution') or (224, 224)
  scale = 4 if fam == 'imagenet_conv' else 1  # conv features are H/4 x W/4
  return int(res[0]) * scale, int(res[1]) * scale


def random_inputs(spec: Mapping[str, Any], params=None, *, batch: int = 2,
                  seed: int = 0, image_shape: Optional[tuple[int, int]] = None,
                  num_points: int = 64) -> dict[str, np.ndarray]:
  """Random inputs for `spec`'s model, in our layout (see specs.build).

  Image classifiers take `image_shape` (default: the size the position
  encoding was built for). MLM inputs are random ids; the last element of
  the batch has its final quarter padded (id 0, mask 0). Video decodes
  `num_points` random image points and audio patches (at most all of them).
  """
  spec = specs.clean(spec)
  rng = np.random.default_rng(seed)
  kind = spec['builder']
  uniform = lambda *shape: rng.uniform(-1, 1, shape).astype(np.float32)
  if kind == 'image_classifier':
    h, w = image_shape or _image_size(spec, params)
    return {'images': uniform(batch, h, w, spec.get('input_channels', 3))}
  if kind == 'mlm':
    t = spec['max_seq_len']
    ids = rng.integers(0, spec['vocab_size'], (batch, t)).astype(np.int32)
    mask = np.ones((batch, t), np.int32)
    mask[-1, t - t // 4:] = 0
    return {'inputs': ids * mask, 'input_mask': mask}
  if kind == 'optical_flow':
    h, w = spec['decoder']['output_image_shape']
    return {'images': uniform(batch, 2, h, w, 3)}
  t, s = spec['num_frames'], spec['image_size']
  n_audio = t * spec['audio_samples_per_frame']
  n_patches = n_audio // spec['samples_per_patch']
  pick = lambda n: np.sort(rng.choice(n, min(num_points, n), replace=False))
  return {'images': uniform(batch, t, s, s, 3),
          'audio': uniform(batch, n_audio, 1),
          'subsampled_image': pick(t * s * s).astype(np.int32),
          'subsampled_audio': pick(n_patches).astype(np.int32)}


def run_ours(spec: Mapping[str, Any], params, state,
             inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Our model's outputs (evaluation mode), as numpy, by name."""
  model, names = specs.build(spec)
  # One compiled program: measured 2.3x faster than op by op on the tiny
  # models (each eager op compiles on its own).
  apply = jax.jit(functools.partial(model.apply, is_training=False))
  out, _ = apply(params, state or {}, None,
                 *[jnp.asarray(inputs[n]) for n in names])
  if isinstance(out, Mapping):
    return {k: np.asarray(v) for k, v in out.items()}
  return {'logits': np.asarray(out)}


def torch_inputs(spec: Mapping[str, Any], inputs: Mapping[str, np.ndarray]
                 ) -> dict[str, Any]:
  """The forward() kwargs of the transformers model for our inputs."""
  # Optional dependency (the hf extra): imported where it is used.
  import torch  # pylint: disable=g-import-not-at-top
  kind = specs.clean(spec)['builder']
  t = lambda x: torch.from_numpy(np.array(x))  # a writable copy
  if kind == 'image_classifier':  # [B, H, W, C] -> [B, C, H, W]
    return {'inputs': t(inputs['images'].transpose(0, 3, 1, 2))}
  if kind == 'mlm':
    return {'inputs': t(inputs['inputs'].astype(np.int64)),
            'attention_mask': t(inputs['input_mask'].astype(np.int64))}
  if kind == 'optical_flow':  # 3x3 patches, [B, 2, 27, H, W]
    patches = np.asarray(io_processors.patches_for_flow(
        jnp.asarray(inputs['images'])))
    return {'inputs': t(patches.transpose(0, 1, 4, 2, 3))}
  images = inputs['images']
  label = np.zeros((images.shape[0], spec['num_classes']), np.float32)
  return {'inputs': {'image': t(images.transpose(0, 1, 4, 2, 3)),
                     'audio': t(inputs['audio']), 'label': t(label)},
          'subsampled_output_points': {
              'image': t(inputs['subsampled_image'].astype(np.int64)),
              'audio': t(inputs['subsampled_audio'].astype(np.int64)),
              'label': None}}


def run_hf(model, spec: Mapping[str, Any], inputs: Mapping[str, np.ndarray]
           ) -> dict[str, np.ndarray]:
  """The transformers model's outputs in our layout and scale."""
  # Optional dependency (the hf extra): imported where it is used.
  import torch  # pylint: disable=g-import-not-at-top
  spec = specs.clean(spec)
  with torch.no_grad():
    logits = model(**torch_inputs(spec, inputs)).logits
  if isinstance(logits, Mapping):
    return {k: v.numpy() for k, v in logits.items()}
  out = logits.numpy()
  if spec['builder'] == 'optical_flow':
    out = out * np.float32(spec.get('flow_scale_factor', 20))
  return {'logits': out}


@dataclasses.dataclass(frozen=True)
class Parity:
  """Per-output agreement of our model and the transformers model."""
  # name -> max_abs: max |ours - theirs|; tolerance_used: the largest
  # |ours - theirs| / (atol + rtol |theirs|) (ok iff <= 1); scale: max |theirs|.
  outputs: dict[str, dict[str, float]]
  rtol: float
  atol: float
  ok: bool

  def __str__(self):
    lines = [f'parity (rtol {self.rtol:g}, atol {self.atol:g}): '
             + ('OK' if self.ok else 'FAILED')]
    for name, r in self.outputs.items():
      lines.append(f'  {name}: max |diff| {r["max_abs"]:.3g} '
                   f'({r["tolerance_used"]:.0%} of the tolerance), max '
                   f'|output| {r["scale"]:.3g}'
                   + ('' if r['ok'] else '  <- outside tolerance'))
    return '\n'.join(lines)


def compare(ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray],
            *, valid: Optional[np.ndarray] = None, rtol: float = RTOL,
            atol: float = ATOL) -> Parity:
  """Compares outputs by name; `valid` [B, T] selects MLM positions."""
  if set(ours) != set(theirs):
    raise ValueError(f'Outputs differ in name: {sorted(ours)} vs '
                     f'{sorted(theirs)}.')
  results = {}
  for name in sorted(ours):
    a, b = np.asarray(ours[name]), np.asarray(theirs[name])
    if a.shape != b.shape:
      raise ValueError(f'{name}: shape {a.shape} here, {b.shape} in '
                       'transformers.')
    if valid is not None:
      a, b = a[valid.astype(bool)], b[valid.astype(bool)]
    diff = np.abs(a.astype(np.float64) - b)
    used = float((diff / (atol + rtol * np.abs(b.astype(np.float64)))).max())
    results[name] = {'max_abs': float(diff.max()), 'tolerance_used': used,
                     'scale': float(np.abs(b).max()), 'ok': used <= 1.0}
  return Parity(outputs=results, rtol=rtol, atol=atol,
                ok=all(r['ok'] for r in results.values()))


def check(spec: Mapping[str, Any], params, state, model, *,
          inputs: Optional[Mapping[str, np.ndarray]] = None, batch: int = 2,
          seed: int = 0, rtol: float = RTOL, atol: float = ATOL) -> Parity:
  """Runs both models on `inputs` (default: random_inputs) and compares."""
  inputs = inputs or random_inputs(spec, params, batch=batch, seed=seed)
  valid = inputs['input_mask'] if 'input_mask' in inputs else None
  return compare(run_ours(spec, params, state, inputs),
                 run_hf(model, spec, inputs), valid=valid, rtol=rtol,
                 atol=atol)
