"""Multimodal autoencoding of video + audio + label ([P] §4.3, App. I).

  task.py         the task interface (perceiver/train/task.py)
  recipes.py      configs of experiments/multimodal_autoencoding.py
  inputs.py       the clip features, preprocessing, per-example queries
  media.py        decoding/writing video and audio files (PyAV)
  embedded.py     `embedded_av`: real films at CPU scale, built offline
  kinetics.py     `kinetics700_2020_av`: Kinetics-700-2020 from local files
  metrics.py      loss, PSNR, the down/up-sampling baseline
  reconstruct.py  reconstructions to look at and hear (launch/reconstruct.py)
"""
