"""The multimodal task's pieces: per-example training queries, the model's
per-example decode and explicit label masks, the loss, PSNR, the baseline,
the DEVIATION switches (audio gain, time locality prior, squared-error audio
loss) and the audio spectrum share."""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from perceiver import builders
from perceiver.tasks.multimodal import inputs
from perceiver.tasks.multimodal import metrics
from perceiver.tasks.multimodal import task

GEOMETRY = dict(num_pixels=8 * 32 * 32, num_patches=160, pixels=64,
                patches=4, label_mask_prob=0.5)


def test_queries_depend_on_the_example_not_on_the_split():
  """Examples 0..7 of a step's global batch get the same queries whether one
  process draws all 8 or two processes draw 4 each; so do resumed runs."""
  whole = inputs.training_queries(seed=3, step=5, first=0, count=8, **GEOMETRY)
  halves = [inputs.training_queries(seed=3, step=5, first=f, count=4,
                                    **GEOMETRY) for f in (0, 4)]
  for key in whole:
    np.testing.assert_array_equal(
        whole[key], np.concatenate([h[key] for h in halves]))
  again = inputs.training_queries(seed=3, step=5, first=0, count=8, **GEOMETRY)
  for key in whole:
    np.testing.assert_array_equal(whole[key], again[key])
  # Per example: distinct indices in range, different across examples,
  # steps and seeds; the label masks are a fair coin.
  pix = whole['pixel_index']
  assert pix.shape == (8, 64) and pix.dtype == np.int32
  assert all(len(set(row)) == 64 for row in pix)
  assert pix.min() >= 0 and pix.max() < 8 * 32 * 32
  assert whole['audio_index'].shape == (8, 4)
  assert whole['audio_index'].max() < 160
  assert len({tuple(r) for r in pix}) == 8
  other = inputs.training_queries(seed=3, step=6, first=0, count=8, **GEOMETRY)
  assert not np.array_equal(other['pixel_index'], pix)
  masks = inputs.training_queries(seed=0, step=1, first=0, count=2000,
                                  **GEOMETRY)['label_mask']
  assert 0.45 < masks.mean() < 0.55


def test_query_counts_read_512_samples_as_patches():
  t = task.default_task_config()
  m = ml_collections.ConfigDict(dict(num_frames=16, image_size=224,
                                     audio_samples_per_frame=1920,
                                     samples_per_patch=16))
  assert inputs.query_counts(t, m) == (512, 32)  # 512 samples = 32 patches
  t.train_audio_samples = 500
  with pytest.raises(ValueError, match='multiple of model.samples_per_patch'):
    inputs.query_counts(t, m)
  t.train_audio_samples, t.train_pixels = 512, 10 ** 7
  with pytest.raises(ValueError, match='train_pixels'):
    inputs.query_counts(t, m)


TINY_MODEL = dict(num_frames=2, image_size=8, fourier_image_resolution=2,
                  audio_samples_per_frame=32, samples_per_patch=16,
                  num_classes=3, z_index_dim=4, num_z_channels=8,
                  num_self_attends_per_block=1, decoder_channels=8,
                  audio_num_bands=2, image_num_bands=2)


def _tiny_inputs(batch=3):
  rng = np.random.RandomState(0)
  video = rng.uniform(0, 1, (batch, 2, 8, 8, 3)).astype(np.float32)
  audio = rng.uniform(-1, 1, (batch, 64, 1)).astype(np.float32)
  label = np.eye(3, dtype=np.float32)[[0, 2, 1][:batch]]
  return video, audio, label


@pytest.mark.slow
def test_per_example_queries_equal_one_example_at_a_time():
  """[B, O] subsampled points decode example b at its own points."""
  fwd = builders.video_autoencoder(**TINY_MODEL)
  model = hk.transform_with_state(
      lambda v, a, s, l, m: fwd(v, a, s, is_training=True, label=l,
                                label_mask=m))
  video, audio, label = _tiny_inputs()
  rng = np.random.RandomState(1)
  pix = np.stack([rng.choice(128, 5, replace=False) for _ in range(3)])
  aud = np.stack([rng.choice(4, 2, replace=False) for _ in range(3)])
  mask = np.array([True, False, True])
  params, state = model.init(jax.random.PRNGKey(0), video, audio,
                             {'image': pix, 'audio': aud}, label, mask)
  apply = jax.jit(lambda *a: model.apply(params, state, None, *a)[0])
  out = apply(video, audio, {'image': pix, 'audio': aud}, label, mask)
  assert out['image'].shape == (3, 5, 3) and out['audio'].shape == (3, 32)
  for b in range(3):
    one = apply(video[b:b + 1], audio[b:b + 1],
                {'image': pix[b], 'audio': aud[b]}, label[b:b + 1],
                mask[b:b + 1])
    for key in ('image', 'audio', 'label'):
      np.testing.assert_allclose(out[key][b], one[key][0], rtol=1e-5,
                                 atol=1e-6)
  # An explicit all-True mask is the release's label_mask_prob=1.0 (eval);
  # the label input then does not matter, unlike with the mask off.
  every = {'image': np.arange(128), 'audio': np.arange(4)}
  released = hk.transform_with_state(
      lambda v, a, s, l: builders.video_autoencoder(**TINY_MODEL)(
          v, a, s, is_training=False, label=l))
  ref, _ = jax.jit(released.apply)(params, state, None, video, audio, every,
                                   label)
  # The explicit mask still draws the release's mask key: the seeded init
  # is the release's (tests/test_golden.py checks that one against the
  # release).
  released_params, _ = released.init(  # unjitted: 3x faster than compiling
      jax.random.PRNGKey(0), video, audio, every, label)
  jax.tree.map(np.testing.assert_array_equal, params, released_params)
  masked = apply(video, audio, every, np.zeros_like(label), np.ones(3, bool))
  unmasked = apply(video, audio, every, label, np.zeros(3, bool))
  np.testing.assert_allclose(masked['label'], ref['label'], rtol=1e-5,
                             atol=1e-6)
  assert np.abs(unmasked['label'] - ref['label']).max() > 1e-4
  with pytest.raises(ValueError, match=r'label_mask must be \[B\]'):
    jax.eval_shape(apply, video, audio, every, label, np.ones(2, bool))
  with pytest.raises(ValueError, match=r'\[O\] .*or \[B=3, O\]'):
    jax.eval_shape(apply, video, audio, {'image': pix[:2], 'audio': aud},
                   label, mask)


def _config(**task_overrides):
  c = ml_collections.ConfigDict()
  c.task = task.default_task_config()
  c.task.update(task_overrides)
  c.model = ml_collections.ConfigDict(TINY_MODEL)
  c.scan_layers = False
  c.remat = False
  return c


def test_loss_is_the_weighted_l1_and_cross_entropy_of_the_queries():
  config = _config(train_pixels=5, train_audio_samples=32)
  video, audio, label = _tiny_inputs()
  batch = {'video': video, 'audio': audio, 'label': label,
           'pixel_index': np.array([[0, 1, 2, 3, 127]] * 3, np.int32),
           'audio_index': np.array([[3, 0]] * 3, np.int32)}
  outputs = {'image': np.zeros((3, 5, 3), np.float32),
             'audio': np.zeros((3, 32), np.float32),
             'label': np.zeros((3, 3), np.float32)}
  loss, mets = task.loss_and_metrics(outputs, batch, config)
  flat = video.reshape(3, -1, 3)
  want_v = np.abs(flat[:, [0, 1, 2, 3, 127]]).mean()
  patches = audio.reshape(3, 4, 16)
  want_a = np.abs(patches[:, [3, 0]]).mean()
  np.testing.assert_allclose(mets['video_l1'], want_v, rtol=1e-6)
  np.testing.assert_allclose(mets['audio_l1'], want_a, rtol=1e-6)
  np.testing.assert_allclose(mets['label_ce'], np.log(3), rtol=1e-6)
  np.testing.assert_allclose(
      loss, 0.03 * want_v + 1.0 * want_a + 1e-4 * np.log(3), rtol=1e-6)
  # audio_loss='l2' (a DEVIATION): the audio term is the squared error.
  want_mse = np.square(patches[:, [3, 0]]).mean()
  np.testing.assert_allclose(mets['audio_mse'], want_mse, rtol=1e-6)
  config.task.audio_loss = 'l2'
  loss, _ = task.loss_and_metrics(outputs, batch, config)
  np.testing.assert_allclose(
      loss, 0.03 * want_v + 1.0 * want_mse + 1e-4 * np.log(3), rtol=1e-6)
  config.task.audio_loss = 'l3'
  with pytest.raises(ValueError, match=r"audio_loss='l3'.*\('l1', 'l2'\)"):
    task.loss_and_metrics(outputs, batch, config)


def test_eval_psnr_and_top1_over_real_examples_only():
  config = _config()
  video, audio, label = _tiny_inputs(2)
  noisy = np.clip(video + 0.1, 0, 1)
  outputs = {'image': jnp.asarray(noisy),
             'audio': jnp.asarray(audio[..., 0] * 0.5),
             'label': jnp.asarray(np.array([[5., 0, 0], [5., 0, 0]]))}
  batch = {'video': video, 'audio': audio, 'label': label,
           'mask': np.array([1.0, 0.0])}  # example 1 is padding
  sums = jax.device_get(task.eval_sums(outputs, batch, config))
  out = task.finalize_eval(sums, config)
  mse_v = np.mean((noisy[0] - video[0]) ** 2)
  mse_a = np.mean((0.5 * audio[0]) ** 2)
  np.testing.assert_allclose(out['video_psnr'], 10 * np.log10(1 / mse_v),
                             rtol=1e-5)
  # Audio in [-1, 1]: range R = 2.
  np.testing.assert_allclose(out['audio_psnr'], 10 * np.log10(4 / mse_a),
                             rtol=1e-5)
  assert out['label_top1'] == 1.0 and out['num_examples'] == 1.0
  np.testing.assert_allclose(
      out['loss'], 0.03 * out['video_l1'] + out['audio_l1']
      + 1e-4 * out['label_ce'], rtol=1e-6)
  np.testing.assert_allclose(out['audio_mse'], mse_a, rtol=1e-5)
  config.task.audio_loss = 'l2'
  np.testing.assert_allclose(
      task.finalize_eval(sums, config)['loss'], 0.03 * out['video_l1']
      + out['audio_mse'] + 1e-4 * out['label_ce'], rtol=1e-6)


def test_baseline_keeps_the_latent_budget():
  rng = np.random.RandomState(0)
  # A smooth real-like signal: the baseline must beat zeros by far.
  x = np.linspace(0, 1, 64)
  video = np.broadcast_to((np.sin(6 * x)[:, None] * np.cos(4 * x)[None, :]
                           * 0.4 + 0.5)[None, :, :, None],
                          (16, 64, 64, 3)).astype(np.float32)
  audio = (0.3 * np.sin(np.arange(10240) * 2 * np.pi * 50 / 16000)
           + 0.01 * rng.randn(10240)).astype(np.float32)
  flat = metrics.np_psnr(np.full_like(video, video.mean()), video,
                        metrics.VIDEO_RANGE)
  silence = metrics.np_psnr(np.zeros_like(audio), audio, metrics.AUDIO_RANGE)
  psnrs = []
  for budget in (22 * 64, 88 * 64):
    v, a, (s, n) = metrics.baseline_reconstruction(video, audio, budget)
    assert 16 * s * s * 3 + n == budget
    assert v.shape == video.shape and a.shape == audio.shape
    psnrs.append(metrics.np_psnr(v, video, metrics.VIDEO_RANGE))
    assert psnrs[-1] > flat + 5
    assert metrics.np_psnr(a, audio, metrics.AUDIO_RANGE) > silence + 10
  assert psnrs[1] > psnrs[0]  # more values, better reconstruction


def _decode_every_output(label, **extra):
  """The tiny model (with `extra` kwargs) decoding all its outputs."""
  every = {'image': np.arange(128), 'audio': np.arange(4)}
  fwd = builders.video_autoencoder(**TINY_MODEL, **extra)
  return hk.transform_with_state(
      lambda v, a: fwd(v, a, every, is_training=False, label=label))


def test_audio_gain_scales_the_audio_in_and_out():
  """audio_gain (a DEVIATION, off by default): the same parameters and
  seeded init; the model sees the audio times G and its decoded audio is
  divided by G, so inputs and outputs stay in the caller's units."""
  gain = 16.0
  video, audio, label = _tiny_inputs()
  model = functools.partial(_decode_every_output, label)

  release, gained = model(), model(audio_gain=gain)
  params, state = release.init(jax.random.PRNGKey(0), video, audio)
  gained_params, _ = gained.init(jax.random.PRNGKey(0), video, audio)
  jax.tree.map(np.testing.assert_array_equal, gained_params, params)
  got, _ = gained.apply(params, state, None, video, audio)
  want, _ = release.apply(params, state, None, video, gain * audio)
  np.testing.assert_allclose(got['audio'], want['audio'] / gain, rtol=1e-5,
                             atol=1e-6)
  for key in ('image', 'label'):
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
  plain, _ = release.apply(params, state, None, video, audio)
  assert np.abs(plain['image'] - got['image']).max() > 1e-4
  with pytest.raises(ValueError, match='audio_gain must be positive'):
    builders.video_autoencoder(**TINY_MODEL, audio_gain=0.0)


def test_local_width_prior_in_time():
  """local_width (a DEVIATION, off by default): the same parameters and
  seeded init; latent j starts on the j-th time slice of the clip, and a
  pixel's query on the latents that hold its video patch; per-example
  points and the chunked full decode agree with the subsampled one."""
  video, audio, label = _tiny_inputs()
  every = {'image': np.arange(128), 'audio': np.arange(4)}

  def model(**extra):
    fwd = builders.video_autoencoder(**TINY_MODEL, **extra)
    return hk.transform_with_state(
        lambda v, a, s, full: fwd(v, a, s, is_training=False, label=label,
                                  full_outputs=full, chunks=2))

  release, local = model(), model(local_width=1.0)
  params, state = release.init(jax.random.PRNGKey(0), video, audio, every,
                               False)
  local_params, _ = local.init(jax.random.PRNGKey(0), video, audio, every,
                               False)
  jax.tree.map(np.testing.assert_array_equal, local_params, params)
  apply = jax.jit(lambda *a: local.apply(params, state, None, *a)[0],
                  static_argnums=3)
  got = apply(video, audio, every, False)
  plain = release.apply(params, state, None, video, audio, every, False)[0]
  assert np.abs(plain['image'] - got['image']).max() > 1e-4
  # The chunked full decode gives every output with the same priors.
  full = apply(video, audio, None, True)
  np.testing.assert_allclose(full['image'].reshape(3, -1, 3), got['image'],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(full['audio'], got['audio'], rtol=1e-5,
                             atol=1e-6)
  # Per-example points [B, O]: each example at its own points.
  rng = np.random.RandomState(1)
  pix = np.stack([rng.choice(128, 5, replace=False) for _ in range(3)])
  aud = np.stack([rng.choice(4, 2, replace=False) for _ in range(3)])
  batched = apply(video, audio, {'image': pix, 'audio': aud}, False)
  for b in range(3):
    np.testing.assert_allclose(batched['image'][b], got['image'][b, pix[b]],
                               rtol=1e-5, atol=1e-6)
    samples = (16 * aud[b][:, None] + np.arange(16)).ravel()
    np.testing.assert_allclose(batched['audio'][b], got['audio'][b, samples],
                               rtol=1e-5, atol=1e-6)
  # The priors' geometry: 4 latents over 2 frames; 4 audio patches, 8 video
  # patches (2 x 2 x 2), 128 pixels (2 x 8 x 8).
  arch = builders._VideoAutoencoder(  # pylint: disable=protected-access
      **TINY_MODEL, spatial_downsample=4, label_mask_prob=1.0,
      encoder_kwargs={}, decoder_kwargs={})
  enc = np.asarray(arch.encoder_local_bias(1.0))  # [N, M]
  assert enc.shape == (4, 4 + 8 + 1)
  np.testing.assert_array_equal(enc.argmax(0)[:4], np.arange(4))  # audio
  np.testing.assert_array_equal(enc.argmax(0)[4:12], np.arange(8) // 2)
  np.testing.assert_array_equal(enc[:, -1], 0.0)  # the label: no prior
  dec = np.asarray(arch.decoder_local_bias(1.0, every))  # [O, N]
  assert dec.shape == (4 + 128 + 1, 4)
  t, h, w = np.unravel_index(np.arange(128), (2, 8, 8))
  patch = t * 4 + h // 4 * 2 + w // 4  # the video patch holding the pixel
  np.testing.assert_array_equal(dec[4:132].argmax(1),
                                enc[:, 4 + patch].argmax(0))
  np.testing.assert_array_equal(dec[:4].argmax(1), np.arange(4))
  np.testing.assert_array_equal(dec[-1], 0.0)
  with pytest.raises(ValueError, match='local_width must be >= 0'):
    builders.video_autoencoder(**TINY_MODEL, local_width=-1.0)


def test_encoder_and_decoder_kwargs_override_the_release_settings():
  """encoder_kwargs and decoder_kwargs may override what video_autoencoder
  fixes (the release's one cross-attention head, its decoder without a
  query residual), not clash with it."""
  video, audio, label = _tiny_inputs()
  model = functools.partial(_decode_every_output, label)

  narrow = {'qk_channels': 8, 'v_channels': 8}  # 2 heads of 4 channels
  release = model(encoder_kwargs=narrow)
  heads = model(encoder_kwargs=dict(narrow, num_cross_attend_heads=2))
  params, state = release.init(jax.random.PRNGKey(0), video, audio)
  jax.tree.map(np.testing.assert_array_equal,
               heads.init(jax.random.PRNGKey(0), video, audio)[0], params)
  residual = model(encoder_kwargs=narrow,
                   decoder_kwargs={'use_query_residual': True})
  jax.tree.map(np.testing.assert_array_equal,
               residual.init(jax.random.PRNGKey(0), video, audio)[0], params)
  one = release.apply(params, state, None, video, audio)[0]
  for other in (heads, residual):
    two = other.apply(params, state, None, video, audio)[0]
    assert np.abs(one['image'] - two['image']).max() > 1e-5


def test_energy_below_splits_two_tones():
  """Two tones of equal amplitude: half the energy below a cutoff between
  them, all of it above both, none below both."""
  t = np.arange(16000) / 16000
  audio = np.sin(2 * np.pi * 100 * t) + np.sin(2 * np.pi * 1000 * t)
  shares = metrics.energy_below(audio[None], 16000, (50, 500, 2000))
  np.testing.assert_allclose([shares[50], shares[500], shares[2000]],
                             [0.0, 0.5, 1.0], atol=1e-9)
  with pytest.raises(ValueError, match='silent'):
    metrics.energy_below(np.zeros((1, 8)), 16000, (100,))
