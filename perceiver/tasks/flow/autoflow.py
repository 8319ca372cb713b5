"""AutoFlow-style training pairs, rendered on the fly with exact flow.

[P] §4.2 and App. H train on AutoFlow (Sun et al. 2021, "AutoFlow: Learning
a Better Training Set for Optical Flow"): random textured polygon and
ellipse layers over a textured background, each layer moving with its own
parametric motion. This module renders such pairs deterministically from
(seed, example index), so a resumed run sees exactly the pairs an
uninterrupted one would.

Glossary of shapes: H, W frame size; P = H*W pixels; K layers (background
first, then the foregrounds, bottom to top); J non-rigid components; points
are [P, 2] arrays of (x, y) in pixels.

The scene. Layer k has a shape S_k (the whole plane for the background, an
ellipse or a star-shaped polygon otherwise), a texture (a real photo through
a random similarity map, mirrored to tile the plane, times a colour gain;
scaled so that a photo spans about as much of a W-wide frame as of a
496-wide one, and sampled from a box-filtered pyramid when minified)
and a motion

    M_k(x) = c_k + A_k (x - c_k) + t_k + sum_j a_kj sin(w_kj . x + phi_kj),

a rotation-and-scale A_k about the layer centre c_k, a translation t_k and a
mild smooth non-rigid field whose Lipschitz constant is bounded
(`nonrigid_lipschitz`), so that M_k is invertible.

Rendering. Frame 1 shows at scene point x the topmost layer k with
x in S_k, coloured tex_k(x). Frame 2 shows at x the topmost layer with
M_k^{-1}(x) in S_k, coloured tex_k(M_k^{-1}(x)); the inverse is a fixed
point iteration (a contraction by the Lipschitz bound), checked to converge.
The camera (zoom, stretch, flips and the crop position: the spatial
augmentation) maps scene points to pixels by p = s * (x - o), so the forward
flow at pixel p is s * (M_k(x) - x): exact, with no resampling of images or
flow. It is defined at every pixel; `valid` marks the pixels whose
correspondence lands inside frame 2 and is not hidden there by a layer on
top (nor by an eraser box): the non-occluded pixels.

Augmentation (`severity` in [0, 1] scales every range below; 0 = none).
RAFT's parameters for its AutoFlow/Chairs stage, which App. H says the
paper uses: log2 zoom in [-0.1, 1.0] and stretch 0.2 (each with
probability 0.8), horizontal flip 0.5, vertical flip 0.1; colour jitter
(brightness, contrast, saturation 0.4, hue 0.5/pi), different for the two
frames with probability 0.2; an eraser (probability 0.5) filling 1-2 boxes
of frame 2 (0.1-0.2 of the width) with its mean colour.

DEVIATION: [P] App. H feeds each pair reversed in its first phase and
approximates the reverse flow by averaging the forward flows that end at a
pixel, because AutoFlow stores only forward flow. This renderer knows each
layer's motion, so the reverse pair carries the exact backward flow.
DEVIATION: the spatial augmentation is applied by the camera that renders
the pair rather than by resampling rendered images, which keeps the flow
exact; textures are resampled once either way.
"""
import dataclasses
import fnmatch
import functools
import os
from typing import Any, Optional, Sequence

import numpy as np

from perceiver.tasks.flow import flow_io

# scikit-image's photos that are in its wheel (no download).
SKIMAGE_PHOTOS = ('astronaut', 'camera', 'coffee', 'chelsea', 'rocket',
                  'hubble_deep_field', 'retina', 'grass', 'gravel', 'brick',
                  'moon', 'coins', 'immunohistochemistry')
# Images of opencv-doc that the reproduction evaluates on, or that are
# frames of real flow sequences: never textures.
EXCLUDED_TEXTURES = ('aloe*', 'rubberwhale*', 'basketball*', 'left*',
                     'right*', 'Blender_Suzanne*', 'leuven*', 'graf*')
_SALT_SCENE, _SALT_AUGMENT = 11, 12
REFERENCE_WIDTH = 496  # [code] TRAIN_SIZE's width
_PYRAMID_LEVELS = 5
_FIXED_POINT_STEPS = 60


@dataclasses.dataclass(frozen=True)
class SceneOptions:
  """Ranges of the random scenes (fractions are of the frame width W)."""
  min_layers: int = 2  # foreground layers, besides the background
  max_layers: int = 5
  max_translation: float = 0.1  # |t_k| per axis, as a fraction of W
  max_rotation: float = 0.15  # radians, either way
  max_log2_scale: float = 0.15  # per-layer scale 2^U(-s, s)
  nonrigid_lipschitz: float = 0.2  # bound on |grad d_k| (must be < 0.5)
  nonrigid_components: int = 3  # J
  min_radius: float = 0.08  # foreground size, as a fraction of W
  max_radius: float = 0.3
  max_texture_log2_zoom: float = 1.0  # texture magnification 2^U(-z, z)
  # Texture pixels per frame pixel at zoom 1; 0 = REFERENCE_WIDTH / W, so
  # a photo spans about the same part of the frame at any resolution.
  texture_scale: float = 0.0


# RAFT's augmentation for its Chairs/AutoFlow stage, at severity 1 (RAFT's
# train.py passes min_scale -0.1, max_scale 1.0 for that stage; the rest are
# FlowAugmentor's fixed values, which AutoFlow's raft_augmentation.py keeps).
# perceiver/tasks/flow/autoflow_static.py augments the released pairs with
# the same values.
MIN_LOG2_ZOOM, MAX_LOG2_ZOOM = -0.1, 1.0
STRETCH, STRETCH_PROB, SPATIAL_PROB = 0.2, 0.8, 0.8
HFLIP_PROB, VFLIP_PROB = 0.5, 0.1
# RAFT writes the hue range as 0.5 / 3.14.
JITTER, HUE, ASYMMETRIC_PROB = 0.4, 0.5 / np.pi, 0.2
# RAFT erases boxes of 50-100 px in frames about 496 px wide.
ERASER_PROB, ERASER_SIZE = 0.5, (0.1, 0.2)

# ---------------------------------------------------------------------------
# Textures
# ---------------------------------------------------------------------------


def _as_texture(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, -1)
  image = image[..., :3]
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / 255.0
  return np.ascontiguousarray(image, np.float32)


@functools.lru_cache(maxsize=None)
def skimage_textures() -> tuple[np.ndarray, ...]:
  """The offline photos of scikit-image, [h, w, 3] float32 in [0, 1]."""
  try:
    from skimage import data  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('The flow generator textures its layers with '
                      'scikit-image\'s photos: pip install scikit-image '
                      '(requirements.txt pins it).') from e
  return tuple(_as_texture(getattr(data, name)()) for name in SKIMAGE_PHOTOS)


@functools.lru_cache(maxsize=None)
def directory_textures(path: str, exclude: Sequence[str] = EXCLUDED_TEXTURES,
                       min_size: int = 128) -> tuple[np.ndarray, ...]:
  """Photos in `path` (e.g. opencv-doc's examples/data), sorted by name;
  files matching `exclude` and images under `min_size` pixels are skipped."""
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f'Texture folder {path} does not exist. opencv-doc\'s images: run '
        'bash scripts/fetch_flow_data.sh (it extracts examples/data of the '
        'Debian package), or drop the folder from config.input.texture_dirs.')
  out = []
  for name in sorted(os.listdir(path)):
    if not name.lower().endswith(('.png', '.jpg', '.jpeg')):
      continue
    if any(fnmatch.fnmatch(name, pattern) for pattern in exclude):
      continue
    image = flow_io.read_image(os.path.join(path, name))
    if min(image.shape[:2]) >= min_size and image.std() > 10:
      out.append(_as_texture(image))
  if not out:
    raise ValueError(f'No usable texture images (PNG/JPEG of at least '
                     f'{min_size} px) in {path}.')
  return tuple(out)


def textures(texture_dirs: Sequence[str] = ()) -> tuple[np.ndarray, ...]:
  """scikit-image's photos plus those of each folder in `texture_dirs`."""
  out = list(skimage_textures())
  for path in texture_dirs:
    out.extend(directory_textures(path))
  return tuple(out)


def _mirror(coord: np.ndarray, size: int) -> np.ndarray:
  """Reflects coordinates into [0, size - 1] (the texture tiles the plane
  mirrored, so it is continuous everywhere)."""
  period = 2 * (size - 1)
  m = np.mod(coord, period)
  return np.where(m > size - 1, period - m, m)


def _bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
  """image [h, w, C] at points xy [P, 2] (mirrored) -> [P, C]."""
  h, w = image.shape[:2]
  x = _mirror(xy[:, 0], w)
  y = _mirror(xy[:, 1], h)
  x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
  y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
  fx = (x - x0)[:, None]
  fy = (y - y0)[:, None]
  top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
  bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
  return top * (1 - fy) + bottom * fy


_PYRAMIDS: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}


def pyramid(image: np.ndarray) -> list[np.ndarray]:
  """[image, 2x box-averaged, 4x, ...] (cached per array): minified
  textures are sampled from the level that matches, without aliasing."""
  key = id(image)
  if key not in _PYRAMIDS or _PYRAMIDS[key][0] is not image:
    if len(_PYRAMIDS) > 256:
      _PYRAMIDS.clear()
    levels = [image]
    while len(levels) < _PYRAMID_LEVELS and min(levels[-1].shape[:2]) >= 64:
      x = levels[-1]
      h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
      levels.append(x[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean((1, 3)))
    _PYRAMIDS[key] = (image, levels)
  return _PYRAMIDS[key][1]


# ---------------------------------------------------------------------------
# Layers: shape, texture and motion
# ---------------------------------------------------------------------------


def _rotation(angle: float) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, -s], [s, c]])


@dataclasses.dataclass
class Layer:
  """One layer of a scene (scene coordinates are pixels at zoom 1)."""
  texture: int  # index into the texture pool
  texture_map: np.ndarray  # [2, 3] affine: scene point -> texture pixel
  level: int  # the pyramid level sampled (2^level texture pixels each)
  gain: np.ndarray  # [3] colour gain
  shape: str  # 'plane' | 'ellipse' | 'polygon'
  outline: np.ndarray  # ellipse: [cx, cy, rx, ry, angle]; polygon: [V, 2]
  centre: np.ndarray  # [2] c_k
  linear: np.ndarray  # [2, 2] A_k
  translation: np.ndarray  # [2] t_k
  amplitudes: np.ndarray  # [J, 2] a_kj
  frequencies: np.ndarray  # [J, 2] w_kj
  phases: np.ndarray  # [J] phi_kj

  def nonrigid(self, u: np.ndarray) -> np.ndarray:  # [P, 2] -> [P, 2]
    return np.sin(u @ self.frequencies.T + self.phases) @ self.amplitudes

  def motion(self, u: np.ndarray) -> np.ndarray:
    """M_k(u): where scene point u of frame 1 is in frame 2. [P, 2]."""
    return (self.centre + (u - self.centre) @ self.linear.T +
            self.translation + self.nonrigid(u))

  def inverse_motion(self, x: np.ndarray) -> np.ndarray:
    """M_k^{-1}(x) by the contraction u <- c + A^-1 (x - t - d(u) - c)."""
    inv = np.linalg.inv(self.linear)
    base = x - self.translation - self.centre
    u = self.centre + base @ inv.T
    for _ in range(_FIXED_POINT_STEPS):
      new = self.centre + (base - self.nonrigid(u)) @ inv.T
      step = np.abs(new - u).max(initial=0.0)
      u = new
      if step < 1e-7:
        break
    residual = np.abs(self.motion(u) - x).max(initial=0.0)
    if residual > 1e-3:
      raise FloatingPointError(
          f'Layer motion inversion did not converge (residual {residual:g} '
          'px); lower SceneOptions.nonrigid_lipschitz.')
    return u

  def inside(self, u: np.ndarray) -> np.ndarray:  # [P, 2] -> [P] bool
    if self.shape == 'plane':
      return np.ones(len(u), bool)
    if self.shape == 'ellipse':
      cx, cy, rx, ry, angle = self.outline
      local = (u - [cx, cy]) @ _rotation(angle)  # rotate by -angle
      return (local[:, 0] / rx) ** 2 + (local[:, 1] / ry) ** 2 <= 1
    # Even-odd rule over the polygon's edges.
    x, y = u[:, 0:1], u[:, 1:2]
    xi, yi = self.outline[:, 0], self.outline[:, 1]
    xj, yj = np.roll(xi, -1), np.roll(yi, -1)
    crosses = (yi > y) != (yj > y)
    with np.errstate(divide='ignore', invalid='ignore'):
      x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
    return np.sum(crosses & (x < x_cross), axis=1) % 2 == 1

  def colour(self, textures: Sequence[np.ndarray], u: np.ndarray
             ) -> np.ndarray:  # [P, 2] -> [P, 3]
    xy = u @ self.texture_map[:, :2].T + self.texture_map[:, 2]
    levels = pyramid(textures[self.texture])
    level = min(self.level, len(levels) - 1)
    # Pixel i of level l is the mean of level-0 pixels i*2^l .. (i+1)*2^l-1.
    xy = (xy - (2 ** level - 1) / 2) / 2 ** level
    return _bilinear(levels[level], xy) * self.gain


def _random_layer(rng: np.random.Generator, num_textures: int, size,
                  opts: SceneOptions, background: bool) -> Layer:
  height, width = size
  # Texture: a random similarity from scene to texture pixels.
  zoom = 2.0 ** rng.uniform(-opts.max_texture_log2_zoom,
                            opts.max_texture_log2_zoom)
  minification = (opts.texture_scale or REFERENCE_WIDTH / width) / zoom
  tex_linear = _rotation(rng.uniform(-np.pi, np.pi)) * minification
  level = int(np.clip(np.floor(np.log2(minification)), 0,
                      _PYRAMID_LEVELS - 1))
  texture_map = np.concatenate(
      [tex_linear, rng.uniform(0, 1000, (2, 1))], axis=1)
  gain = rng.uniform(0.7, 1.2, 3) * rng.uniform(0.8, 1.2)
  # Shape.
  centre = rng.uniform([0, 0], [width, height])
  if background:
    shape, outline = 'plane', np.zeros(0)
  elif rng.random() < 0.5:
    radii = rng.uniform(opts.min_radius, opts.max_radius, 2) * width
    shape = 'ellipse'
    outline = np.array([centre[0], centre[1], radii[0], radii[1],
                        rng.uniform(0, np.pi)])
  else:
    vertices = rng.integers(3, 9)
    angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    radii = rng.uniform(opts.min_radius, opts.max_radius, vertices) * width
    shape = 'polygon'
    outline = centre + radii[:, None] * np.stack(
        [np.cos(angles), np.sin(angles)], -1)
  # Motion.
  scale = 2.0 ** rng.uniform(-opts.max_log2_scale, opts.max_log2_scale)
  linear = _rotation(rng.uniform(-opts.max_rotation, opts.max_rotation)) * scale
  translation = rng.uniform(-1, 1, 2) * opts.max_translation * width
  j = opts.nonrigid_components
  wavelengths = rng.uniform(0.3, 1.0, j) * width
  directions = rng.uniform(0, 2 * np.pi, j)
  frequencies = (2 * np.pi / wavelengths)[:, None] * np.stack(
      [np.cos(directions), np.sin(directions)], -1)
  # |grad d| <= sum_j |a_j| |w_j| <= lipschitz (split at random over j).
  share = rng.dirichlet(np.ones(j)) * rng.uniform(0, opts.nonrigid_lipschitz)
  magnitudes = share / (2 * np.pi / wavelengths)
  amp_angles = rng.uniform(0, 2 * np.pi, j)
  amplitudes = magnitudes[:, None] * np.stack(
      [np.cos(amp_angles), np.sin(amp_angles)], -1)
  return Layer(texture=int(rng.integers(num_textures)),
               texture_map=texture_map, level=level, gain=gain, shape=shape,
               outline=outline, centre=centre, linear=linear,
               translation=translation, amplitudes=amplitudes,
               frequencies=frequencies,
               phases=rng.uniform(0, 2 * np.pi, j))


def random_scene(rng: np.random.Generator, num_textures: int, size,
                 opts: SceneOptions = SceneOptions()) -> list[Layer]:
  """Background first, then the foreground layers bottom to top."""
  if not 0 <= opts.nonrigid_lipschitz < 0.5:
    raise ValueError('SceneOptions.nonrigid_lipschitz must be in [0, 0.5) '
                     'so that every layer motion is invertible.')
  count = int(rng.integers(opts.min_layers, opts.max_layers + 1))
  return [_random_layer(rng, num_textures, size, opts, background=(i == 0))
          for i in range(count + 1)]


# ---------------------------------------------------------------------------
# Camera (spatial augmentation) and rendering
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Camera:
  """p = scale * (x - origin): scene point x -> pixel p (per axis)."""
  scale: np.ndarray  # [2], negative to flip
  origin: np.ndarray  # [2]

  def to_scene(self, p: np.ndarray) -> np.ndarray:
    return p / self.scale + self.origin


def random_camera(rng: np.random.Generator, size, severity: float) -> Camera:
  """RAFT's spatial augmentation, scaled by severity: zoom, stretch, flips,
  and a random crop of the zoomed scene."""
  height, width = size
  zoom = np.ones(2)
  if rng.random() < SPATIAL_PROB * min(severity, 1.0):
    zoom *= 2.0 ** rng.uniform(MIN_LOG2_ZOOM * severity,
                               MAX_LOG2_ZOOM * severity)
    if rng.random() < STRETCH_PROB:
      zoom *= 2.0 ** rng.uniform(-STRETCH * severity, STRETCH * severity, 2)
  flips = np.where(rng.random(2) < np.array([HFLIP_PROB, VFLIP_PROB]) *
                   min(severity, 1.0), -1.0, 1.0)
  frame = np.array([width, height], float)
  # The crop: the view's centre moves within the part of the scene that a
  # zoomed-in view leaves free.
  slack = np.maximum(frame - frame / zoom, 0) / 2
  view_centre = frame / 2 + rng.uniform(-1, 1, 2) * slack
  scale = zoom * flips
  origin = view_centre - (frame - 1) / 2 / scale
  return Camera(scale=scale, origin=origin)


def _pixel_grid(size) -> np.ndarray:
  ys, xs = np.mgrid[0:size[0], 0:size[1]]
  return np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float64)


def _topmost(masks: list[np.ndarray]) -> np.ndarray:
  """Index of the last True of each point over layers (layer 0 = plane)."""
  top = np.zeros(len(masks[0]), np.int64)
  for k, mask in enumerate(masks):
    top[mask] = k
  return top


def _in_frame(p: np.ndarray, size) -> np.ndarray:
  return ((p[:, 0] >= 0) & (p[:, 0] <= size[1] - 1) &
          (p[:, 1] >= 0) & (p[:, 1] <= size[0] - 1))


def render(layers: Sequence[Layer], textures: Sequence[np.ndarray], size,
           camera: Optional[Camera] = None) -> dict[str, np.ndarray]:
  """Renders both frames, both flows and their validity, exactly.

  Returns {'frame1', 'frame2': [H, W, 3] float in [0, 1]; 'flow_fw',
  'flow_bw': [H, W, 2]; 'valid_fw', 'valid_bw': [H, W] bool; 'layer1',
  'layer2': [H, W] the visible layer of each frame}.
  """
  height, width = size
  if camera is None:
    camera = Camera(scale=np.ones(2), origin=np.zeros(2))
  pixels = _pixel_grid(size)
  x = camera.to_scene(pixels)  # the scene point of each pixel, both frames
  # Frame 1: layer k covers x if x in S_k (its own frame-1 coordinates).
  layer1 = _topmost([layer.inside(x) for layer in layers])
  # Frame 2: layer k covers x if M_k^{-1}(x) in S_k.
  back = [layer.inverse_motion(x) for layer in layers]
  layer2 = _topmost([layer.inside(u) for layer, u in zip(layers, back)])
  frame1 = np.zeros((len(x), 3))
  frame2 = np.zeros((len(x), 3))
  flow_fw = np.zeros((len(x), 2))
  flow_bw = np.zeros((len(x), 2))
  target_fw = np.zeros((len(x), 2))  # M_l1(x): frame-2 scene point
  for k, layer in enumerate(layers):
    here1 = layer1 == k
    if here1.any():
      frame1[here1] = layer.colour(textures, x[here1])
      target_fw[here1] = layer.motion(x[here1])
    here2 = layer2 == k
    if here2.any():
      frame2[here2] = layer.colour(textures, back[k][here2])
      flow_bw[here2] = (back[k][here2] - x[here2]) * camera.scale
  flow_fw = (target_fw - x) * camera.scale
  # Forward validity: the target pixel is in frame 2, and no layer above
  # the pixel's own covers the target there.
  valid_fw = _in_frame(pixels + flow_fw, size)
  for k, layer in enumerate(layers):
    above = layer1 < k
    if above.any():
      hidden = layer.inside(layer.inverse_motion(target_fw[above]))
      idx = np.flatnonzero(above)[hidden]
      valid_fw[idx] = False
  # Backward validity: the frame-1 point is in frame 1 and not covered
  # there by a layer above the one visible in frame 2.
  source = np.zeros((len(x), 2))
  for k in range(len(layers)):
    here2 = layer2 == k
    source[here2] = back[k][here2]
  valid_bw = _in_frame(pixels + flow_bw, size)
  for k, layer in enumerate(layers):
    above = layer2 < k
    if above.any():
      idx = np.flatnonzero(above)[layer.inside(source[above])]
      valid_bw[idx] = False
  shape = (height, width)
  return {'frame1': np.clip(frame1, 0, 1).reshape(shape + (3,)),
          'frame2': np.clip(frame2, 0, 1).reshape(shape + (3,)),
          'flow_fw': flow_fw.reshape(shape + (2,)),
          'flow_bw': flow_bw.reshape(shape + (2,)),
          'valid_fw': valid_fw.reshape(shape),
          'valid_bw': valid_bw.reshape(shape),
          'layer1': layer1.reshape(shape), 'layer2': layer2.reshape(shape)}


# ---------------------------------------------------------------------------
# Photometric augmentation
# ---------------------------------------------------------------------------

_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                 [0.211, -0.523, 0.312]])


def _jitter_params(rng: np.random.Generator, severity: float) -> np.ndarray:
  s = JITTER * severity
  return np.array([rng.uniform(1 - s, 1 + s), rng.uniform(1 - s, 1 + s),
                   rng.uniform(1 - s, 1 + s),
                   rng.uniform(-HUE * severity, HUE * severity)])


def _color_jitter(image: np.ndarray, params: np.ndarray) -> np.ndarray:
  """Brightness, contrast, saturation, hue (torchvision's ColorJitter, in a
  fixed order); image [H, W, 3] in [0, 1]."""
  brightness, contrast, saturation, hue = params
  image = np.clip(image * brightness, 0, 1)
  gray = image @ _YIQ[0]
  image = np.clip((image - gray.mean()) * contrast + gray.mean(), 0, 1)
  gray = (image @ _YIQ[0])[..., None]
  image = np.clip(gray + (image - gray) * saturation, 0, 1)
  if hue:
    yiq = image @ _YIQ.T
    yiq[..., 1:] = yiq[..., 1:] @ _rotation(2 * np.pi * hue).T
    image = np.clip(yiq @ np.linalg.inv(_YIQ).T, 0, 1)
  return image


def photometric(rng: np.random.Generator, frame1: np.ndarray,
                frame2: np.ndarray, flow: np.ndarray, valid: np.ndarray,
                severity: float):
  """Colour jitter (both frames) and the eraser (frame 2). Pixels whose
  correspondence falls in an erased box (or its 1-pixel bilinear margin)
  become invalid. Returns (frame1, frame2, valid)."""
  if severity <= 0:
    return frame1, frame2, valid
  height, width = frame1.shape[:2]
  params = _jitter_params(rng, severity)
  if rng.random() < ASYMMETRIC_PROB:
    frame1 = _color_jitter(frame1, params)
    frame2 = _color_jitter(frame2, _jitter_params(rng, severity))
  else:
    frame1 = _color_jitter(frame1, params)
    frame2 = _color_jitter(frame2, params)
  if rng.random() < ERASER_PROB * min(severity, 1.0):
    frame2 = frame2.copy()
    mean = frame2.reshape(-1, 3).mean(0)
    target = _pixel_grid((height, width)).reshape(height, width, 2) + flow
    valid = valid.copy()
    for _ in range(int(rng.integers(1, 3))):
      dx, dy = (rng.uniform(*ERASER_SIZE, 2) * width).astype(int) + 1
      x0 = int(rng.integers(0, max(width - dx, 1)))
      y0 = int(rng.integers(0, max(height - dy, 1)))
      frame2[y0:y0 + dy, x0:x0 + dx] = mean
      hit = ((target[..., 0] > x0 - 1) & (target[..., 0] < x0 + dx) &
             (target[..., 1] > y0 - 1) & (target[..., 1] < y0 + dy))
      valid &= ~hit
  return frame1, frame2, valid


# ---------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------


def _rng(*key: int) -> np.random.Generator:
  return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def make_example(textures: Sequence[np.ndarray], *, size, seed: int,
                 index: int, stream: int = 0, severity: float = 0.0,
                 reverse_pairs: bool = False, num_scenes: int = 0,
                 options: SceneOptions = SceneOptions()
                 ) -> dict[str, np.ndarray]:
  """Example `index` of the stream `seed`: a pure function of its inputs.

  With `reverse_pairs`, examples 2i and 2i+1 are scene i forward and
  reversed ([P] App. H's first phase). `num_scenes` > 0 cycles through a
  fixed set of scenes (AutoFlow's is 400k) with fresh augmentation.

  Returns {'images': [2, H, W, 3] float32 in [-1, 1] ([code] flow colab's
  scaling), 'flow': [H, W, 2] float32 pixels, 'valid': [H, W] float32}.
  """
  scene = index // 2 if reverse_pairs else index
  reverse = reverse_pairs and index % 2 == 1
  if num_scenes:
    scene %= num_scenes
  layers = random_scene(_rng(seed, stream, scene, _SALT_SCENE),
                        len(textures), size, options)
  aug = _rng(seed, stream, index, _SALT_AUGMENT)
  camera = random_camera(aug, size, severity)
  out = render(layers, textures, size, camera)
  if reverse:
    f1, f2, flow, valid = (out['frame2'], out['frame1'], out['flow_bw'],
                           out['valid_bw'])
  else:
    f1, f2, flow, valid = (out['frame1'], out['frame2'], out['flow_fw'],
                           out['valid_fw'])
  f1, f2, valid = photometric(aug, f1, f2, flow, valid, severity)
  images = np.stack([f1, f2]).astype(np.float32) * 2 - 1
  return {'images': images, 'flow': flow.astype(np.float32),
          'valid': valid.astype(np.float32)}


def make_batch(textures: Sequence[np.ndarray], indices: Sequence[int],
               **kwargs: Any) -> dict[str, np.ndarray]:
  """make_example for each index, stacked on a new axis 0."""
  examples = [make_example(textures, index=i, **kwargs) for i in indices]
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}
