"""Multimodal autoencoding: video + audio + label through one latent array.

Shapes: B batch (per device inside the step), T frames, S image side,
N_a audio samples, O_px / O_a pixel / audio-patch queries per example,
K classes.

[P] §4.3, App. I, Table 4. The model is
`perceiver.builders.video_autoencoder` (`config.model` is its keyword
arguments; `config.scan_layers` / `config.remat` reach its encoder).
  * Training decodes, per example, O_px = 512 random pixels, the audio
    patches of 512 samples and the label (perceiver.tasks.multimodal.inputs
    draws them with the data, on the host, so that one device and many give
    the same result and a resumed run repeats an uninterrupted one), and
    replaces the label input by the learned mask token with p = 0.5.
  * Loss: 0.03 * L1(video) + 1 * L1(audio) + 1e-4 * CE(label)
    (`config.task.{video,audio,label}_weight`).
  * Evaluation masks every label input (the model then classifies), decodes
    all T * S * S pixels and N_a samples with the chunked full decode
    (`config.task.eval_chunks` chunks, [code] 128), and reports video and
    audio PSNR (range convention: perceiver.tasks.multimodal.metrics), the
    L1s, the label cross-entropy, label top-1 and the weighted loss.
    `config.best_metric` picks the best checkpoint by one of them ('eval/loss'
    with best_mode 'min', or 'eval/video_psnr' with 'max').

Datasets (`config.input.module`): perceiver.tasks.multimodal.kinetics
(Kinetics-700-2020, full scale) and perceiver.tasks.multimodal.embedded
(real films at CPU scale, built offline).
"""
from typing import Any, Iterator, Mapping, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from perceiver import builders
from perceiver.data import pipeline
from perceiver.tasks import common
from perceiver.tasks.multimodal import inputs
from perceiver.tasks.multimodal import metrics


# ---------------------------------------------------------------------------
# Configuration.
# ---------------------------------------------------------------------------


def default_task_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      video_weight=0.03,  # [P] App. I loss weights
      audio_weight=1.0,
      label_weight=1e-4,  # [P]: 1.0 trades PSNR for accuracy (20.7 dB, 45%)
      label_mask_prob=0.5,  # label input -> mask token (training)
      train_pixels=512,  # pixels decoded per training example
      train_audio_samples=512,  # audio samples decoded per example (in
      #                          patches; DEVIATION note in inputs.py)
      eval_chunks=128,  # the full decode's chunks ([code] 128)
      # [P] App. I: L1. 'l2' (DEVIATION): the mean squared error, which
      # PSNR measures (benchmarks/repro/MULTIMODAL.md, the audio search).
      audio_loss='l1',
  ))


AUDIO_LOSSES = ('l1', 'l2')


def _audio_term(l1, mse, task_config):
  """The audio loss term the task config names."""
  name = task_config.get('audio_loss', 'l1')
  if name not in AUDIO_LOSSES:
    raise ValueError(f'config.task.audio_loss={name!r}: expected one of '
                     f'{AUDIO_LOSSES}.')
  return mse if name == 'l2' else l1


DEFAULT_INPUT_MODULE = 'perceiver.tasks.multimodal.embedded'


def default_input_config(config: ml_collections.ConfigDict
                         ) -> ml_collections.ConfigDict:
  """`module` (the dataset module), the stream keys of
  perceiver.data.pipeline and the dataset module's own keys."""
  return pipeline.task_input_config(config, DEFAULT_INPUT_MODULE)


# ---------------------------------------------------------------------------
# Model, loss and metrics.
# ---------------------------------------------------------------------------


def _autoencoder(config: ml_collections.ConfigDict):
  kwargs = config.model.to_dict()
  encoder = common.with_layer_switches(
      kwargs.pop('encoder_kwargs', None) or {}, config)
  return builders.video_autoencoder(encoder_kwargs=encoder or None, **kwargs)


def make_model(config: ml_collections.ConfigDict) -> hk.TransformedWithState:
  """forward(batch, *, is_training): the subsampled decode of the batch's
  queries in training, every output (chunked) at evaluation."""
  autoencoder = _autoencoder(config)
  chunks = config.task.eval_chunks

  def forward(batch: Mapping[str, Any], *, is_training: bool):
    video, audio = batch['video'], batch['audio']  # [B, T, S, S, 3], [B, N_a, 1]
    if is_training:
      return autoencoder(
          video, audio,
          {'image': batch['pixel_index'], 'audio': batch['audio_index']},
          is_training=True, label=batch['label'],
          label_mask=batch['label_mask'])
    # Evaluation: the label input is always masked, so it is not passed.
    return autoencoder(video, audio, is_training=False,
                       label_mask=jnp.ones(video.shape[:1], bool),
                       full_outputs=True, chunks=chunks)

  return hk.transform_with_state(forward)


def example_batch(config: ml_collections.ConfigDict, batch_size: int
                  ) -> dict[str, np.ndarray]:
  """Zeros of one per-device training batch (for init)."""
  m = config.model
  pixels, patches = inputs.query_counts(config.task, m)
  n_audio = m.num_frames * m.audio_samples_per_frame
  return {
      'video': np.zeros((batch_size, m.num_frames, m.image_size,
                         m.image_size, 3), np.float32),
      'audio': np.zeros((batch_size, n_audio, 1), np.float32),
      'label': np.zeros((batch_size, m.num_classes), np.float32),
      'pixel_index': np.zeros((batch_size, pixels), np.int32),
      'audio_index': np.zeros((batch_size, patches), np.int32),
      'label_mask': np.ones((batch_size,), bool),
  }


def loss_and_metrics(outputs: Mapping[str, jax.Array],
                     batch: Mapping[str, jax.Array],
                     config: ml_collections.ConfigDict
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """[P] App. I loss on the decoded queries; means over the device batch."""
  pixels, samples = metrics.gather_targets(
      batch['video'], batch['audio'], batch['pixel_index'],
      batch['audio_index'], config.model.samples_per_patch)
  video_l1 = metrics.l1_per_example(outputs['image'], pixels).mean()
  audio_l1 = metrics.l1_per_example(outputs['audio'], samples).mean()
  audio_mse = metrics.mse_per_example(outputs['audio'], samples).mean()
  label_ce = metrics.cross_entropy(outputs['label'], batch['label']).mean()
  loss = metrics.weighted_loss(
      video_l1, _audio_term(audio_l1, audio_mse, config.task), label_ce,
      config.task)
  correct = (jnp.argmax(outputs['label'], -1)
             == jnp.argmax(batch['label'], -1)).astype(jnp.float32)
  return loss, {'loss': loss, 'video_l1': video_l1, 'audio_l1': audio_l1,
                'audio_mse': audio_mse, 'label_ce': label_ce,
                'label_accuracy': correct.mean()}


def eval_sums(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array],
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Sums over the real clips (batch['mask']) of the full-decode metrics."""
  del config
  mask = batch['mask'].astype(jnp.float32)  # [B]
  video, audio = batch['video'], batch['audio'][..., 0]  # [B, ...], [B, N_a]
  per_example = {
      'video_psnr': metrics.psnr_per_example(outputs['image'], video,
                                             metrics.VIDEO_RANGE),
      'audio_psnr': metrics.psnr_per_example(outputs['audio'], audio,
                                             metrics.AUDIO_RANGE),
      'video_l1': metrics.l1_per_example(outputs['image'], video),
      'audio_l1': metrics.l1_per_example(outputs['audio'], audio),
      'audio_mse': metrics.mse_per_example(outputs['audio'], audio),
      'label_ce': metrics.cross_entropy(outputs['label'], batch['label']),
      'label_top1': (jnp.argmax(outputs['label'], -1)
                     == jnp.argmax(batch['label'], -1)).astype(jnp.float32),
  }
  sums = {k: jnp.sum(v * mask) for k, v in per_example.items()}
  sums['count'] = jnp.sum(mask)
  return sums


def finalize_eval(sums: Mapping[str, np.ndarray],
                  config: ml_collections.ConfigDict) -> dict[str, float]:
  count = float(sums['count'])
  if count == 0:
    raise ValueError('The evaluation split has no examples.')
  out = {k: float(v) / count for k, v in sums.items() if k != 'count'}
  out['loss'] = float(metrics.weighted_loss(
      out['video_l1'],
      _audio_term(out['audio_l1'], out['audio_mse'], config.task),
      out['label_ce'], config.task))
  out['num_examples'] = count
  return out


# ---------------------------------------------------------------------------
# Input.
# ---------------------------------------------------------------------------


def _builder(config: ml_collections.ConfigDict, data_dir: Optional[str]):
  module = pipeline.dataset_module(config.input)
  kwargs = {}
  if config.input.get('manual_dir', ''):
    kwargs['manual_dir'] = config.input.manual_dir
  return module.get_builder(config.input.name, data_dir or None, **kwargs)


def check_geometry(config: ml_collections.ConfigDict, features) -> None:
  """Raises if config.model's clip geometry differs from the dataset's."""
  m = config.model
  want = {
      'video': (m.num_frames, m.image_size, m.image_size, 3),
      'audio': (m.num_frames * m.audio_samples_per_frame,),
  }
  got = {k: tuple(features[k].shape) for k in want}
  classes = features['label'].num_classes
  if got != want or classes != m.num_classes:
    raise ValueError(
        f'Dataset {config.input.name} holds clips video {got["video"]}, audio '
        f'{got["audio"]}, {classes} classes, but config.model expects video '
        f'{want["video"]}, audio {want["audio"]} (num_frames * '
        f'audio_samples_per_frame), {m.num_classes} classes. Set '
        'model.num_frames, image_size, audio_samples_per_frame and '
        'num_classes to the dataset\'s (or pick the matching dataset).')


def prepare_data(config: ml_collections.ConfigDict, workdir: str
                 ) -> Optional[str]:
  """Builds the dataset if needed (the embedded one offline, in the
  workdir) and checks that its clips fit the model."""
  pipeline.hide_accelerators_from_tf()
  module = pipeline.dataset_module(config.input)
  data_dir = pipeline.resolve_data_dir(
      config.input, workdir,
      build_in_workdir=getattr(module, 'BUILD_IN_WORKDIR', False))
  builder = _builder(config, data_dir)
  check_geometry(config, builder.info.features)
  inputs.query_counts(config.task, config.model)  # clear errors early
  return data_dir


def train_iterator(config: ml_collections.ConfigDict, *,
                   data_dir: Optional[str], seed: int, start_step: int,
                   process_index: int, process_count: int
                   ) -> Iterator[dict[str, Any]]:
  """This process's batches for steps start_step + 1, ...: the clips
  (perceiver.data.pipeline, resumable) plus each example's training queries,
  drawn from (seed, step, position in the global batch)."""
  stream = pipeline.train_iterator(
      config.input, data_dir=data_dir, seed=seed, start_step=start_step,
      process_index=process_index, process_count=process_count)
  m = config.model
  pixels, patches = inputs.query_counts(config.task, m)
  per_process = config.input.global_batch_size // process_count
  geometry = dict(
      num_pixels=m.num_frames * m.image_size ** 2,
      num_patches=m.num_frames * m.audio_samples_per_frame
      // m.samples_per_patch,
      pixels=pixels, patches=patches,
      label_mask_prob=config.task.label_mask_prob)
  for step, batch in enumerate(stream, start=start_step + 1):
    batch = dict(batch)
    batch.update(inputs.training_queries(
        seed=seed, step=step, first=process_index * per_process,
        count=per_process, **geometry))
    yield batch


def eval_iterator(config: ml_collections.ConfigDict, split: str, *,
                  data_dir: Optional[str], process_index: int,
                  process_count: int):
  """(batches with 'mask', number of batches) of the whole split."""
  return pipeline.eval_iterator(config.input, split, data_dir=data_dir,
                                process_index=process_index,
                                process_count=process_count)
