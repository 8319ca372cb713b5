"""Losses, PSNR and the down/up-sampling baseline of multimodal autoencoding.

Shapes: B batch, T frames, S image side, N_a audio samples, O_px / O_a
pixel / audio-patch queries, K classes, V values kept by the baseline.

Loss ([P] App. I): 0.03 * L1(video) + 1 * L1(audio) + 1e-4 * CE(label),
each L1 the mean absolute error over the decoded values, CE the mean softmax
cross-entropy; the weights are task options.

PSNR. Range convention (the paper states none; chosen here):
PSNR = 10 log10(R^2 / MSE) with R the range of the data: video in [0, 1]
(R = 1), audio in [-1, 1] (R = 2), as skimage's `peak_signal_noise_ratio`
does for float data. Predictions are clipped to that range first (a
reconstruction is a signal of that range). PSNR is computed per clip and
averaged over clips. With R = 1 for audio, audio PSNRs would be 6.02 dB
lower.
"""
import jax
import jax.numpy as jnp
import numpy as np

VIDEO_RANGE = (0.0, 1.0)
AUDIO_RANGE = (-1.0, 1.0)
_MIN_MSE = 1e-10  # PSNR of a perfect reconstruction: 100 dB (video)


def gather_targets(video: jax.Array,  # [B, T, S, S, 3]
                   audio: jax.Array,  # [B, N_a, 1]
                   pixel_index: jax.Array,  # [B, O_px]
                   audio_index: jax.Array,  # [B, O_a]
                   samples_per_patch: int
                   ) -> tuple[jax.Array, jax.Array]:
  """The targets of the training queries: ([B, O_px, 3], [B, O_a * patch])."""
  batch = video.shape[0]
  pixels = video.reshape(batch, -1, 3)
  pixels = jnp.take_along_axis(pixels, pixel_index[..., None], axis=1)
  patches = audio.reshape(batch, -1, samples_per_patch)
  patches = jnp.take_along_axis(patches, audio_index[..., None], axis=1)
  return pixels, patches.reshape(batch, -1)


def l1_per_example(pred: jax.Array, target: jax.Array) -> jax.Array:
  """[B, ...] x2 -> [B] mean absolute error."""
  diff = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
  return diff.reshape(diff.shape[0], -1).mean(axis=1)


def cross_entropy(logits: jax.Array,  # [B, K]
                  labels: jax.Array  # [B, K] one-hot
                  ) -> jax.Array:  # [B]
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.sum(labels * logp, axis=-1)


def psnr_per_example(pred: jax.Array, target: jax.Array,
                     value_range: tuple[float, float]) -> jax.Array:
  """[B, ...] x2 -> [B] PSNR in dB (see the module doc for the range)."""
  lo, hi = value_range
  pred = jnp.clip(pred.astype(jnp.float32), lo, hi)
  err = (pred - target.astype(jnp.float32)).reshape(pred.shape[0], -1)
  mse = jnp.maximum(jnp.mean(err ** 2, axis=1), _MIN_MSE)
  return 10.0 * jnp.log10((hi - lo) ** 2 / mse)


def mse_per_example(pred: jax.Array, target: jax.Array) -> jax.Array:
  """[B, ...] x2 -> [B] mean squared error."""
  err = pred.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.square(err).reshape(err.shape[0], -1).mean(axis=1)


def weighted_loss(video_l1, audio_term, label_ce, weights) -> jax.Array:
  """[P] App. I: w_v * L1(video) + w_a * L1(audio) + w_l * CE(label);
  audio_term is L1(audio), or its mean squared error where the task's
  audio_loss says so (a DEVIATION)."""
  return (weights.video_weight * video_l1 + weights.audio_weight * audio_term
          + weights.label_weight * label_ce)


def np_psnr(pred: np.ndarray, target: np.ndarray,
            value_range: tuple[float, float]) -> float:
  """PSNR of one clip (numpy; the CLI and the benchmark)."""
  lo, hi = value_range
  err = np.clip(np.asarray(pred, np.float64), lo, hi) - target
  mse = max(float(np.mean(err ** 2)), _MIN_MSE)
  return float(10 * np.log10((hi - lo) ** 2 / mse))


# ---------------------------------------------------------------------------
# The plain baseline at the same compression.
# ---------------------------------------------------------------------------


def baseline_sizes(num_values: int, video_shape: tuple[int, ...],
                   num_audio: int) -> tuple[int, int]:
  """(s, n): each frame kept as s x s x 3 values and the audio as n samples,
  with T * s * s * 3 + n = num_values (the latent array's N * D). The video
  is reduced by at least the overall factor (s = floor(S / sqrt(factor)));
  the audio keeps the values the video leaves."""
  t, side = video_shape[0], video_shape[1]
  total = t * side * side * 3 + num_audio
  if num_values >= total:
    return side, num_audio
  factor = total / num_values
  s = max(int(np.floor(side / np.sqrt(factor))), 1)
  n = num_values - t * s * s * 3
  if n < 1:
    raise ValueError(f'{num_values} values cannot hold {t} frames of 1 x 1.')
  return s, min(n, num_audio)


def baseline_reconstruction(video: np.ndarray,  # [T, S, S, 3] in [0, 1]
                            audio: np.ndarray,  # [N_a]
                            num_values: int
                            ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
  """Downsample then upsample each frame (antialiased linear resize) and
  decimate then interpolate the audio (antialiased linear resize), keeping
  `num_values` numbers in total. Returns (video, audio, (s, n))."""
  video = jnp.asarray(video, jnp.float32)
  audio = jnp.asarray(audio, jnp.float32).reshape(-1)
  t, side = video.shape[0], video.shape[1]
  s, n = baseline_sizes(num_values, video.shape, audio.shape[0])
  small = jax.image.resize(video, (t, s, s, 3), 'linear', antialias=True)
  video_rec = jax.image.resize(small, video.shape, 'linear', antialias=True)
  few = jax.image.resize(audio, (n,), 'linear', antialias=True)
  audio_rec = jax.image.resize(few, audio.shape, 'linear', antialias=True)
  return np.asarray(video_rec), np.asarray(audio_rec), (s, n)


def energy_below(audio: np.ndarray,  # [n, N_a]
                 rate: float, cutoffs) -> dict[float, float]:
  """The share of the clips' summed power spectrum at frequencies up to
  each cutoff (Hz), for audio sampled at `rate`: how much of the signal a
  reconstruction that keeps only those frequencies could recover."""
  audio = np.asarray(audio, np.float64).reshape(len(audio), -1)
  power = np.abs(np.fft.rfft(audio, axis=1)) ** 2
  freqs = np.fft.rfftfreq(audio.shape[1], 1.0 / rate)
  total = power.sum()
  if not total > 0:
    raise ValueError('energy_below: the audio is silent.')
  return {c: float(power[:, freqs <= c].sum() / total) for c in cutoffs}
