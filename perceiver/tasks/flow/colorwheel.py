"""The Middlebury colour coding of optical flow (Baker et al. 2011, §4).

Glossary of shapes: H, W image size; flow [H, W, 2] (u, v) in pixels.

Direction is hue and magnitude is saturation: white is no motion, and the
colours run round a wheel of 55 hues built from six ramps between the
primaries and secondaries (red-yellow 15, yellow-green 6, green-cyan 4,
cyan-blue 11, blue-magenta 13, magenta-red 6 steps). Magnitudes are divided
by `max_flow` (default: the largest valid magnitude); beyond 1 the colour is
darkened. This is the colouring of the Middlebury, Sintel and KITTI sites
and of RAFT's figures.
"""
from typing import Optional

import numpy as np

# (steps, start colour, end colour) of the six ramps, RGB in [0, 255].
_RAMPS = ((15, (255, 0, 0), (255, 255, 0)),
          (6, (255, 255, 0), (0, 255, 0)),
          (4, (0, 255, 0), (0, 255, 255)),
          (11, (0, 255, 255), (0, 0, 255)),
          (13, (0, 0, 255), (255, 0, 255)),
          (6, (255, 0, 255), (255, 0, 0)))


def wheel() -> np.ndarray:
  """[55, 3] float: the hues, counter-clockwise from red."""
  rows = []
  for steps, start, end in _RAMPS:
    t = np.arange(steps)[:, None] / steps
    rows.append((1 - t) * np.asarray(start, float) + t * np.asarray(end, float))
  return np.concatenate(rows) / 255.0


def flow_to_color(flow: np.ndarray, max_flow: Optional[float] = None,
                  valid: Optional[np.ndarray] = None) -> np.ndarray:
  """[H, W, 2] flow -> [H, W, 3] uint8 RGB; invalid pixels are black."""
  flow = np.asarray(flow, np.float64)
  if flow.ndim != 3 or flow.shape[-1] != 2:
    raise ValueError(f'flow_to_color expects flow [H, W, 2]; got {flow.shape}.')
  ok = np.all(np.isfinite(flow), -1)
  if valid is not None:
    ok &= np.asarray(valid, bool)
  u = np.where(ok, flow[..., 0], 0.0)
  v = np.where(ok, flow[..., 1], 0.0)
  radius = np.hypot(u, v)
  if max_flow is None:
    max_flow = float(radius.max()) if radius.size else 0.0
  radius = radius / max(max_flow, 1e-9)
  colours = wheel()
  n = len(colours)
  # The Middlebury convention: atan2(-v, -u) / pi in [-1, 1] indexes the
  # wheel, so rightward motion (+u) is red and leftward (-u) cyan.
  position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)
  k0 = np.floor(position).astype(int)
  k1 = (k0 + 1) % n
  frac = (position - k0)[..., None]
  colour = (1 - frac) * colours[k0] + frac * colours[k1]
  r = radius[..., None]
  colour = np.where(r <= 1, 1 - r * (1 - colour), colour * 0.75)
  colour = np.where(ok[..., None], colour, 0.0)
  return np.round(colour * 255).astype(np.uint8)


def legend(size: int = 64) -> np.ndarray:
  """[size, size, 3] uint8: the colour of every flow in a disc (a key)."""
  c = (size - 1) / 2
  y, x = np.mgrid[0:size, 0:size]
  flow = np.stack([(x - c) / c, (y - c) / c], -1)
  inside = np.hypot(flow[..., 0], flow[..., 1]) <= 1
  image = flow_to_color(flow, max_flow=1.0)
  image[~inside] = 255
  return image
