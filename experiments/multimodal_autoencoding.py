r"""Multimodal autoencoding of video + audio + label ([P] §4.3, App. I).

One Perceiver IO reconstructs a Kinetics-700-2020 clip (16 frames of
224 x 224, 30,720 samples of 48 kHz audio) and its 700-way label from one
latent array; training decodes 512 pixels, the audio of 512 samples and the
label per example, evaluation decodes all 802,816 + 1,920 + 1 outputs
(perceiver/tasks/multimodal/).

  python launch/train.py --config=experiments/multimodal_autoencoding.py \
      --workdir=gs://bucket/mm784 --config.input.data_dir=gs://bucket/tfds
  python launch/train.py \
      --config=experiments/multimodal_autoencoding.py:cpu,latents=44 \
      --workdir=workdirs/mm_cpu44
  python launch/reconstruct.py --workdir=workdirs/mm_cpu44 \
      --config=experiments/multimodal_autoencoding.py:cpu,latents=44 \
      --video=clip.mp4 --output=out/

Expected ([P] Table 4, N latents x 512, Kinetics-700-2020):
  N = 784 (88x):  audio PSNR 26.97, video PSNR 24.37, top-1 10.2%
  N = 392 (176x): audio PSNR 25.33, video PSNR 24.27, top-1  8.6%
  N = 196 (352x): audio PSNR 14.15, video PSNR 23.21, top-1 11.5%
The CPU-scale reproduction on real films and its baseline:
benchmarks/repro/MULTIMODAL.md.

Variants (comma-separated after the colon):
  latents=N  784 (default), 392 or 196; with cpu: 88 (default), 44 or 22
             (the same compression ratios; perceiver/tasks/multimodal/
             recipes.py).
  cpu        the CPU-sized model on the embedded real films
             (`embedded_av/cpu`: bigbuckbunny + Megamind; run
             `bash scripts/fetch_video_data.sh` once for Megamind).
  steps=N    training steps (the schedule follows).
  audio_gain=G  DEVIATION: the audio is multiplied by G on the way in and
             the decoded audio divided by G (builders.video_autoencoder;
             no parameter changes). Tried on the CPU films' quiet audio,
             which is decoded as silence with or without it
             (benchmarks/repro/MULTIMODAL.md).
  local=W    DEVIATION: a Gaussian locality prior in time, W latents wide,
             on the encoder's and the decoder's cross-attention
             (builders.video_autoencoder's local_width; no parameters).
  smoke      2 steps of a tiny model on `embedded_av/tiny` (CI).
"""
from perceiver.tasks.multimodal import recipes
from perceiver.train import config_lib


def get_config(arg=None):
  args = config_lib.parse_variants(arg, recipes.VARIANTS,
                                   'experiments/multimodal_autoencoding.py')
  return recipes.from_variants(args)
