r"""This project against transformers' Perceiver IO (a script, not a test).

Glossary of shapes: B batch, T text positions, V vocabulary (262 UTF-8
byte ids), H, W image, K classes, N latents, D latent channels.

Three models, each built twice with the same architecture: here through
its experiment's recipe on the fast path (benchmarks/speed/cases.py: the
task's model with the recipe's switches; `--path=exact` for the release's
graph), and as transformers' class (PyTorch, eager) from the same spec
(perceiver.hf.mapping.plan, which refuses any option the class cannot
express). The transformers model starts from our initial weights
(perceiver.hf.mapping.to_hf), so the first train-step losses of both sides
must agree: the script checks it, and that the parameter counts are equal.

  mlm         PerceiverForMaskedLM: 512 bytes, d_model 256, N x D = 128 x
              512, 6 self-attention layers of 8 heads (qk 256, v 512),
              decoder 8 heads, qk 256 (9,934,086 parameters);
  classifier  PerceiverForImageClassificationFourier: 64x64 RGB with the
              class's 2D Fourier features (64 bands, max resolution 224),
              N x D = 128 x 256, 2 blocks of 3 shared layers (8 heads),
              10 classes (2,023,253 parameters);
  flow        PerceiverForOpticalFlow: 48x64 frame pairs (the release's
              aspect ratio, 368x496, at an eighth of its pixels), 3x3
              patches and 64 Fourier bands as the class hard-wires, N x D =
              128 x 256, 4 self-attention layers of 8 heads (2,633,582
              parameters).

Each side takes the same batch (`--batch`, default 8), float32, and runs
(a) a train step: the task's natural loss (mean cross-entropy over the V
byte ids at every position; softmax cross-entropy of the K classes; mean
L1 of the flow in pixels) and one Adam update (optax.adam against
torch.optim.Adam, same learning rate and defaults), and (b) an
inference-only forward. The two sides run alternately (ours, transformers,
ours, ...) for `--rounds` rounds after `--warmup` untimed calls each, in
this one process; the script prints both medians and torch/jax (> 1: this
project is faster), as the ratio of the medians and the median of the
per-round ratios. PyTorch runs on as many threads as XLA:CPU uses (every
core the process may run on).

It also prints XLA's FLOP count of our train step and forward
(`compiled.cost_analysis()` of the same program compiled without
scan_layers, since XLA counts a loop body once; on the fast path it
includes the remat's recomputation), the GFLOP/s that gives, and its
share of a measured GEMM rate of this machine (an n x n matmul in XLA and
in torch, `--gemm_n`, in the compute dtype; the share is of XLA's best
call, the closest to the cores' rate on a shared machine).

`--compute_dtype=bfloat16` runs both sides in bfloat16 with float32
parameters and Adam: ours with config.compute_dtype (the fast kernels'
bfloat16 linear layers, perceiver.kernels.matmul), transformers' under
torch.autocast('cpu', dtype=torch.bfloat16). The first losses then agree
only to LOSS_RTOL['bfloat16'].

`--profile=mlm` then traces our train step of that model under
jax.profiler and sums the XLA:CPU thunk times (one per compiled op or
fusion) by op family (what the fusion computes: dot, exp/log, rsqrt, ...),
by phase (forward, backward, remat recomputation, the Adam update: from
the JAX name stack XLA keeps in each op's metadata) and by model part.

Timed on our side: the jitted, compiled step with its arguments donated;
on theirs: zero_grad, forward, loss, backward and Adam's step (eager
PyTorch, no torch.compile). The flow inputs of transformers are 3x3
patches [B, 2, 27, H, W], made before timing (its preprocessing is not its
model's); ours take the frames and cut the patches inside the step.

  python benchmarks/speed/bench_peer.py                  # all, ~10 minutes
  python benchmarks/speed/bench_peer.py --models=mlm --rounds=15
  python benchmarks/speed/bench_peer.py --models= --profile=mlm
  python benchmarks/speed/bench_peer.py --compute_dtype=bfloat16
  python benchmarks/speed/bench_peer.py --tiny           # a check (~1 min)
"""
import dataclasses
import datetime
import functools
import glob
import gzip
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Mapping

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from benchmarks.speed import cases as cases_lib
from perceiver import release_specs
from perceiver.hf import mapping
from perceiver.hf import parity
from perceiver.hf import specs
# pylint: enable=g-import-not-at-top,wrong-import-position

MODELS = ('mlm', 'classifier', 'flow')
LEARNING_RATE = 1e-4
# The first train-step losses of the two sides agree within this
# (relative); measured at full size: 0 to 1.3e-6 in float32, 0 to 1.0e-3
# in bfloat16 (each side rounds its own way).
LOSS_RTOL = {'float32': 1e-4, 'bfloat16': 1e-2}
COMPUTE_DTYPES = ('float32', 'bfloat16')

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line (only when run as a script)."""
  flags.DEFINE_list('models', list(MODELS), f'Any of {MODELS}.')
  flags.DEFINE_integer('batch', 8, 'Examples per step, both sides.')
  flags.DEFINE_integer('rounds', 7, 'Timed (ours, transformers) rounds.')
  flags.DEFINE_integer('warmup', 2, 'Untimed calls of each side first (the '
                       'first two train steps give the compared losses).')
  flags.DEFINE_enum('path', 'fast', cases_lib.PATHS, 'Our path: the '
                    "recipes' fast path or the release-exact graph.")
  flags.DEFINE_enum('remat', 'recipe', ('recipe', 'on', 'off'),
                    "Remat of our self-attention layers: the recipe's "
                    'setting or forced (fast path only).')
  flags.DEFINE_enum('compute_dtype', 'float32', COMPUTE_DTYPES,
                    'bfloat16: both sides compute in bfloat16 with float32 '
                    'parameters and Adam (ours: config.compute_dtype, '
                    "perceiver.mixed_precision; transformers: torch.autocast"
                    "('cpu', torch.bfloat16) around the forward and loss).")
  flags.DEFINE_integer('gemm_n', 2048, 'Side of the reference matmul.')
  flags.DEFINE_string('profile', '', 'Then profile our train step of this '
                      'model (e.g. mlm): XLA:CPU op times under '
                      'jax.profiler, by op family, phase and model part.')
  flags.DEFINE_integer('profile_steps', 3, 'Train steps traced.')
  flags.DEFINE_string('trace_dir', '', 'Where the trace goes (default: a '
                      'new temporary directory).')
  flags.DEFINE_string('json_out', '', 'Also write every number here.')
  flags.DEFINE_bool('tiny', False, 'Tiny models, batch 2, one round: a '
                    'check of the script, not a measurement.')


# ---------------------------------------------------------------------------
# The models: a recipe config with the model swapped in.
# ---------------------------------------------------------------------------

MLM_SEQ = 512
# transformers' MLM decoder: 8 heads, qk 256, v = d_model.
MLM = cases_lib.bytes_mlm(seq=MLM_SEQ, d_model=256, channels=512, layers=6,
                          qk=256)

CLASSIFIER_SIZE = 64
# transformers' Fourier classifier: 64 bands for a 224x224 grid, whatever
# the image size.
CLASSIFIER = cases_lib.fourier_classifier(
    num_classes=10, num_bands=64, max_resolution=(224, 224), layers=3)

FLOW_SIZE = (48, 64)
FLOW_LAYERS, FLOW_LATENTS, FLOW_CHANNELS, FLOW_HEADS = 4, 128, 256, 8

# Tiny variants (--tiny): the same classes, the sizes transformers
# hard-wires kept (MLM decoder qk 256 and 8 heads, 64 Fourier bands).
TINY_MLM_SEQ = 32
TINY_MLM = cases_lib.bytes_mlm(seq=TINY_MLM_SEQ, d_model=32, channels=32,
                               layers=1, qk=16, heads=4, latents=8,
                               decoder_qk=256)
TINY_CLASSIFIER_SIZE = 8
TINY_CLASSIFIER = cases_lib.fourier_classifier(
    num_classes=10, num_bands=64, max_resolution=(224, 224), layers=1,
    blocks=1, latents=8, channels=16, heads=2)
TINY_FLOW_SIZE = (8, 12)


def _recipe(module: str, name: str, *args) -> ml_collections.ConfigDict:
  import importlib  # pylint: disable=g-import-not-at-top
  return getattr(importlib.import_module(module), name)(*args)


def mlm_config(tiny: bool = False) -> ml_collections.ConfigDict:
  """The bytes MLM recipe (experiments/mlm_bytes.py) with MLM (TINY_MLM)."""
  model = TINY_MLM if tiny else MLM
  config = _recipe('perceiver.tasks.language.recipes', 'mlm', 'mlm_bytes', {})
  config.input.sequence_length = model['max_seq_len']
  config.optimizer.grad_accum_steps = 1
  return cases_lib.swap_model(config, model)


def classifier_config(tiny: bool = False) -> ml_collections.ConfigDict:
  """The ImageNet-Fourier recipe on 64x64 images with CLASSIFIER (tiny: 8x8,
  one latent layer)."""
  config = _recipe('perceiver.tasks.image.recipes', 'from_variants',
                   'fourier', {})
  config.input.image_size = TINY_CLASSIFIER_SIZE if tiny else CLASSIFIER_SIZE
  return cases_lib.swap_model(config, TINY_CLASSIFIER if tiny else CLASSIFIER)


def flow_config(tiny: bool = False) -> ml_collections.ConfigDict:
  """The flow recipe (experiments/optical_flow.py:cpu, its fast path) with
  the released design at FLOW_SIZE, N x D = 128 x 256, 4 layers of 8
  heads, and transformers' 64 Fourier bands (tiny: 8x12, 8 x 16, 1 layer)."""
  size = list(TINY_FLOW_SIZE if tiny else FLOW_SIZE)
  latents, channels, layers, heads = ((8, 16, 1, 2) if tiny else (
      FLOW_LATENTS, FLOW_CHANNELS, FLOW_LAYERS, FLOW_HEADS))
  prep = 'input_preprocessor.fourier_position_encoding_kwargs.'
  dec = 'decoder.fourier_position_encoding_kwargs.'
  model = release_specs.override(
      _recipe('perceiver.tasks.flow.recipes', 'model_config', {}), {
          prep + 'num_bands': 64, prep + 'max_resolution': size,
          'encoder.z_index_dim': latents, 'encoder.num_z_channels': channels,
          'encoder.num_self_attends_per_block': layers,
          'encoder.num_self_attend_heads': heads,
          'decoder.output_image_shape': size,
          dec + 'num_bands': 64, dec + 'max_resolution': size})
  config = _recipe('perceiver.tasks.flow.recipes', 'cpu')
  config.model = ml_collections.ConfigDict(model)
  config.input.image_size = tuple(size)
  return config


CONFIGS = {'mlm': mlm_config, 'classifier': classifier_config,
           'flow': flow_config}


def spec_of(name: str, config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The builder spec of a config's model (perceiver.hf.specs)."""
  if name == 'flow':
    return specs.clean(dict(config.model.to_dict(), builder='optical_flow'))
  return specs.spec_from_config(config)


# ---------------------------------------------------------------------------
# Batches and losses, both sides.
# ---------------------------------------------------------------------------


def make_batch(name: str, config: ml_collections.ConfigDict,
               spec: Mapping[str, Any], batch: int, seed: int = 0
               ) -> dict[str, np.ndarray]:
  """Our model's inputs (perceiver.hf.parity.random_inputs at the config's
  image size, every MLM position valid) and the loss's targets, as
  numpy."""
  rng = np.random.default_rng(seed)
  size = config.input.get('image_size')
  shape = (size, size) if isinstance(size, int) else None
  inputs = parity.random_inputs(spec, batch=batch, seed=seed,
                                image_shape=shape)
  if name == 'mlm':
    t = spec['max_seq_len']
    inputs['inputs'] = rng.integers(0, spec['vocab_size'], (batch, t)
                                    ).astype(np.int32)
    inputs['input_mask'] = np.ones((batch, t), np.int32)
    inputs['targets'] = rng.integers(0, spec['vocab_size'], (batch, t)
                                     ).astype(np.int32)
  elif name == 'classifier':
    inputs['labels'] = rng.integers(0, spec['num_classes'], (batch,)
                                    ).astype(np.int32)
  else:
    h, w = spec['decoder']['output_image_shape']
    inputs['flow'] = rng.normal(0, 2, (batch, h, w, 2)).astype(np.float32)
  return inputs


def jax_loss(name: str) -> Callable[[Any, Mapping[str, jax.Array]],
                                    jax.Array]:
  """(outputs, batch) -> the task's natural loss, in JAX."""
  def loss(out, batch):
    out = out.astype(jnp.float32)
    if name == 'mlm':
      return optax.softmax_cross_entropy_with_integer_labels(
          out, batch['targets']).mean()
    if name == 'classifier':
      return optax.softmax_cross_entropy_with_integer_labels(
          out, batch['labels']).mean()
    return jnp.mean(jnp.abs(out - batch['flow']))
  return loss


def torch_loss(name: str, spec: Mapping[str, Any]):
  """(transformers logits, torch targets) -> the same loss, in PyTorch."""
  # Optional dependency (the hf extra): imported where it is used.
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  scale = float(spec.get('flow_scale_factor', 20))

  def loss(logits, target):
    if name == 'mlm':
      return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                             target.reshape(-1))
    if name == 'classifier':
      return F.cross_entropy(logits, target)
    # transformers returns the flow without the release's scale factor.
    return torch.mean(torch.abs(logits * scale - target))
  return loss


def torch_target(name: str, batch: Mapping[str, np.ndarray]):
  import torch  # pylint: disable=g-import-not-at-top
  key = {'mlm': 'targets', 'classifier': 'labels', 'flow': 'flow'}[name]
  value = batch[key]
  if value.dtype.kind == 'i':
    value = value.astype(np.int64)
  return torch.from_numpy(np.array(value))


# ---------------------------------------------------------------------------
# The two sides.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Side:
  """One implementation's train step and forward, as zero-argument calls
  that return the loss (train) or the outputs (forward)."""
  params: int
  train: Callable[[], Any]
  forward: Callable[[], Any]
  step_flops: float = float('nan')
  forward_flops: float = float('nan')
  switches: str = ''
  step_hlo: str = ''  # ours: the compiled train step's HLO text


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get('flops', float('nan')))


def shapes_of(batch: Mapping[str, np.ndarray]):
  return {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items()}


def _case(name: str, config: ml_collections.ConfigDict, path: str,
          batch: Mapping[str, np.ndarray]) -> cases_lib.Case:
  case = cases_lib.from_config(config, path, shapes_of(batch))
  return dataclasses.replace(case, loss=jax_loss(name),
                             tx=optax.adam(LEARNING_RATE))


def _forward_fn(case: cases_lib.Case):
  def infer(p, s, b):
    with case.precision():
      out, _ = case.model.apply(p, s, None, b, is_training=False)
    return out
  return infer


def unrolled_flops(name: str, config: ml_collections.ConfigDict, path: str,
                   batch: Mapping[str, np.ndarray]) -> tuple[float, float]:
  """XLA's FLOPs of (train step, forward), compiled without scan_layers.

  XLA's cost analysis counts a while loop's body once, whatever its trip
  count, so a scanned model's own count holds one self-attention layer of
  each block (measured: 35.7 GFLOP for the MLM step scanned, 83.4
  unrolled). The unrolled twin computes the same ops, remat included.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config.scan_layers = False
  case = _case(name, config, path, batch)
  step = cases_lib.lower(case).compile()
  params, state, _ = jax.eval_shape(cases_lib.init_fn(case),
                                    jax.random.PRNGKey(0))
  forward = jax.jit(_forward_fn(case)).lower(params, state,
                                              shapes_of(batch)).compile()
  return _flops(step), _flops(forward)


def ours(name: str, config: ml_collections.ConfigDict,
         batch: Mapping[str, np.ndarray], *, path: str = 'fast',
         remat: str = 'recipe', compute_dtype: str = 'float32',
         seed: int = 0):
  """(Side, release-layout initial params as numpy) of our model."""
  config = ml_collections.ConfigDict(config.to_dict())
  if path == 'fast' and remat != 'recipe':
    config.remat = remat == 'on'
  if path == 'exact' and compute_dtype != 'float32':
    raise ValueError('The release-exact path is float32 only.')
  config.compute_dtype = compute_dtype
  case = _case(name, config, path, batch)
  params, state, opt_state = jax.jit(cases_lib.init_fn(case))(
      jax.random.PRNGKey(seed))
  initial = specs.release_layout(jax.device_get(params))
  step = cases_lib.lower(case).compile()
  device_batch = jax.device_put(dict(batch))
  forward = jax.jit(_forward_fn(case)).lower(params, state,
                                             device_batch).compile()
  step_flops, forward_flops = _flops(step), _flops(forward)
  if config.get('scan_layers') and path == 'fast':
    step_flops, forward_flops = unrolled_flops(name, config, path, batch)
  live = [params, state, opt_state]
  rng = jax.random.PRNGKey(seed + 1)

  def train():
    live[0], live[1], live[2], loss = step(live[0], live[1], live[2],
                                           device_batch, rng)
    return float(jax.block_until_ready(loss))

  def run_forward():
    return jax.block_until_ready(forward(live[0], live[1], device_batch))

  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  return Side(params=count, train=train, forward=run_forward,
              step_flops=step_flops, forward_flops=forward_flops,
              switches=case.switches, step_hlo=step.as_text()), initial


def theirs(name: str, spec: Mapping[str, Any], initial,
           batch: Mapping[str, np.ndarray], compute_dtype: str = 'float32'
           ) -> tuple[Side, str]:
  """(Side, class name) of transformers' model holding `initial`; in
  bfloat16, its forward and loss run under CPU autocast (float32 weights
  and optimiser, as ours)."""
  # Optional dependency (the hf extra): imported where it is used.
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  plan = mapping.plan(spec, initial)
  tensors, extras = mapping.to_hf(spec, initial)
  assert not extras, sorted(extras)
  model = getattr(transformers, plan.hf_class)(
      transformers.PerceiverConfig(**plan.hf_config))
  model.load_state_dict({k: torch.from_numpy(np.array(v))
                         for k, v in tensors.items()}, strict=True)
  optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE,
                               foreach=True)
  inputs = parity.torch_inputs(spec, batch)
  target = torch_target(name, batch)
  loss_fn = torch_loss(name, spec)
  autocast = functools.partial(torch.autocast, 'cpu', dtype=torch.bfloat16,
                               enabled=compute_dtype == 'bfloat16')

  def train():
    model.train()
    optimiser.zero_grad(set_to_none=True)
    with autocast():
      loss = loss_fn(model(**inputs).logits, target)
    loss.backward()
    optimiser.step()
    return float(loss.detach())

  def run_forward():
    model.eval()
    with torch.inference_mode(), autocast():
      return model(**inputs).logits

  count = sum(p.numel() for p in model.parameters())
  return Side(params=count, train=train, forward=run_forward), plan.hf_class


# ---------------------------------------------------------------------------
# Timing.
# ---------------------------------------------------------------------------


def _timed(call: Callable[[], Any]) -> float:
  start = time.perf_counter()
  call()
  return time.perf_counter() - start


def alternate(a: Callable[[], Any], b: Callable[[], Any], rounds: int
              ) -> tuple[list[float], list[float]]:
  """Seconds of `rounds` alternating calls a, b, a, b, ..."""
  times_a, times_b = [], []
  for _ in range(rounds):
    times_a.append(_timed(a))
    times_b.append(_timed(b))
  return times_a, times_b


def _summary(jax_s: list[float], torch_s: list[float]) -> dict[str, Any]:
  jm, tm = statistics.median(jax_s), statistics.median(torch_s)
  return {'jax_s': jm, 'torch_s': tm, 'ratio': tm / jm,
          'ratio_of_rounds': statistics.median(
              t / j for j, t in zip(jax_s, torch_s)),
          'jax_all_s': jax_s, 'torch_all_s': torch_s}


def gemm_rates(n: int, repeats: int = 11,
               compute_dtype: str = 'float32') -> dict[str, float]:
  """GFLOP/s of an n x n matmul, XLA's and torch's (same threads),
  alternating: the median call's rate and the best call's ('xla_best'; on
  a shared machine the best is the closer to what the cores can do, so the
  shares below are of it). In bfloat16: bfloat16 operands, XLA's with
  float32 accumulation and output (perceiver.kernels.matmul's form)."""
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  a = rng.normal(size=(n, n)).astype(np.float32)
  b = rng.normal(size=(n, n)).astype(np.float32)
  dtype = jnp.dtype(compute_dtype)
  xa, xb = jax.device_put(a.astype(dtype)), jax.device_put(b.astype(dtype))
  mm = jax.jit(functools.partial(jnp.dot, preferred_element_type=jnp.float32)
               ).lower(xa, xb).compile()
  ta = torch.from_numpy(a).to(getattr(torch, compute_dtype))
  tb = torch.from_numpy(b).to(getattr(torch, compute_dtype))
  jax_call = lambda: jax.block_until_ready(mm(xa, xb))
  torch_call = lambda: torch.mm(ta, tb)
  jax_call()
  torch_call()
  jax_s, torch_s = alternate(jax_call, torch_call, repeats)
  flop = 2.0 * n ** 3
  return {'n': n, 'xla_gflops': flop / statistics.median(jax_s) / 1e9,
          'torch_gflops': flop / statistics.median(torch_s) / 1e9,
          'xla_best_gflops': flop / min(jax_s) / 1e9,
          'torch_best_gflops': flop / min(torch_s) / 1e9}


def machine() -> dict[str, Any]:
  """What the numbers were measured on."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  cpu = platform.processor() or 'unknown'
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          cpu = line.split(':', 1)[1].strip()
          break
  except OSError:
    pass
  return {'cpu': cpu, 'cores': len(os.sched_getaffinity(0)),
          'cpu_count': os.cpu_count(),
          'date': datetime.datetime.now().isoformat(timespec='seconds'),
          'jax': jax.__version__, 'backend': jax.default_backend(),
          'torch': torch.__version__,
          'transformers': transformers.__version__,
          'torch_threads': torch.get_num_threads(),
          'torch_interop_threads': torch.get_num_interop_threads()}


def _load() -> str:
  return '/'.join(f'{x:.1f}' for x in os.getloadavg())


def _log(msg: str) -> None:
  print(msg, flush=True)


def _check_losses(name: str, jax_losses: list[float],
                  torch_losses: list[float],
                  compute_dtype: str = 'float32') -> float:
  """The first train-step losses (same weights, same batch) must agree;
  returns their relative difference."""
  a, b = jax_losses[0], torch_losses[0]
  rel = abs(a - b) / max(abs(b), 1e-12)
  if (not (math.isfinite(a) and math.isfinite(b))
      or rel > LOSS_RTOL[compute_dtype]):
    raise AssertionError(f'{name}: first train-step loss {a!r} here, {b!r} '
                         'in transformers: not the same model.')
  return rel


def run_model(name: str, *, batch: int, rounds: int, warmup: int, path: str,
              remat: str, tiny: bool, compute_dtype: str = 'float32'
              ) -> tuple[dict[str, Any], Side]:
  """Builds both sides of one model, checks them, times them; returns the
  numbers and our side."""
  config = CONFIGS[name](tiny)
  spec = spec_of(name, config)
  data = make_batch(name, config, spec, batch)
  start = time.perf_counter()
  jax_side, initial = ours(name, config, data, path=path, remat=remat,
                           compute_dtype=compute_dtype)
  compile_s = time.perf_counter() - start
  torch_side, hf_class = theirs(name, spec, initial, data, compute_dtype)
  if jax_side.params != torch_side.params:
    raise AssertionError(f'{name}: {jax_side.params:,} parameters here, '
                         f'{torch_side.params:,} in {hf_class}.')
  r = {'model': name, 'hf_class': hf_class, 'params': jax_side.params,
       'hf_params': torch_side.params, 'switches': jax_side.switches,
       'compile_s': compile_s, 'step_flops': jax_side.step_flops,
       'forward_flops': jax_side.forward_flops}
  # Untimed: the first train steps give the compared losses.
  warm = max(warmup, 1)
  jax_losses, torch_losses = [], []
  for _ in range(warm):
    jax_losses.append(jax_side.train())
    torch_losses.append(torch_side.train())
  r['losses'] = {'jax': jax_losses, 'torch': torch_losses}
  r['first_loss_rel_diff'] = _check_losses(name, jax_losses, torch_losses,
                                           compute_dtype)
  r['train'] = _summary(*alternate(jax_side.train, torch_side.train, rounds))
  r['train']['load'] = _load()
  for _ in range(warm):
    jax_side.forward()
    torch_side.forward()
  r['forward'] = _summary(*alternate(jax_side.forward, torch_side.forward,
                                     rounds))
  r['forward']['load'] = _load()
  return r, jax_side


# ---------------------------------------------------------------------------
# Profile: where our train step spends its time, per XLA op.
# ---------------------------------------------------------------------------

TOP_OPS = 12  # the profile also lists the slowest ops
# Opcodes that only move or view data.
_MOVES = frozenset({
    'copy', 'transpose', 'bitcast', 'broadcast', 'reshape', 'slice',
    'dynamic-slice', 'dynamic-update-slice', 'concatenate', 'pad',
    'parameter', 'constant', 'tuple', 'get-tuple-element', 'iota',
    'reverse', 'copy-start', 'copy-done'})
# Thunks that only run others (their children have their own events).
_CONTAINERS = frozenset({'while', 'conditional', 'call'})
_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.\-]+) = ')
_OPCODE = re.compile(r' ([a-z][a-z0-9_\-]*)\(')
_CALLS = re.compile(r'calls=%([\w.\-]+)')
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_COMPUTATION = re.compile(r'^(?:ENTRY )?%([\w.\-]+) ')


@dataclasses.dataclass(frozen=True)
class Instruction:
  name: str
  opcode: str
  calls: tuple[str, ...]
  op_name: str


def parse_hlo(text: str) -> tuple[dict[str, Instruction],
                                  dict[str, list[str]]]:
  """({instruction name: Instruction}, {computation: its instruction
  names}) of an HLO module's text (compiled.as_text())."""
  instructions, computations, current = {}, {}, None
  for line in text.splitlines():
    if not line.startswith(' '):
      match = _COMPUTATION.match(line)
      current = match.group(1) if match and line.rstrip().endswith('{') else (
          None)
      if current:
        computations[current] = []
      continue
    match = _INSTRUCTION.match(line)
    if not match or current is None:
      continue
    rest = line[match.end():]
    opcode = _OPCODE.search(' ' + rest)
    op_name = _OP_NAME.search(rest)
    instructions[match.group(1)] = Instruction(
        name=match.group(1), opcode=opcode.group(1) if opcode else '?',
        calls=tuple(_CALLS.findall(rest)),
        op_name=op_name.group(1) if op_name else '')
    computations[current].append(match.group(1))
  return instructions, computations


def opcodes(inst: Instruction, instructions, computations) -> set[str]:
  """The opcodes an instruction runs, through the fusions it calls."""
  ops, todo, seen = {inst.opcode}, list(inst.calls), set()
  while todo:
    comp = todo.pop()
    if comp in seen:
      continue
    seen.add(comp)
    for name in computations.get(comp, ()):
      ops.add(instructions[name].opcode)
      todo.extend(instructions[name].calls)
  return ops


def op_family(ops: set[str]) -> str:
  """The family of an instruction from the opcodes it runs."""
  if ops & {'dot', 'convolution'}:
    return 'dot (GEMM, incl. fused epilogues)'
  if ops & {'exponential', 'log'}:
    return 'exp/log (softmax, cross-entropy)'
  if 'rsqrt' in ops:
    return 'layer norm (rsqrt)'
  if ops & {'gather', 'scatter'}:
    return 'gather/scatter (embedding, labels)'
  if 'sqrt' in ops:
    return 'sqrt (Adam)'
  if 'reduce' in ops:
    return 'reductions (sums, means)'
  if ops <= _MOVES:
    return 'copies/transposes'
  return 'other elementwise'


def phase(op_name: str) -> str:
  """Forward, backward, remat recomputation or the update, from the JAX
  name stack that XLA keeps in each instruction's metadata."""
  if 'rematted_computation' in op_name:
    return 'remat recomputation'
  if 'transpose(' in op_name:
    return 'backward'
  if 'jvp(' in op_name:
    return 'forward'
  return 'optimizer (Adam) and glue'


def part(op_name: str) -> str:
  """The model part: the output head and loss, or the rest."""
  if any(k in op_name for k in ('embedding_decoder', 'take_along_axis',
                                'log_softmax', 'logsumexp', 'jvp()')):
    return 'output head (262-way logits) + loss'
  if 'basic_decoder' in op_name:
    return 'decoder cross-attention'
  if 'perceiver_encoder' in op_name or 'checkpoint' in op_name:
    return 'encoder'
  if 'embed' in op_name or 'position_encoding' in op_name:
    return 'input embedding'
  if 'jvp(' in op_name:
    return 'other model'
  return 'optimizer (Adam) and glue'


def thunk_times(trace_dir: str) -> dict[str, float]:
  """{thunk name: summed microseconds} of the newest perfetto trace."""
  paths = glob.glob(os.path.join(trace_dir, '**', '*.trace.json.gz'),
                    recursive=True)
  if not paths:
    raise FileNotFoundError(f'No *.trace.json.gz under {trace_dir}.')
  with gzip.open(max(paths, key=os.path.getmtime)) as f:
    data = json.load(f)
  events = data['traceEvents'] if isinstance(data, dict) else data
  out: dict[str, float] = {}
  for e in events:
    if e.get('ph') == 'X' and 'dur' in e:
      out[e['name']] = out.get(e['name'], 0.0) + float(e['dur'])
  return out


def profile_step(side: Side, steps: int, trace_dir: str) -> dict[str, Any]:
  """Runs `steps` train steps of our side under jax.profiler and sums the
  XLA:CPU thunk times by op family, by phase and by model part (shares of
  the summed thunk time; thunks may overlap on the cores)."""
  instructions, computations = parse_hlo(side.step_hlo)
  side.train()  # compiled and warm
  start = time.perf_counter()
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    for _ in range(steps):
      side.train()
  wall = (time.perf_counter() - start) / steps
  times = thunk_times(trace_dir)
  with open(os.path.join(trace_dir, 'train_step.hlo.txt'), 'w') as f:
    f.write(side.step_hlo)  # to read the top ops' fusions by name
  groups = {'family': {}, 'phase': {}, 'part': {}}
  total, top = 0.0, []
  for name, us in times.items():
    inst = instructions.get(name)
    if inst is None or inst.opcode in _CONTAINERS:
      continue
    total += us
    top.append((us, name, inst.op_name))
    keys = {'family': op_family(opcodes(inst, instructions, computations)),
            'phase': phase(inst.op_name), 'part': part(inst.op_name)}
    for group, key in keys.items():
      groups[group][key] = groups[group].get(key, 0.0) + us
  shares = {g: {k: v / total for k, v in sorted(d.items(), key=lambda x: -x[1])}
            for g, d in groups.items()}
  top = [{'op': n, 'share': us / total, 'op_name': o}
         for us, n, o in sorted(top, reverse=True)[:TOP_OPS]]
  return {'steps': steps, 'wall_s_per_step': wall,
          'thunk_s_per_step': total / 1e6 / steps, 'shares': shares,
          'top': top}


def profile_table(p: Mapping[str, Any]) -> str:
  rows = []
  for group in ('family', 'phase', 'part'):
    for key, share in p['shares'][group].items():
      rows.append((group, key, f'{share:.1%}',
                   f'{1e3 * share * p["thunk_s_per_step"]:.1f}'))
  top = [(t['op'], f'{t["share"]:.1%}', t['op_name'].replace('jit(step)/', '')
          [-90:]) for t in p['top']]
  return (cases_lib.table(('by', 'what', 'share of thunk time',
                           'ms per step'), rows) + '\n\nslowest ops:\n'
          + cases_lib.table(('op', 'share', 'JAX name stack (end)'), top))


def table(results: list[dict[str, Any]], gemm: Mapping[str, float]) -> str:
  """The two printed tables: times and ratios; FLOPs and rates."""
  rows = []
  for r in results:
    for mode in ('train', 'forward'):
      m = r[mode]
      rows.append((r['model'], f'{r["params"]:,}', f'{r["hf_params"]:,}',
                   mode, f'{1e3 * m["jax_s"]:.1f}', f'{1e3 * m["torch_s"]:.1f}',
                   f'{m["ratio"]:.2f}', f'{m["ratio_of_rounds"]:.2f}',
                   m['load']))
  first = cases_lib.table(
      ('model', 'params (ours)', 'params (transformers)', 'mode', 'jax ms',
       'torch ms', 'torch/jax', 'torch/jax (median of rounds)', 'load'), rows)
  rows = []
  for r in results:
    step = r['step_flops'] / r['train']['jax_s'] / 1e9
    fwd = r['forward_flops'] / r['forward']['jax_s'] / 1e9
    rows.append((r['model'], f'{r["step_flops"] / 1e9:.2f}',
                 f'{r["forward_flops"] / 1e9:.2f}', f'{step:.1f}',
                 f'{step / gemm["xla_best_gflops"]:.0%}', f'{fwd:.1f}',
                 f'{fwd / gemm["xla_best_gflops"]:.0%}',
                 f'{r["losses"]["jax"][0]:.6f} / '
                 f'{r["losses"]["torch"][0]:.6f}',
                 f'{r["first_loss_rel_diff"]:.1e}'))
  second = cases_lib.table(
      ('model', 'step GFLOP (XLA)', 'forward GFLOP (XLA)', 'jax step GFLOP/s',
       'of best XLA GEMM', 'jax forward GFLOP/s', 'of best XLA GEMM',
       'first loss jax / torch', 'rel. diff'), rows)
  return first + '\n\n' + second


def run(models, *, batch: int, rounds: int, warmup: int, path: str = 'fast',
        remat: str = 'recipe', compute_dtype: str = 'float32',
        tiny: bool = False, gemm_n: int = 2048,
        profile: str = '', profile_steps: int = 3, trace_dir: str = ''
        ) -> dict[str, Any]:
  """Everything the script prints, as a dict; prints as it goes. `profile`
  names a model whose train step (ours) is then profiled."""
  # Optional dependency (the hf extra): imported where it is used.
  import torch  # pylint: disable=g-import-not-at-top
  cores = len(os.sched_getaffinity(0))
  torch.set_num_threads(cores)
  info = machine()
  _log(f'bench_peer: {info["date"]}, {info["cpu"]}, {cores} cores '
       f'(os.cpu_count() {info["cpu_count"]}); jax {info["jax"]} '
       f'({info["backend"]}; XLA:CPU uses all {cores} cores), torch '
       f'{info["torch"]} with torch.set_num_threads({cores}) -> '
       f'{info["torch_threads"]} threads ({info["torch_interop_threads"]} '
       f'inter-op), transformers {info["transformers"]}; {compute_dtype}, '
       f'batch '
       f'{batch}, {rounds} alternating rounds after {max(warmup, 1)} untimed '
       f'calls; our path {path!r}, remat {remat!r}; load average {_load()}')
  out = {'machine': info, 'batch': batch, 'rounds': rounds, 'path': path,
         'remat': remat, 'compute_dtype': compute_dtype, 'tiny': tiny,
         'models': []}
  sides = {}
  if models:
    gemm = gemm_rates(gemm_n, compute_dtype=compute_dtype)
    out['gemm'] = gemm
    _log(f'{compute_dtype} GEMM {gemm_n}x{gemm_n}, median (best) of 11 '
         'calls: XLA '
         f'{gemm["xla_gflops"]:.1f} ({gemm["xla_best_gflops"]:.1f}) GFLOP/s, '
         f'torch {gemm["torch_gflops"]:.1f} ({gemm["torch_best_gflops"]:.1f}) '
         f'GFLOP/s [load {_load()}]')
  for name in models:
    r, sides[name] = run_model(name, batch=batch, rounds=rounds,
                               warmup=warmup, path=path, remat=remat,
                               tiny=tiny, compute_dtype=compute_dtype)
    out['models'].append(r)
    _log(f'  {name}: {r["hf_class"]}, {r["params"]:,} parameters both '
         f'sides; our switches: {r["switches"]}; compile {r["compile_s"]:.1f}'
         f' s; train torch/jax {r["train"]["ratio"]:.2f}, forward '
         f'{r["forward"]["ratio"]:.2f} [load {_load()}]')
  if models:
    _log('\n' + table(out['models'], out['gemm']))
    _log('torch/jax > 1: this project is faster. FLOPs: XLA\'s count of our '
         'compiled programs, unrolled (scan_layers off: XLA counts a loop '
         'body once) with the fast path\'s remat recomputation included; '
         'GFLOP/s: that count over our median time.')
  if profile:
    side = sides.get(profile)
    if side is None:
      config = CONFIGS[profile](tiny)
      spec = spec_of(profile, config)
      side, _ = ours(profile, config, make_batch(profile, config, spec, batch),
                     path=path, remat=remat, compute_dtype=compute_dtype)
    trace_dir = trace_dir or tempfile.mkdtemp(prefix='bench_peer_trace_')
    p = profile_step(side, profile_steps, trace_dir)
    out['profile'] = dict(p, model=profile, trace_dir=trace_dir)
    _log(f'\n## profile: our {profile} train step ({side.switches}), '
         f'{profile_steps} steps under jax.profiler: '
         f'{1e3 * p["wall_s_per_step"]:.0f} ms per step, '
         f'{1e3 * p["thunk_s_per_step"]:.0f} ms of XLA:CPU thunks '
         f'per step (trace in {trace_dir}) [load {_load()}]')
    _log(profile_table(p))
  _log(f'load average at the end {_load()}')
  return out


def main(argv):
  del argv
  unknown = sorted(set(m for m in FLAGS.models if m) - set(MODELS))
  if unknown:
    raise app.UsageError(f'Unknown models {unknown}; choose from {MODELS}.')
  tiny = FLAGS.tiny
  if FLAGS.profile and FLAGS.profile not in MODELS:
    raise app.UsageError(f'--profile={FLAGS.profile}: choose from {MODELS}.')
  results = run([m for m in FLAGS.models if m], batch=2 if tiny else
                FLAGS.batch, rounds=1 if tiny else FLAGS.rounds,
                warmup=1 if tiny else FLAGS.warmup, path=FLAGS.path,
                remat=FLAGS.remat, compute_dtype=FLAGS.compute_dtype,
                tiny=tiny,
                gemm_n=256 if tiny else FLAGS.gemm_n, profile=FLAGS.profile,
                profile_steps=1 if tiny else FLAGS.profile_steps,
                trace_dir=FLAGS.trace_dir)
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
