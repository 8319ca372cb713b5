"""Flow at full resolution: load a model, tile, write, evaluate (launch/flow.py).

Glossary of shapes: H, W the frames' size (any); h, w the network's input
size (`config.model.decoder.output_image_shape`); T tiles; frames are
[H, W, 3] uint8, flow [H, W, 2] (u, v) pixels.

[P] §4.2 evaluates at full resolution: overlapping h x w tiles, averaged
with weights that fall to the tile edges (`builders.tiled_flow`, the
release colab's scheme). Frames smaller than the network input are padded
by edge replication to h x w and the flow cropped back.
DEVIATION: the colab rejects frames smaller than the network input; padding
lets the CLI take any two images.

Parameters come from one of:
  * a release file (`optical_flow_checkpoint.pystate` / `.pickle`),
  * our training run (its checkpoints/ folder, one step folder in it, or the
    workdir that holds checkpoints/),
  * a random initialisation (`seed`), for testing the plumbing.
Scanned checkpoints (config.scan_layers) are converted to the release's
per-layer layout, which the inference model uses.
"""
import functools
import os
import sys
import time
from typing import Callable, Iterable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from perceiver import builders
from perceiver.tasks.flow import colorwheel
from perceiver.tasks.flow import flow_io
from perceiver.tasks.flow import metrics as flow_metrics
from perceiver.train import checkpoint as ckpt_lib

ApplyFn = Callable[[np.ndarray], np.ndarray]  # [B, 2, h, w, 3] -> [B, h, w, 2]


def network_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
  return tuple(int(s) for s in config.model.decoder.output_image_shape)


def _flow_fn(config: ml_collections.ConfigDict):
  kwargs = config.model.to_dict()  # unscanned: the release's layout
  forward = builders.optical_flow(**kwargs)
  return hk.transform_with_state(
      lambda images: forward(images, is_training=False))


def load(config: ml_collections.ConfigDict, checkpoint: str = '', *,
         seed: Optional[int] = None) -> ApplyFn:
  """A jitted flow function of one network-sized tile batch."""
  model = _flow_fn(config)
  h, w = network_size(config)
  example = jnp.zeros((1, 2, h, w, 3), jnp.float32)
  if checkpoint:
    expected = jax.eval_shape(model.init, jax.random.PRNGKey(0), example)[0]
    params, state = ckpt_lib.read_params(checkpoint, layout='release',
                                         expected=expected)
  elif seed is not None:
    params, state = model.init(jax.random.PRNGKey(seed), example)
  else:
    raise ValueError('Give a checkpoint (a release .pystate/.pickle or a '
                     'training run) or a seed for a random initialisation.')
  params = jax.tree.map(jnp.asarray, params)
  apply = jax.jit(functools.partial(model.apply, params, state, None))
  return lambda tiles: np.asarray(apply(jnp.asarray(tiles))[0])


def _progress_printer(total: int, stream) -> Callable[[], None]:
  """tick() per tile; redraws 'tile i/T' at most ~100 times in all."""
  start = time.time()
  done = [0]
  every = max(total // 100, 1)

  def tick():
    done[0] += 1
    if stream is not None and (done[0] % every == 0 or done[0] == total):
      stream.write(f'\rtile {done[0]}/{total}  {time.time() - start:.1f}s')
      if done[0] == total:
        stream.write('\n')
      stream.flush()
  return tick


def predict(apply_fn: ApplyFn, frames: np.ndarray,
            network: tuple[int, int], *, min_overlap: int = 20,
            progress=None) -> np.ndarray:
  """Flow [H, W, 2] of frames [2, H, W, 3] uint8 (any size) by tiling.

  `progress`: a stream (e.g. sys.stderr) for a 'tile i/T' line, written
  when there is more than one tile.
  """
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[0] != 2 or frames.shape[-1] != 3:
    raise ValueError(f'predict expects frames [2, H, W, 3]; got '
                     f'{frames.shape}.')
  height, width = frames.shape[1:3]
  images = frames.astype(np.float32) / 255.0 * 2 - 1  # [code] colab scaling
  pad_h, pad_w = max(network[0] - height, 0), max(network[1] - width, 0)
  if pad_h or pad_w:
    images = np.pad(images, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)],
                    mode='edge')
  # Tiles must advance: at most half a tile of overlap (small networks).
  overlap = min(min_overlap, min(network) // 2)
  num_tiles = len(builders.flow_tile_origins(images.shape[1:3], network,
                                             overlap))
  tick = _progress_printer(num_tiles, progress if num_tiles > 1 else None)

  def counted(tile):
    out = apply_fn(tile)
    tick()
    return out

  flow = builders.tiled_flow(counted, images[None], patch_size=network,
                             min_overlap=overlap)[0]
  return flow[:height, :width]


def evaluate(apply_fn: ApplyFn, pairs: Iterable[dict],
             network: tuple[int, int], *, min_overlap: int = 20,
             log=print) -> dict:
  """EPE and outlier rates over all valid pixels of `pairs`, plus each
  pair's own ('per_pair')."""
  total, per_pair = None, {}
  for pair in pairs:
    flow = predict(apply_fn, pair['images'], network, min_overlap=min_overlap)
    sums = jax.device_get(flow_metrics.sums(flow, pair['flow'], pair['valid']))
    per_pair[pair['name']] = flow_metrics.finalize(sums)
    if log:
      log(f'{pair["name"]}: EPE {per_pair[pair["name"]]["epe"]:.3f}')
    total = sums if total is None else jax.tree.map(np.add, total, sums)
  if total is None:
    raise ValueError('No pairs to evaluate.')
  result = flow_metrics.finalize(total)
  result['num_pairs'] = len(per_pair)
  result['per_pair'] = per_pair
  return result


def write_outputs(prefix: str, flow: np.ndarray,
                  max_flow: Optional[float] = None) -> tuple[str, str]:
  """Writes <prefix>.flo and <prefix>.png (Middlebury colours)."""
  directory = os.path.dirname(os.path.abspath(prefix))
  os.makedirs(directory, exist_ok=True)
  flo, png = prefix + '.flo', prefix + '.png'
  flow_io.write_flo(flo, flow)
  flow_io.write_png(png, colorwheel.flow_to_color(flow, max_flow=max_flow))
  return flo, png


def ground_truth(flow_path: str = '', disparity_path: str = '',
                 disparity_scale: float = 0.0):
  """(flow, valid) from a .flo / KITTI flow PNG, or from a left-view
  disparity PNG (value / disparity_scale pixels; 0 = auto: 256 for 16-bit
  PNGs as KITTI, 1 for 8-bit ones as Middlebury)."""
  if flow_path:
    if flow_path.endswith('.png'):
      return flow_io.read_kitti_flow(flow_path)
    flow = flow_io.read_flo(flow_path)
    return flow, np.all(np.abs(flow) < 1e9, -1)
  png = flow_io.read_png(disparity_path)
  scale = disparity_scale or (256.0 if png.dtype == np.uint16 else 1.0)
  png = png[..., 0].astype(np.float32)
  return flow_io.disparity_to_flow(png / scale, png > 0)


def run_pair(apply_fn: ApplyFn, network, frame1: str, frame2: str,
             output: str, *, gt_flow: str = '', gt_disparity: str = '',
             disparity_scale: float = 0.0, min_overlap: int = 20,
             out=sys.stdout, progress=sys.stderr) -> dict:
  """The CLI's pair mode: flow, files, and EPE against ground truth."""
  images = [flow_io.read_image(p) for p in (frame1, frame2)]
  if images[0].shape != images[1].shape:
    raise ValueError(f'The frames differ in size: {frame1} is '
                     f'{images[0].shape[:2]}, {frame2} {images[1].shape[:2]}.')
  flow = predict(apply_fn, np.stack(images), network,
                 min_overlap=min_overlap, progress=progress)
  flo, png = write_outputs(output, flow)
  magnitude = np.hypot(flow[..., 0], flow[..., 1])
  out.write(f'flow {flow.shape[1]}x{flow.shape[0]}: mean |flow| '
            f'{magnitude.mean():.3f} px, max {magnitude.max():.3f} px\n'
            f'wrote {flo}\nwrote {png}\n')
  result = {'flo': flo, 'png': png}
  if gt_flow or gt_disparity:
    gt, valid = ground_truth(gt_flow, gt_disparity, disparity_scale)
    if gt.shape[:2] != flow.shape[:2]:
      raise ValueError(f'The ground truth is {gt.shape[1]}x{gt.shape[0]} but '
                       f'the frames are {flow.shape[1]}x{flow.shape[0]}.')
    result.update(flow_metrics.evaluate(flow, gt, valid))
    out.write(f'EPE {result["epe"]:.4f} px over {int(result["valid_pixels"])}'
              f' valid pixels; >1px {result["out1px"]:.2%}, >3px '
              f'{result["out3px"]:.2%}, >5px {result["out5px"]:.2%}\n')
  return result


def run_dataset(apply_fn: ApplyFn, network, dataset: str, *,
                data_dir: str = '', downscale: int = 1, min_overlap: int = 20,
                out=sys.stdout) -> dict:
  """The CLI's dataset mode: metrics over a benchmark (datasets.DATASETS)."""
  from perceiver.tasks.flow import datasets  # pylint: disable=g-import-not-at-top
  result = evaluate(apply_fn, datasets.pairs(dataset, data_dir, downscale),
                    network, min_overlap=min_overlap,
                    log=lambda line: out.write(line + '\n'))
  out.write(f'{dataset}: EPE {result["epe"]:.4f} px over '
            f'{result["num_pairs"]} pairs; >1px {result["out1px"]:.2%}, '
            f'>3px {result["out3px"]:.2%}, >5px {result["out5px"]:.2%}\n')
  return result


def main(config: ml_collections.ConfigDict, *, checkpoint: str = '',
         random_init: bool = False, seed: int = 0, frame1: str = '',
         frame2: str = '', output: str = '', gt_flow: str = '',
         gt_disparity: str = '', disparity_scale: float = 0.0,
         dataset: str = '', data_dir: str = '', downscale: int = 1,
         min_overlap: int = 20) -> dict:
  """launch/flow.py: a pair of image files, or a whole dataset."""
  if bool(checkpoint) == bool(random_init):
    raise ValueError('Give exactly one of --checkpoint (a release .pystate/'
                     '.pickle or a training run) and --random_init.')
  if bool(dataset) == bool(frame1 or frame2):
    raise ValueError('Give either --frame1 and --frame2 (and --output), or '
                     '--dataset.')
  if not dataset and not (frame1 and frame2 and output):
    raise ValueError('The pair mode needs --frame1, --frame2 and --output '
                     '(a path prefix: <output>.flo and <output>.png).')
  apply_fn = load(config, checkpoint, seed=seed if random_init else None)
  network = network_size(config)
  if dataset:
    return run_dataset(apply_fn, network, dataset, data_dir=data_dir,
                       downscale=downscale, min_overlap=min_overlap)
  return run_pair(apply_fn, network, frame1, frame2, output, gt_flow=gt_flow,
                  gt_disparity=gt_disparity, disparity_scale=disparity_scale,
                  min_overlap=min_overlap)
