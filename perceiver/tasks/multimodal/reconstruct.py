"""Reconstructions a person can look at and hear (launch/reconstruct.py).

Shapes: K clips decoded together, T frames per clip, S image side, N_a
audio samples per clip, C classes.

Takes a trained multimodal autoencoder (our checkpoint, or the released
`video_autoencoding_checkpoint.pystate` with the paper's config) and any
video file. The file is read as the datasets read it
(perceiver.tasks.multimodal.media: 25 fps, centre square, mono audio at the
model's rate), cut into K consecutive clips from `start`, and every output
of each clip is decoded (the chunked full decode, label input masked as at
evaluation). Written to the output directory:
  frames.png          rows: original, reconstruction, and the plain
                      down/up-sampling baseline at the same compression
                      (every other frame of the first clip);
  side_by_side.mp4    original | reconstruction, with the reconstructed
                      audio track (all K clips);
  original.wav, reconstruction.wav   16-bit mono at the model's audio rate;
  report.json         PSNRs (model and baseline, the range convention of
                      perceiver.tasks.multimodal.metrics), the predicted
                      labels and the files.
"""
import dataclasses
import json
import os
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from perceiver import checkpoint_io
from perceiver.tasks.multimodal import inputs
from perceiver.tasks.multimodal import media
from perceiver.tasks.multimodal import metrics
from perceiver.tasks.multimodal import task
from perceiver.train import checkpoint as checkpoint_lib


@dataclasses.dataclass
class Result:
  video: np.ndarray  # [K * T, S, S, 3] float in [0, 1], the input
  audio: np.ndarray  # [K * N_a] float in [-1, 1], the input
  video_out: np.ndarray  # [K * T, S, S, 3] reconstruction, clipped
  audio_out: np.ndarray  # [K * N_a] reconstruction, clipped
  logits: np.ndarray  # [K, C]
  report: dict[str, Any]


def load_params(config: ml_collections.ConfigDict, checkpoint: str, *,
                step: str = 'latest') -> tuple[Any, Any]:
  """(params, state) of a training run (its workdir, its checkpoints/
  directory or a step directory; `step` is 'latest', 'best' or a number) or
  of a release .pickle/.pystate, in the layout config.scan_layers asks for,
  checked against the model of config."""
  model = task.make_model(config)
  expected, _ = jax.eval_shape(
      lambda b: model.init(jax.random.PRNGKey(0), b, is_training=True),
      task.example_batch(config, 1))
  try:
    return checkpoint_lib.read_params(
        checkpoint, step=step,
        layout='scanned' if config.scan_layers else 'release',
        expected=expected, best_metric=config.best_metric,
        best_mode=config.best_mode)
  except checkpoint_io.CheckpointMismatchError as e:
    raise ValueError(
        f'{checkpoint} does not fit the model of this config (give the '
        f'--config the checkpoint was trained with): {e}') from e


def read_clips(config: ml_collections.ConfigDict, path: str, *,
               start: float = 0.0, num_clips: int = 1) -> media.Media:
  """K = num_clips consecutive clips of the model's size from `path`."""
  m = config.model
  seconds = num_clips * m.num_frames / inputs.FPS
  clip = media.decode(path, image_size=m.image_size,
                      audio_rate=m.audio_samples_per_frame * inputs.FPS,
                      fps=inputs.FPS, start=start, seconds=seconds)
  if len(clip.frames) < num_clips * m.num_frames:
    raise ValueError(
        f'{path} has {clip.seconds:.2f} s after {start} s; {num_clips} '
        f'clip(s) of {m.num_frames} frames need {seconds:.2f} s. Lower '
        '--start or --num_clips.')
  return clip


def label_names(config: ml_collections.ConfigDict,
                names_file: str = '') -> Optional[list[str]]:
  """Class names: a file (one per line) if given, else the embedded
  dataset's films; None if unknown (Kinetics: pass a names file)."""
  if names_file:
    with open(names_file) as f:
      return [line.strip() for line in f if line.strip()]
  if config.input.get('module', '') == 'perceiver.tasks.multimodal.embedded':
    from perceiver.tasks.multimodal import embedded  # pylint: disable=g-import-not-at-top
    return list(embedded.clip_config(config.input.name).sources)
  return None


def reconstruct(config: ml_collections.ConfigDict, params, state,
                clip: media.Media, names: Optional[Sequence[str]] = None
                ) -> Result:
  """Decodes every output of the K clips of `clip` (see the module doc)."""
  m = config.model
  t, n_a = m.num_frames, m.num_frames * m.audio_samples_per_frame
  k = len(clip.frames) // t
  video = clip.frames[:k * t].astype(np.float32) / 255.0
  audio = clip.audio[:k * n_a].astype(np.float32)
  batch = {'video': video.reshape((k, t) + video.shape[1:]),
           'audio': audio.reshape(k, n_a, 1)}
  model = task.make_model(config)
  apply = jax.jit(lambda p, s, b: model.apply(p, s, None, b,
                                              is_training=False)[0])
  out = jax.device_get(apply(params, state, jax.tree.map(jnp.asarray, batch)))
  video_out = np.clip(np.asarray(out['image']).reshape(video.shape), 0, 1)
  audio_out = np.clip(np.asarray(out['audio']).reshape(audio.shape), -1, 1)
  logits = np.asarray(out['label'], np.float32)

  # The plain baseline with the latent array's N * D values per clip.
  budget = m.z_index_dim * m.num_z_channels
  base_v, base_a = [], []
  for i in range(k):
    v, a, sizes = metrics.baseline_reconstruction(
        batch['video'][i], batch['audio'][i, :, 0], budget)
    base_v.append(v)
    base_a.append(a)
  clips = []
  for i in range(k):
    vi, ai = slice(i * t, (i + 1) * t), slice(i * n_a, (i + 1) * n_a)
    probs = np.exp(logits[i] - logits[i].max())
    probs /= probs.sum()
    top = int(np.argmax(logits[i]))
    clips.append({
        'video_psnr': metrics.np_psnr(video_out[vi], video[vi],
                                      metrics.VIDEO_RANGE),
        'audio_psnr': metrics.np_psnr(audio_out[ai], audio[ai],
                                      metrics.AUDIO_RANGE),
        'baseline_video_psnr': metrics.np_psnr(base_v[i], video[vi],
                                               metrics.VIDEO_RANGE),
        'baseline_audio_psnr': metrics.np_psnr(base_a[i], audio[ai],
                                               metrics.AUDIO_RANGE),
        'label': top,
        'label_name': names[top] if names and top < len(names) else None,
        'label_prob': float(probs[top]),
    })
  report = {
      'clips': clips,
      'video_psnr': float(np.mean([c['video_psnr'] for c in clips])),
      'audio_psnr': float(np.mean([c['audio_psnr'] for c in clips])),
      'baseline_video_psnr': float(np.mean(
          [c['baseline_video_psnr'] for c in clips])),
      'baseline_audio_psnr': float(np.mean(
          [c['baseline_audio_psnr'] for c in clips])),
      'baseline': (f'{budget} values per clip (N * D = {m.z_index_dim} * '
                   f'{m.num_z_channels}): frames kept at {sizes[0]} x '
                   f'{sizes[0]}, audio at {sizes[1]} samples'),
      'psnr_range': 'video [0, 1] (R = 1), audio [-1, 1] (R = 2)',
      'fps': inputs.FPS,
      'audio_rate': m.audio_samples_per_frame * inputs.FPS,
  }
  baseline_video = np.concatenate(base_v).reshape(video.shape)
  report['_baseline_video'] = baseline_video  # for the picture; not saved
  return Result(video, audio, video_out, audio_out, logits, report)


def _u8(x: np.ndarray) -> np.ndarray:
  return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def write(result: Result, output_dir: str) -> dict[str, str]:
  """Writes the files of the module doc; returns {kind: path}."""
  os.makedirs(output_dir, exist_ok=True)
  report = dict(result.report)
  baseline = report.pop('_baseline_video')
  rate, fps = report['audio_rate'], report['fps']
  t = len(result.video) // len(report['clips'])
  side = result.video.shape[1]
  scale = max(1, 128 // side)  # at least 128 px a frame on screen
  files = {}
  rows = [_u8(x[:t]) for x in (result.video, result.video_out, baseline)]
  files['frames'] = media.write_png(
      os.path.join(output_dir, 'frames.png'),
      media.upscale(media.frame_grid(rows, every=max(1, t // 8)), scale))
  pair = np.concatenate([_u8(result.video), _u8(result.video_out)], axis=2)
  files['video'] = media.write_mp4(
      os.path.join(output_dir, 'side_by_side.mp4'),
      media.upscale(pair, scale), fps, result.audio_out, rate)
  files['original_wav'] = media.write_wav(
      os.path.join(output_dir, 'original.wav'), result.audio, rate)
  files['reconstruction_wav'] = media.write_wav(
      os.path.join(output_dir, 'reconstruction.wav'), result.audio_out, rate)
  report['files'] = dict(files)
  files['report'] = os.path.join(output_dir, 'report.json')
  with open(files['report'], 'w') as f:
    json.dump(report, f, indent=2)
  return files


def run(config: ml_collections.ConfigDict, checkpoint: str, video_path: str,
        output_dir: str, *, step: str = 'latest', start: float = 0.0,
        num_clips: int = 1, names_file: str = '') -> Mapping[str, Any]:
  """The whole CLI: load, read, reconstruct, write; returns the report."""
  params, state = load_params(config, checkpoint, step=step)
  clip = read_clips(config, video_path, start=start, num_clips=num_clips)
  result = reconstruct(config, params, state, clip,
                       label_names(config, names_file))
  files = write(result, output_dir)
  report = {k: v for k, v in result.report.items() if not k.startswith('_')}
  report['files'] = files
  return report
