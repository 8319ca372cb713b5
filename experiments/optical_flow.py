r"""Optical flow with Perceiver IO ([P] §4.2, App. H, Tables 3, 5, 6, 16).

The paper's model and recipe (the released architecture, 41,057,134
params, trained on AutoFlow with a curriculum) are described once, in
perceiver/tasks/flow/recipes.py.

The paper variant trains on the released static AutoFlow pairs: download
static_40k_png_1_of_4.zip ... static_40k_png_4_of_4.zip
(https://autoflow-google.github.io/), unzip all four into one folder DIR
(DIR/static_40k_png_1_of_4/<sample>/im0.png, im1.png, forward.flo, ...)
and pass --config.input.data_dir=DIR. A fixed 2% of the samples (by a
hash of their names; perceiver/tasks/flow/autoflow_static.py) is held out
for the loop's eval and never trained on. `cpu` and `smoke` render
AutoFlow-style pairs on the fly instead (source=generated).

  python launch/train.py --config=experiments/optical_flow.py \
      --workdir=workdirs/flow --config.input.data_dir=DIR
  python launch/train.py --config=experiments/optical_flow.py:cpu \
      --workdir=workdirs/flow_cpu          # the release design, small
  python launch/train.py \
      --config=experiments/optical_flow.py:cpu,qres,head_init,stem,motion=0.3 \
      --workdir=workdirs/flow_levers       # the arm that learns, FLOW.md
  python launch/train.py --config=experiments/optical_flow.py:smoke \
      --workdir=/tmp/flow_smoke
  python launch/flow.py --config=experiments/optical_flow.py \
      --checkpoint=workdirs/flow --dataset=sintel_clean --data_dir=DIR

Expected ([P] Table 3, EPE at full resolution, tiled): Sintel clean 1.81,
Sintel final 2.42, KITTI 4.98. The loop's eval ('eval/epe', the best
checkpoint's metric) is on held-out pairs (AutoFlow's held-out samples,
centre-cropped; or generated pairs) at the training crop size, 368x496.

Where [P] is silent (config fields): the loss (RAFT's L1 on all pixels,
config.task.loss / supervise_occluded); no warmup, weight decay or
clipping; curriculum phases config.input.phase_ends = (0.1, 0.4, 0.7, 1.0)
with severities (0, 1/3, 2/3, 1) (config.input.phase_severities).

Variants (comma-separated after the colon):
  smoke      2 steps of a tiny model (12x16) on generated pairs.
  cpu        the CPU-sized reproduction model (recipes.CPU; DEVIATION: not in
             the paper): 32x48 crops, N x D = 64 x 128, 4 layers, batch 8,
             AdamW, small motions, 4000 steps. The release design learns
             nothing at this size; add the levers below (FLOW.md).
  steps=N    optimiser updates (paper: 375000; cpu: 4000).
  batch=B    batch per update (paper: 512; cpu: 8).
  accum=K    micro-batches per update (paper only: an error with cpu or
             smoke; the batch stays B).
  lr=X       peak learning rate (paper: 4e-4, LAMB; cpu: 1e-3, AdamW).
  source=S   the training data: autoflow (the paper variant's default:
             the released pairs under --config.input.data_dir) or
             generated (cpu's and smoke's: rendered on the fly).
  textures=DIR  add the photos of DIR to scikit-image's as textures, e.g.
             opencv-doc's (bash scripts/fetch_flow_data.sh prints it);
             generated pairs only.
Levers, each a DEVIATION from the release, off unless named
(perceiver/tasks/flow/recipes.py: apply_levers; benchmarks/repro/FLOW.md):
  qres       the decoder's query residual.
  head_init  a non-zero (Haiku default) init of the output Linear.
  stem       a dilated-convolution stem on both frames (31-pixel field).
  motion=F   generated motions rise from a quarter to full over the first
             F of training.
"""
from perceiver.tasks.flow import recipes
from perceiver.train import config_lib


def get_config(arg=None):
  args = config_lib.parse_variants(arg, recipes.VARIANTS,
                                   'experiments/optical_flow.py')
  return recipes.from_variants(args)
