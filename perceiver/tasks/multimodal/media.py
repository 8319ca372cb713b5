"""Reading and writing video and audio files with PyAV (FFmpeg in a wheel).

Shapes: T frames, S image side (square), N_a audio samples, F frames of a
source file (its own rate), R audio sample rate.

A clip, as the multimodal task sees it ([P] §4.3, App. I; [code] video
colab), is frames on a fixed frame-rate timeline, each cropped to its
centre square and resized to S x S (the colab's `crop_center_square` then
resize), with uint8 RGB values, plus mono audio resampled to R and aligned
with the first frame. `decode` turns any file FFmpeg reads into that form;
the Kinetics reader, the embedded dataset and launch/reconstruct.py all use
it, so a clip means the same thing everywhere.

Frame k of the timeline (time k / fps after the first video frame) is the
source frame on screen at that time, so a 23.976 fps film and a 25 fps
clip give the same timeline. Audio packets are placed by their timestamps;
a packet FFmpeg cannot decode (Megamind.avi has one) leaves silence of its
length instead of shifting the rest. A file without an audio track gives
silence and `has_audio=False`.
"""
import dataclasses
import fractions
import os
import wave
from typing import Optional, Sequence

import av
import numpy as np


@dataclasses.dataclass(frozen=True)
class Media:
  frames: np.ndarray  # [T, S, S, 3] uint8
  audio: np.ndarray  # [N_a] float32 in [-1, 1], N_a = T * rate / fps
  fps: float
  audio_rate: int
  has_audio: bool

  @property
  def seconds(self) -> float:
    return len(self.frames) / self.fps


def _square(image: np.ndarray, size: int) -> np.ndarray:
  """[H, W, 3] uint8 -> its centre square resized to [size, size, 3]."""
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  crop = np.ascontiguousarray(image[top:top + side, left:left + side])
  if side == size:
    return crop
  frame = av.VideoFrame.from_ndarray(crop, format='rgb24')
  # Area averaging when shrinking (no aliasing), bicubic when enlarging.
  method = 'AREA' if side > size else 'BICUBIC'
  return frame.reformat(width=size, height=size,
                        interpolation=method).to_ndarray()


def _resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
  """[N] float32 mono -> [N * rate_out / rate_in] (FFmpeg's swresample)."""
  if rate_in == rate_out or audio.size == 0:
    return audio
  frame = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32),
                                     format='flt', layout='mono')
  frame.sample_rate = rate_in
  frame.pts = 0
  resampler = av.AudioResampler(format='flt', layout='mono', rate=rate_out)
  pieces = [f.to_ndarray()[0] for f in resampler.resample(frame)]
  pieces += [f.to_ndarray()[0] for f in resampler.resample(None)]
  return np.concatenate(pieces) if pieces else np.zeros([0], np.float32)


def decode(path: str, *, image_size: int, audio_rate: int, fps: float = 25.0,
           start: float = 0.0, seconds: Optional[float] = None) -> Media:
  """Decodes `path` into a clip timeline (see the module docstring).

  Args:
    path: any video file FFmpeg reads (mp4, avi, mkv, webm...).
    image_size: S, the side of the square frames.
    audio_rate: R, the audio sample rate of the result.
    fps: the frame rate of the timeline ([P]: 25).
    start, seconds: decode only [start, start + seconds) of the timeline
      (seconds None: to the end).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f'No video file at {path}.')
  try:
    container = av.open(path)
  except av.error.FFmpegError as e:
    raise ValueError(f'{path}: FFmpeg cannot open it ({e}).') from e
  with container:
    if not container.streams.video:
      raise ValueError(f'{path} has no video stream.')
    vstream = container.streams.video[0]
    astream = container.streams.audio[0] if container.streams.audio else None
    end = None if seconds is None else start + seconds
    t0 = None  # time of the first video frame: the timeline's origin
    shown = []  # (time, [S, S, 3]) frames that the timeline may show
    chunks = []  # (time, [n] mono float32) audio at the source rate
    src_rate = astream.codec_context.sample_rate if astream else audio_rate
    to_mono = av.AudioResampler(format='flt', layout='mono', rate=src_rate)
    streams = [vstream] + ([astream] if astream else [])
    for packet in container.demux(*streams):
      try:
        frames = packet.decode()
      except av.error.InvalidDataError:
        continue  # a corrupt packet: its span stays silent / repeats a frame
      for frame in frames:
        if frame.pts is None:
          continue
        time = float(frame.pts * frame.time_base)
        if isinstance(frame, av.VideoFrame):
          if t0 is None:
            t0 = time
          rel = time - t0
          if end is not None and rel >= end:
            continue
          image = _square(frame.to_ndarray(format='rgb24'), image_size)
          if rel <= start:
            shown = [(rel, image)]  # the frame on screen at `start`
          else:
            shown.append((rel, image))
        else:
          for mono in to_mono.resample(frame):
            chunks.append((time, mono.to_ndarray()[0].copy()))
            time += mono.samples / src_rate
  if t0 is None or not shown:
    raise ValueError(f'{path}: no decodable video frames in [{start}, '
                     f'{end if end is not None else "end"}) s.')
  last_rel = shown[-1][0]
  frame_period = float(1 / vstream.average_rate) if vstream.average_rate \
      else 1.0 / fps
  stop = last_rel + frame_period if end is None else min(
      end, last_rel + frame_period)
  num = int(np.floor((stop - start) * fps + 1e-6))
  if num <= 0:
    raise ValueError(f'{path}: shorter than one frame after {start} s.')
  times = np.asarray([t for t, _ in shown])
  out = np.zeros((num, image_size, image_size, 3), np.uint8)
  for k in range(num):
    i = int(np.searchsorted(times, start + k / fps + 1e-6, side='right')) - 1
    out[k] = shown[max(i, 0)][1]

  # Audio on the same timeline, at the source rate, then resampled.
  n_src = int(round(num / fps * src_rate))
  audio = np.zeros([n_src], np.float32)
  for time, samples in chunks:
    offset = int(round((time - t0 - start) * src_rate))
    lo, hi = max(offset, 0), min(offset + len(samples), n_src)
    if hi > lo:
      audio[lo:hi] = samples[lo - offset:hi - offset]
  audio = _resample(audio, src_rate, audio_rate)
  want = int(round(num / fps * audio_rate))
  audio = np.pad(audio[:want], (0, max(want - len(audio), 0)))
  return Media(frames=out, audio=np.clip(audio, -1, 1).astype(np.float32),
               fps=fps, audio_rate=audio_rate, has_audio=bool(chunks))


# ---------------------------------------------------------------------------
# Writing: WAV, PNG and MP4.
# ---------------------------------------------------------------------------


def write_wav(path: str, audio: np.ndarray, rate: int) -> str:
  """[N_a] float in [-1, 1] -> 16-bit PCM mono WAV at `rate`."""
  pcm = np.round(np.clip(np.asarray(audio, np.float64), -1, 1) * 32767)
  with wave.open(path, 'wb') as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(int(rate))
    f.writeframes(pcm.astype('<i2').tobytes())
  return path


def write_png(path: str, image: np.ndarray) -> str:
  """[H, W, 3] uint8 -> PNG."""
  image = np.ascontiguousarray(image, np.uint8)
  codec = av.CodecContext.create('png', 'w')
  codec.width, codec.height = image.shape[1], image.shape[0]
  codec.pix_fmt = 'rgb24'
  packets = codec.encode(av.VideoFrame.from_ndarray(image, format='rgb24'))
  packets += codec.encode(None)
  with open(path, 'wb') as f:
    for packet in packets:
      f.write(bytes(packet))
  return path


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
  """[..., H, W, C] -> [..., H * f, W * f, C] by pixel repetition."""
  return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def write_mp4(path: str, frames: np.ndarray, fps: float,
              audio: Optional[np.ndarray] = None,
              audio_rate: Optional[int] = None) -> str:
  """[T, H, W, 3] uint8 (H, W even) -> H.264 MP4, with AAC audio if given."""
  frames = np.asarray(frames, np.uint8)
  t, h, w = frames.shape[:3]
  if h % 2 or w % 2:
    raise ValueError(f'write_mp4 needs even frame sizes; got {h}x{w}.')
  with av.open(path, 'w') as out:
    rate = fractions.Fraction(fps).limit_denominator(1001)
    video = out.add_stream('libx264', rate=rate)
    video.width, video.height, video.pix_fmt = w, h, 'yuv420p'
    video.options = {'crf': '12'}
    sound = None
    if audio is not None:
      sound = out.add_stream('aac', rate=int(audio_rate))
      sound.layout = 'mono'
    for i in range(t):
      out.mux(video.encode(av.VideoFrame.from_ndarray(frames[i], 'rgb24')))
    out.mux(video.encode(None))
    if sound is not None:
      samples = np.asarray(audio, np.float32)[None, :]
      step = 1024
      for lo in range(0, samples.shape[1], step):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, lo:lo + step]), format='flt',
            layout='mono')
        frame.sample_rate = int(audio_rate)
        frame.pts = lo
        out.mux(sound.encode(frame))
      out.mux(sound.encode(None))
  return path


def frame_grid(rows: Sequence[np.ndarray], every: int = 1,
               gap: int = 2) -> np.ndarray:
  """Rows of [T, S, S, 3] uint8 clips -> one [H, W, 3] image, showing every
  `every`-th frame, separated by `gap` white pixels."""
  picked = [np.asarray(r)[::every] for r in rows]
  t, s = picked[0].shape[0], picked[0].shape[1]
  grid = np.full((len(rows) * (s + gap) - gap, t * (s + gap) - gap, 3), 255,
                 np.uint8)
  for i, clip in enumerate(picked):
    for j in range(t):
      grid[i * (s + gap):i * (s + gap) + s,
           j * (s + gap):j * (s + gap) + s] = clip[j]
  return grid
