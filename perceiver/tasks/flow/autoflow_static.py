"""The released static AutoFlow dataset: reader, held-out split, augmentation.

[P] §4.2 and App. H train on AutoFlow (Sun et al. 2021, "AutoFlow: Learning
a Better Training Set for Optical Flow"). Its authors released a static
set of 40k rendered pairs (https://autoflow-google.github.io/) in four
archives, static_40k_png_1_of_4.zip ... static_40k_png_4_of_4.zip. This
module reads them, unpacked in one folder (`data_dir`, the flow config's
`config.input.data_dir`; launch/train.py --config.input.data_dir=DIR):

  DIR/static_40k_png_1_of_4/<sample>/im0.png    frame 1
                                     im1.png    frame 2
                                     forward.flo  flow 1 -> 2 (Middlebury)
  DIR/static_40k_png_2_of_4/...   (and 3_of_4, 4_of_4)

A sample's name is '<archive folder>/<sample folder>'. Whichever of the
four folders are present are read (a warning names the missing ones).

Glossary of shapes: H, W a sample's frame size; h, w the crop (the network
input, config.input.image_size); images [2, h, w, 3] float32 in [-1, 1],
flow [h, w, 2] (u, v) pixels, valid [h, w].

Held-out split. A sample is held out iff the first 8 bytes of the SHA-256
of its name, read as a big-endian integer over 2^64, are below
`heldout_fraction` (config.input.heldout_fraction, default 0.02: about 800
of the 40k). The rule depends on the name alone, so a sample is held out
(or not) whatever else is unpacked; training never reads a held-out sample.
The loop's eval ('heldout') reads the first `num_eval_examples` held-out
samples in sorted order, centre-cropped to h x w without augmentation
(resized up first only if a frame is smaller than the crop).

Training stream. Example i of the stream (i = (step - 1) * B + row, as for
the generated pairs) is position i of a sequence of epochs, each a seeded
permutation of the training samples: a pure function of (seed, step), so
resume is exact and each process reads its own slice of the global batch.
With `reverse_pairs` (the curriculum's first phase), examples 2j and 2j + 1
are sample j forward and reversed, with the same crop.

Reversed pairs ([P] App. H: "reverse flow ~ average of flows ending at a
pixel"): the pair (im1, im0), whose flow at a pixel of im1 is the weighted
mean of -flow over the im0 pixels whose forward flow lands there (each
splatted bilinearly onto the 4 pixels around its target). Pixels that get
less than half a pixel's weight (disocclusions, the strip that comes in
over a border) are invalid ([P] silent on them); those that get none take
the flow of the nearest pixel that does in their row (or column), so that
the loss, which supervises every pixel (config.task.supervise_occluded),
sees a plausible target there rather than 0.

Augmentation ([P] App. H: AutoFlow's curriculum with RAFT's parameters;
perceiver/tasks/flow/autoflow.py holds the values and their sources).
DEVIATION ([P] names the curriculum, not its form): the phase's `severity`
scales each range and probability linearly, exactly as the generator's
camera and photometric augmentation do. With probability 0.8 * severity a
zoom 2^U(-0.1 s, 1.0 s) and, with probability 0.8, a stretch 2^U(-0.2 s,
0.2 s) per axis (s = severity); images and flow resampled bilinearly, the
flow multiplied per axis by the zoom; a crop of h x w at a uniform position
(RAFT's 20 px margin at w = 496, scaled with w, favours the borders); a
horizontal flip (probability 0.5 s, u negated) and a vertical flip (0.1 s,
v negated); then autoflow.photometric: colour jitter (brightness, contrast,
saturation 0.4 s, hue 0.5 s / pi, the frames jittered apart with
probability 0.2) and, with probability 0.5 s, the eraser (1-2 boxes of
frame 2, 0.1-0.2 of the width, filled with its mean colour; pixels whose
flow lands in a box become invalid). The zoom is raised where needed so the
crop fits (RAFT clips its scale to (crop + 1) / size likewise). Neither RAFT
nor AutoFlow's port of RAFT's augmentation (raft_augmentation.py) rotates,
so nothing here does (AutoFlow's separate PWC-Net augmentation does).
DEVIATION: RAFT jitters colours and erases on the whole frames before the
resize; here both act on the crop after it (the eraser's boxes, 0.1-0.2 of
the crop's width, are RAFT's 50-100 px at w = 496). The crop position is
random in every phase, the first included: cropping is how a pair reaches
the network's size, and severity scales only the distortions.

Valid pixels: AutoFlow ships no occlusion masks, so every pixel of a
forward pair with a finite flow is valid (as in Sintel's metrics); a pixel
stays valid after resampling only if the 4 pixels it interpolates are.
"""
from concurrent import futures
import dataclasses
import functools
import hashlib
import os
from typing import Any, Optional, Sequence

from absl import logging
import numpy as np

from perceiver.tasks.flow import autoflow
from perceiver.tasks.flow import flow_io

ARCHIVES = tuple(f'static_40k_png_{i}_of_4' for i in range(1, 5))
FILES = ('im0.png', 'im1.png', 'forward.flo')
URL = 'https://autoflow-google.github.io/'
HELDOUT_FRACTION = 0.02  # DEVIATION ([P] silent): ~800 of 40k pairs
TRAIN, HELDOUT = 'train', 'heldout'
REVERSE_MIN_WEIGHT = 0.5  # splatted weight a reversed-pair pixel needs
_SALT_ORDER, _SALT_AUGMENT = 21, 22
# RAFT's FlowAugmentor (and AutoFlow's raft_augmentation.py): crops start
# up to 20 px outside the frame and are clipped back in, at w = 496.
_CROP_MARGIN = 20 / autoflow.REFERENCE_WIDTH


# ---------------------------------------------------------------------------
# The folder and the split
# ---------------------------------------------------------------------------


def _layout() -> str:
  return (f'Download {", ".join(a + ".zip" for a in ARCHIVES)} from {URL} '
          f'and unzip each into one folder DIR, giving '
          f'DIR/{ARCHIVES[0]}/<sample>/{{{", ".join(FILES)}}} (and likewise '
          f'for the other three); then pass --config.input.data_dir=DIR to '
          'launch/train.py, or train on generated pairs with the variant '
          'source=generated.')


class MissingDataError(FileNotFoundError):
  """The AutoFlow folder, or part of it, is not where the config says."""


@functools.lru_cache(maxsize=8)
def list_samples(data_dir: Optional[str]) -> tuple[str, ...]:
  """Every sample's name ('<archive folder>/<sample folder>'), sorted.

  Checks that each sample folder holds its three files, so that a partly
  unpacked archive fails here rather than hours into training.
  """
  if not data_dir:
    raise MissingDataError(
        "config.input.source='autoflow' reads the static AutoFlow dataset, "
        'but config.input.data_dir is empty. ' + _layout())
  if not os.path.isdir(data_dir):
    raise MissingDataError(f'AutoFlow folder {data_dir} does not exist. ' +
                           _layout())
  present = [a for a in ARCHIVES if os.path.isdir(os.path.join(data_dir, a))]
  if not present:
    zips = [a + '.zip' for a in ARCHIVES
            if os.path.exists(os.path.join(data_dir, a + '.zip'))]
    hint = (f' The archives {", ".join(zips)} are there but not unpacked: '
            f'unzip them in {data_dir}.' if zips else '')
    raise MissingDataError(
        f'No AutoFlow archive folder ({", ".join(ARCHIVES)}) under '
        f'{data_dir}.{hint} ' + _layout())
  missing = sorted(set(ARCHIVES) - set(present))
  if missing:
    logging.warning('AutoFlow: %s not found under %s; reading the other '
                    'archives only.', ', '.join(missing), data_dir)
  names = []
  for archive in present:
    root = os.path.join(data_dir, archive)
    for sample in sorted(os.listdir(root)):
      folder = os.path.join(root, sample)
      if not os.path.isdir(folder):
        continue
      files = set(os.listdir(folder))
      lacking = [f for f in FILES if f not in files]
      if lacking:
        raise MissingDataError(
            f'AutoFlow sample {folder} lacks {", ".join(lacking)}: every '
            f'sample folder holds {", ".join(FILES)}. {archive}.zip seems '
            f'partly unpacked; unzip it again into {data_dir}.')
      names.append(f'{archive}/{sample}')
  if not names:
    raise MissingDataError(f'The AutoFlow folders {", ".join(present)} under '
                           f'{data_dir} hold no sample folders. ' + _layout())
  return tuple(sorted(names))


def is_heldout(name: str, fraction: float) -> bool:
  """The held-out rule (module docstring): a function of the name alone."""
  digest = hashlib.sha256(name.encode('utf-8')).digest()
  return int.from_bytes(digest[:8], 'big') / 2.0 ** 64 < fraction


def split(data_dir: Optional[str], which: str,
          fraction: float = HELDOUT_FRACTION) -> tuple[str, ...]:
  """The sorted sample names of split `which` ('train' or 'heldout')."""
  if which not in (TRAIN, HELDOUT):
    raise ValueError(f'AutoFlow split {which!r}; use {TRAIN!r} or '
                     f'{HELDOUT!r}.')
  names = list_samples(data_dir)
  out = tuple(n for n in names if is_heldout(n, fraction) == (which == HELDOUT))
  if not out:
    raise ValueError(
        f'The AutoFlow {which} split is empty: {len(names)} samples under '
        f'{data_dir}, config.input.heldout_fraction={fraction} holds out '
        f'{sum(is_heldout(n, fraction) for n in names)}. Unpack more of the '
        'archives or change config.input.heldout_fraction.')
  return out


def read_sample(data_dir: str, name: str) -> dict[str, np.ndarray]:
  """{'images': [2, H, W, 3] uint8, 'flow': [H, W, 2] float32} of a sample."""
  folder = os.path.join(data_dir, name)
  paths = [os.path.join(folder, f) for f in FILES]
  for path in paths:
    if not os.path.exists(path):
      raise MissingDataError(
          f'{path} is missing: every AutoFlow sample folder holds '
          f'{", ".join(FILES)}. Unzip {name.split("/")[0]}.zip again into '
          f'{data_dir}.')
  images = np.stack([flow_io.read_image(paths[0]),
                     flow_io.read_image(paths[1])])
  flow = flow_io.read_flo(paths[2])
  if flow.shape[:2] != images.shape[1:3]:
    raise ValueError(f'AutoFlow sample {folder}: frames of '
                     f'{images.shape[1:3]} but a flow of {flow.shape[:2]}.')
  return {'images': images, 'flow': flow}


# ---------------------------------------------------------------------------
# Reversed pairs
# ---------------------------------------------------------------------------


def _nearest_along_rows(values: np.ndarray, known: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
  """(values [H, W, C] with each unknown pixel given the value of the
  nearest known pixel in its row, [H, W] which are now known)."""
  width = known.shape[1]
  cols = np.arange(width)
  left = np.maximum.accumulate(np.where(known, cols, -1), axis=1)
  right = np.minimum.accumulate(
      np.where(known, cols, width)[:, ::-1], axis=1)[:, ::-1]
  use_left = (left >= 0) & ((right >= width) | (cols - left <= right - cols))
  source = np.where(use_left, left, np.minimum(right, width - 1))
  rows = np.arange(known.shape[0])[:, None]
  filled = known.any(axis=1, keepdims=True) & np.ones_like(known)
  out = np.where(filled[..., None], values[rows, source], values)
  return out, filled


def _fill_nearest(values: np.ndarray, known: np.ndarray) -> np.ndarray:
  """values [H, W, C] where `known`; elsewhere the nearest known value in
  the row, or in the column for rows with none (0 if nothing is known)."""
  out, have = _nearest_along_rows(values, known)
  if not have.all():
    out, have = _nearest_along_rows(out.transpose(1, 0, 2), have.T)
    out, have = out.transpose(1, 0, 2), have.T
  return np.where(have[..., None], out, 0.0)


def reverse_flow(flow: np.ndarray, valid: Optional[np.ndarray] = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(flow [H, W, 2], valid [H, W] bool) of the reversed pair from the
  forward `flow` [H, W, 2]: [P] App. H's average of the flows ending at a
  pixel, splatted bilinearly (module docstring)."""
  height, width = flow.shape[:2]
  if valid is None:
    valid = np.ones((height, width), bool)
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
  tx = xs + flow[..., 0]
  ty = ys + flow[..., 1]
  use = valid & np.isfinite(tx) & np.isfinite(ty)
  tx, ty, u, v = tx[use], ty[use], flow[..., 0][use], flow[..., 1][use]
  x0, y0 = np.floor(tx), np.floor(ty)
  fx, fy = tx - x0, ty - y0
  weight = np.zeros(height * width)
  sum_u = np.zeros(height * width)
  sum_v = np.zeros(height * width)
  for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                    (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
    xi, yi = x0 + dx, y0 + dy
    inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height) & (w > 0)
    index = (yi[inside] * width + xi[inside]).astype(np.int64)
    weight += np.bincount(index, w[inside], height * width)
    sum_u -= np.bincount(index, w[inside] * u[inside], height * width)
    sum_v -= np.bincount(index, w[inside] * v[inside], height * width)
  weight = weight.reshape(height, width)
  mean = np.stack([sum_u, sum_v], -1).reshape(height, width, 2)
  mean /= np.maximum(weight, 1e-12)[..., None]
  filled = _fill_nearest(mean, weight > 0)
  return filled.astype(np.float32), weight >= REVERSE_MIN_WEIGHT


# ---------------------------------------------------------------------------
# Spatial augmentation
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Crop:
  """Resize by `zoom` (x, y), crop h x w at `offset` (x, y) of the resized
  frame, then flip (x, y)."""
  zoom: tuple[float, float]
  offset: tuple[int, int]
  flips: tuple[bool, bool]


def random_crop(rng: Optional[np.random.Generator], frame, size,
                severity: float) -> Crop:
  """The spatial augmentation of a frame of `frame` (H, W) cropped to
  `size` (h, w) (module docstring); rng None: centred, no augmentation."""
  height, width = frame
  h, w = size
  severity = min(max(severity, 0.0), 1.0) if rng is not None else 0.0
  zoom = np.ones(2)
  if severity > 0 and rng.random() < autoflow.SPATIAL_PROB * severity:
    zoom *= 2.0 ** rng.uniform(autoflow.MIN_LOG2_ZOOM * severity,
                               autoflow.MAX_LOG2_ZOOM * severity)
    if rng.random() < autoflow.STRETCH_PROB:
      zoom *= 2.0 ** rng.uniform(-autoflow.STRETCH * severity,
                                 autoflow.STRETCH * severity, 2)
  # The crop must fit in the resized frame.
  zoom = np.maximum(zoom, [w / width, h / height])
  extent = np.maximum(np.floor(np.array([width, height]) * zoom + 1e-6),
                      [w, h]).astype(int)
  slack = extent - [w, h]
  if rng is None:
    offset = slack // 2
  else:
    margin = int(round(_CROP_MARGIN * w))
    offset = np.clip([rng.integers(-margin, s + margin + 1) for s in slack],
                     0, slack)
  flips = ((False, False) if severity <= 0 else tuple(
      bool(f) for f in rng.random(2) < np.array(
          [autoflow.HFLIP_PROB, autoflow.VFLIP_PROB]) * severity))
  return Crop(zoom=(float(zoom[0]), float(zoom[1])),
              offset=(int(offset[0]), int(offset[1])), flips=flips)


def _axis(offset: int, count: int, zoom: float, size: int):
  """(i0, i1, fraction) of the bilinear taps along one axis: output pixel
  j of the resized frame is source coordinate (offset + j + 0.5) / zoom -
  0.5 (pixel centres kept, as cv2.resize does), clamped to the frame."""
  coord = (offset + np.arange(count) + 0.5) / zoom - 0.5
  coord = np.clip(coord, 0, size - 1)
  i0 = np.minimum(np.floor(coord).astype(np.int64), max(size - 2, 0))
  i1 = np.minimum(i0 + 1, size - 1)
  return i0, i1, coord - i0


def apply_crop(crop: Crop, size, images: np.ndarray, flow: np.ndarray,
               valid: np.ndarray):
  """(images [2, h, w, 3], flow [h, w, 2], valid [h, w] bool) of `crop`.

  images [2, H, W, 3] and flow are resampled bilinearly (the flow then
  times the zoom per axis); a pixel stays valid only if every pixel it
  interpolates is. Zoom 1 crops without resampling: the exact pixels.
  """
  h, w = size
  (zx, zy), (ox, oy) = crop.zoom, crop.offset
  if zx == 1.0 and zy == 1.0:
    images = images[:, oy:oy + h, ox:ox + w]
    flow = flow[oy:oy + h, ox:ox + w]
    valid = valid[oy:oy + h, ox:ox + w]
  else:
    height, width = flow.shape[:2]
    y0, y1, fy = _axis(oy, h, zy, height)
    x0, x1, fx = _axis(ox, w, zx, width)
    fy, fx = fy[:, None, None], fx[None, :, None]

    def resample(a):  # [H, W, C] -> [h, w, C]
      top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
      bottom = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
      return top * (1 - fy) + bottom * fy

    images = np.stack([resample(i) for i in images])
    flow = resample(flow) * np.array([zx, zy])
    valid = resample(valid[..., None].astype(np.float64))[..., 0] > 1 - 1e-6
  if crop.flips[0]:
    images, flow, valid = images[:, :, ::-1], flow[:, ::-1], valid[:, ::-1]
    flow = flow * np.array([-1.0, 1.0])
  if crop.flips[1]:
    images, flow, valid = images[:, ::-1], flow[::-1], valid[::-1]
    flow = flow * np.array([1.0, -1.0])
  return images, flow, valid


def augment(rng: Optional[np.random.Generator], images: np.ndarray,
            flow: np.ndarray, valid: np.ndarray, size, severity: float
            ) -> dict[str, np.ndarray]:
  """One training example of a (possibly reversed) pair: images [2, H, W,
  3] in [0, 1], flow [H, W, 2], valid [H, W] -> the model's batch entries
  (module glossary). rng None: the eval crop (centred, no augmentation)."""
  crop = random_crop(rng, flow.shape[:2], size, severity)
  images, flow, valid = apply_crop(crop, size, images, flow, valid)
  f1, f2 = images
  if rng is not None:
    f1, f2, valid = autoflow.photometric(rng, f1, f2, flow, valid, severity)
  return {'images': (np.stack([f1, f2]) * 2 - 1).astype(np.float32),
          'flow': np.ascontiguousarray(flow, np.float32),
          'valid': np.ascontiguousarray(valid, np.float32)}


# ---------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------


def _rng(*key: int) -> np.random.Generator:
  return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, stream: int, epoch: int, count: int
                 ) -> np.ndarray:
  return _rng(seed, stream, epoch, _SALT_ORDER).permutation(count)


def sample_at(count: int, seed: int, stream: int, position: int) -> int:
  """Index (into the sorted training names) of stream position
  `position`: epochs of `count` samples, each in a seeded order."""
  epoch, k = divmod(position, count)
  return int(_epoch_order(seed, stream, epoch, count)[k])


def _as_pair(sample: dict[str, np.ndarray]):
  images = sample['images'].astype(np.float32) / 255.0
  flow = sample['flow']
  return images, flow, np.all(np.isfinite(flow), -1)


def make_example(data_dir: str, names: Sequence[str], *, index: int, size,
                 seed: int, stream: int = 0, severity: float = 0.0,
                 reverse_pairs: bool = False) -> dict[str, np.ndarray]:
  """Example `index` of the training stream over `names`: a pure function
  of its arguments and the files (module docstring)."""
  position = index // 2 if reverse_pairs else index
  reverse = reverse_pairs and index % 2 == 1
  name = names[sample_at(len(names), seed, stream, position)]
  images, flow, valid = _as_pair(read_sample(data_dir, name))
  if reverse:
    images = images[::-1]
    flow, valid = reverse_flow(flow, valid)
  # Keyed by the position: a pair and its reverse share the crop.
  rng = _rng(seed, stream, position, _SALT_AUGMENT)
  return augment(rng, images, flow, valid, size, severity)


def make_eval_example(data_dir: str, name: str, size
                      ) -> dict[str, np.ndarray]:
  """A held-out sample, centre-cropped to `size`, without augmentation."""
  images, flow, valid = _as_pair(read_sample(data_dir, name))
  return augment(None, images, flow, valid, size, 0.0)


def stack(examples: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def make_batch(data_dir: str, names: Sequence[str], indices: Sequence[int],
               threads: int = 1, **kwargs: Any) -> dict[str, np.ndarray]:
  """make_example for each index, stacked on a new axis 0; `threads` > 1
  makes them in a thread pool (PNG decoding and numpy release the GIL),
  with the same result."""
  def one(i):
    return make_example(data_dir, names, index=i, **kwargs)

  if threads <= 1 or len(indices) <= 1:
    return stack([one(i) for i in indices])
  with futures.ThreadPoolExecutor(min(threads, len(indices))) as pool:
    return stack(list(pool.map(one, indices)))
