"""Real flow data with ground truth: MPI-Sintel, KITTI-2015, stereo pairs.

Glossary of shapes: H, W image size; a pair is {'name': str, 'images':
[2, H, W, 3] uint8 (frame 1, frame 2), 'flow': [H, W, 2] float32 (u, v)
pixels, 'valid': [H, W] bool}.

[P] §4.2 evaluates on Sintel clean and final and on KITTI (Table 3) under
AutoFlow's protocol, i.e. on their training sets ([P] does not say which
split). These readers take the official archives unpacked
in a local folder; nothing downloads:

  Sintel  MPI-Sintel-complete.zip (http://sintel.is.tue.mpg.de/) unpacked
          in <data_dir>/Sintel: training/{clean,final}/<scene>/frame_%04d.png
          and training/flow/<scene>/frame_%04d.flo (frame i -> i + 1).
          Metrics use every pixel (Sintel's flow is dense).
  KITTI   data_scene_flow.zip (KITTI 2015 stereo/flow,
          http://www.cvlibs.net/datasets/kitti/eval_scene_flow.php) unpacked
          in <data_dir>/KITTI: training/image_2/%06d_10.png, %06d_11.png and
          training/flow_occ/%06d_10.png (16-bit PNG, valid bit).

Stereo pairs are real flow too: rectified left/right views move
horizontally by the disparity, so the flow from left to right is (-d, 0)
(flow_io.disparity_to_flow):

  motorcycle  skimage.data.stereo_motorcycle() (Middlebury 2014, 500x741,
              disparity in pixels of that size, inf where unknown);
  aloe        opencv-doc's aloeL.jpg / aloeR.jpg / aloeGT.png (Middlebury
              2006 "Aloe", 1110x1282 here; GT in pixels of that size, 0 where
              unknown). Debian only: scripts/fetch_flow_data.sh extracts it.
"""
import glob
import os
from typing import Iterator, Optional

import numpy as np

from perceiver.tasks.flow import flow_io

SINTEL_PASSES = ('clean', 'final')
DATASETS = ('sintel_clean', 'sintel_final', 'kitti', 'motorcycle', 'aloe')


def _missing(what: str, root: str, example: str, get: str) -> FileNotFoundError:
  return FileNotFoundError(
      f'{what} not found: {example} does not exist under {root}. {get} '
      f'Pass its parent folder as --data_dir (the reader looks in '
      f'{root}).')


def sintel_pairs(data_dir: str, dstype: str = 'clean',
                 split: str = 'training') -> Iterator[dict]:
  """MPI-Sintel pairs with flow, scene by scene, frame by frame."""
  if dstype not in SINTEL_PASSES:
    raise ValueError(f'Sintel pass {dstype!r}; use one of {SINTEL_PASSES}.')
  root = os.path.join(data_dir, 'Sintel')
  image_root = os.path.join(root, split, dstype)
  flow_root = os.path.join(root, split, 'flow')
  if not os.path.isdir(image_root) or not os.path.isdir(flow_root):
    raise _missing(
        'MPI-Sintel', root, f'{split}/{dstype}/ and {split}/flow/',
        'Download MPI-Sintel-complete.zip from http://sintel.is.tue.mpg.de/ '
        'and unzip it into <data_dir>/Sintel.')
  scenes = sorted(os.listdir(image_root))
  if not scenes:
    raise _missing('MPI-Sintel', root, f'{split}/{dstype}/<scene>/', '')
  for scene in scenes:
    frames = sorted(glob.glob(os.path.join(image_root, scene, '*.png')))
    for first, second in zip(frames[:-1], frames[1:]):
      name = os.path.splitext(os.path.basename(first))[0]
      flow_path = os.path.join(flow_root, scene, name + '.flo')
      if not os.path.exists(flow_path):
        raise FileNotFoundError(
            f'{flow_path} is missing: the Sintel archive in {root} is '
            'incomplete (every frame but the last of a scene has a .flo).')
      flow = flow_io.read_flo(flow_path)
      yield {'name': f'{scene}/{name}',
             'images': np.stack([flow_io.read_image(first),
                                 flow_io.read_image(second)]),
             'flow': flow,
             'valid': np.all(np.abs(flow) < 1e9, -1)}


def kitti_pairs(data_dir: str, split: str = 'training') -> Iterator[dict]:
  """KITTI-2015 pairs (frames 10 and 11) with flow_occ ground truth."""
  root = os.path.join(data_dir, 'KITTI')
  image_root = os.path.join(root, split, 'image_2')
  flow_root = os.path.join(root, split, 'flow_occ')
  if not os.path.isdir(image_root) or not os.path.isdir(flow_root):
    raise _missing(
        'KITTI-2015 flow', root, f'{split}/image_2/ and {split}/flow_occ/',
        'Download data_scene_flow.zip (KITTI 2015 scene flow) from '
        'http://www.cvlibs.net/datasets/kitti/eval_scene_flow.php and unzip '
        'it into <data_dir>/KITTI.')
  firsts = sorted(glob.glob(os.path.join(image_root, '*_10.png')))
  if not firsts:
    raise _missing('KITTI-2015 flow', root, f'{split}/image_2/*_10.png', '')
  for first in firsts:
    name = os.path.basename(first)[:-len('_10.png')]
    second = os.path.join(image_root, name + '_11.png')
    flow, valid = flow_io.read_kitti_flow(
        os.path.join(flow_root, name + '_10.png'))
    yield {'name': name,
           'images': np.stack([flow_io.read_image(first),
                               flow_io.read_image(second)]),
           'flow': flow, 'valid': valid}


def motorcycle() -> dict:
  """skimage's Middlebury 2014 Motorcycle pair: left -> right flow."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  left, right, disparity = data.stereo_motorcycle()
  flow, valid = flow_io.disparity_to_flow(disparity, np.isfinite(disparity))
  return {'name': 'motorcycle', 'images': np.stack([left, right]),
          'flow': flow, 'valid': valid}


def aloe(opencv_data_dir: str) -> dict:
  """opencv-doc's Middlebury 2006 Aloe pair: left -> right flow."""
  paths = [os.path.join(opencv_data_dir, n)
           for n in ('aloeL.jpg', 'aloeR.jpg', 'aloeGT.png')]
  for path in paths:
    if not os.path.exists(path):
      raise FileNotFoundError(
          f'{path} not found. The Aloe pair ships in the Debian package '
          'opencv-doc: run bash scripts/fetch_flow_data.sh and pass the '
          'folder it prints (.../examples/data) as --data_dir.')
  gt = flow_io.read_png(paths[2])
  if gt.dtype != np.uint8:
    raise ValueError(f'{paths[2]}: expected an 8-bit disparity PNG.')
  gt = gt[..., 0].astype(np.float32)
  flow, valid = flow_io.disparity_to_flow(gt, gt > 0)
  return {'name': 'aloe', 'images': np.stack([flow_io.read_image(paths[0]),
                                               flow_io.read_image(paths[1])]),
          'flow': flow, 'valid': valid}


def downscale(pair: dict, factor: int) -> dict:
  """Box-downscales a pair by an integer factor (crops to a multiple).

  Images are box-averaged; flow is the mean of the valid flows in each box
  divided by `factor` (pixels of the smaller image); a box is valid only if
  all its pixels are.
  """
  if factor == 1:
    return pair
  images = pair['images']
  h, w = (s // factor * factor for s in images.shape[1:3])
  hs, ws = h // factor, w // factor

  imgs = images[:, :h, :w].astype(np.float64).reshape(
      2, hs, factor, ws, factor, 3).mean((2, 4))
  valid = pair['valid'][:h, :w].reshape(hs, factor, ws, factor)
  flow = pair['flow'][:h, :w].astype(np.float64).reshape(
      hs, factor, ws, factor, 2)
  count = valid.sum((1, 3))
  summed = (flow * valid[..., None]).sum((1, 3))
  return {'name': f'{pair["name"]}/{factor}',
          'images': np.round(imgs).astype(np.uint8),
          'flow': (summed / np.maximum(count, 1)[..., None] / factor
                   ).astype(np.float32),
          'valid': count == factor * factor}


def pairs(name: str, data_dir: Optional[str] = None,
          downscale_factor: int = 1) -> Iterator[dict]:
  """The pairs of a dataset in DATASETS (see the module docstring)."""
  if name.startswith('sintel_'):
    source = sintel_pairs(data_dir or '', name[len('sintel_'):])
  elif name == 'kitti':
    source = kitti_pairs(data_dir or '')
  elif name == 'motorcycle':
    source = iter([motorcycle()])
  elif name == 'aloe':
    if not data_dir:
      raise ValueError('The aloe pair needs --data_dir: the folder of '
                       'opencv-doc\'s examples/data '
                       '(bash scripts/fetch_flow_data.sh prints it).')
    source = iter([aloe(data_dir)])
  else:
    raise ValueError(f'Unknown flow dataset {name!r}; use one of {DATASETS}.')
  for pair in source:
    yield downscale(pair, downscale_factor)
