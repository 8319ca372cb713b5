r"""Does a flow model start to learn on the generated stream? (FLOW.md)

Asks why a CPU-sized Perceiver can stay at zero flow. Trains one model for
a few hundred steps on the training stream of experiments/optical_flow.py:cpu
(perceiver.tasks.flow.task.train_iterator, the task's loss, no trainer; the
project's optimiser, benchmarks/probes/optimiser.py: AdamW without weight
decay at a constant learning rate) and prints, every 25 steps, the mean
training loss over those steps divided by the mean loss of zero flow on
the same batches: 1.0 = nothing learnt.

Glossary of shapes: B batch, H, W the network's input (32 x 48 for `cpu`);
images [B, 2, H, W, 3] in [-1, 1], flow [B, H, W, 2] in pixels.

Models (--model):
  perceiver   the experiment's model (the release's design, [P] §4.2).
  fixed       the same, trained on ONE fixed batch: generated pairs 0-7
              without augmentation (can it fit 8 pairs?).
  cnn         a control that is not the paper's: 5 dilated 3x3 convolutions
              (rates 1, 2, 4, 8, 1; 48 channels, ReLU) on both frames
              stacked, then a 1x1 convolution to (u, v).
Data (--scene):
  cpu         the `cpu` variant's scenes and curriculum.
  translate   background only, pure translation (the simplest flow).

  python benchmarks/probes/flow_learnability.py --model=perceiver \
      --scene=translate
  python benchmarks/probes/flow_learnability.py --model=cnn --scene=cpu \
      --steps=300
"""
import os
import sys
import time

from absl import app
from absl import flags
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from benchmarks.probes import optimiser  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import optical_flow  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.flow import autoflow  # pylint: disable=g-import-not-at-top,wrong-import-position
from perceiver.tasks.flow import task as flow_task  # pylint: disable=g-import-not-at-top,wrong-import-position

_MODEL = flags.DEFINE_enum('model', 'perceiver', ['perceiver', 'fixed', 'cnn'],
                           'The model (module docstring).')
_SCENE = flags.DEFINE_enum('scene', 'cpu', ['cpu', 'translate'],
                           'The generated scenes (module docstring).')
_STEPS = flags.DEFINE_integer('steps', 200, 'Training steps.')
_LR = flags.DEFINE_float(
    'lr', 1e-3, 'Learning rate (constant; AdamW without weight decay).')
_SEED = flags.DEFINE_integer('seed', 0, 'Data and init seed.')
_LEVERS = flags.DEFINE_string(
    'levers', '', 'experiments/optical_flow.py variants added to "cpu", '
    'e.g. "qres,head_init,stem" (recipes.LEVERS).')


def _config(scene: str):
  config = optical_flow.get_config(
      ','.join(filter(None, ['cpu', _LEVERS.value])))
  if scene == 'translate':
    config.input.min_layers = config.input.max_layers = 0
    config.input.max_rotation = 0.0
    config.input.max_log2_scale = 0.0
    config.input.nonrigid_lipschitz = 0.0
    config.input.phase_severities = (0.0,) * len(config.input.phase_ends)
  return config


def _cnn() -> hk.TransformedWithState:
  def forward(batch, *, is_training):
    del is_training
    images = batch['images']  # [B, 2, H, W, 3]
    x = jnp.concatenate([images[:, 0], images[:, 1]], -1)  # [B, H, W, 6]
    for rate in (1, 2, 4, 8, 1):
      x = jax.nn.relu(hk.Conv2D(48, 3, rate=rate)(x))
    return hk.Conv2D(2, 1)(x)  # [B, H, W, 2]
  return hk.transform_with_state(forward)


def main(argv):
  del argv
  config = _config(_SCENE.value)
  model = (_cnn() if _MODEL.value == 'cnn' else flow_task.make_model(config))
  stream = flow_task.train_iterator(
      config, data_dir=None, seed=_SEED.value, start_step=0,
      process_index=0, process_count=1)
  first = jax.tree.map(jnp.asarray, next(stream))
  if _MODEL.value == 'fixed':  # pairs 0-7, without augmentation
    first = jax.tree.map(jnp.asarray, autoflow.make_batch(
        autoflow.textures(tuple(config.input.texture_dirs)),
        range(config.input.global_batch_size),
        size=tuple(config.input.image_size), seed=_SEED.value,
        stream=flow_task.TRAIN_STREAM,
        options=flow_task.scene_options(config.input)))
  params, state = model.init(jax.random.PRNGKey(_SEED.value), first,
                             is_training=True)
  optimizer = optimiser.make(optimiser.config(
      name='adamw', lr=_LR.value, steps=_STEPS.value, cosine=False))
  opt_state = optimizer.init(params)

  def loss_fn(params, state, batch):
    flow, _ = model.apply(params, state, None, batch, is_training=True)
    loss, metrics = flow_task.loss_and_metrics(flow, batch, config)
    zero, zero_metrics = flow_task.loss_and_metrics(
        jnp.zeros_like(flow), batch, config)
    return loss, (metrics['epe'], zero, zero_metrics['epe'])

  @jax.jit
  def step(params, opt_state, batch):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, state, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, (loss,) + aux

  print(f'model={_MODEL.value} levers={_LEVERS.value} scene={_SCENE.value} '
        f'lr={_LR.value} '
        f'batch={config.input.global_batch_size} '
        f'size={tuple(config.input.image_size)}')
  print('step  loss/zero  epe  zero-flow epe  seconds')
  start, window = time.time(), []
  for i in range(1, _STEPS.value + 1):
    batch = first if (i == 1 or _MODEL.value == 'fixed') else jax.tree.map(
        jnp.asarray, next(stream))
    params, opt_state, values = step(params, opt_state, batch)
    window.append([float(v) for v in values])
    if i % 25 == 0 or i == _STEPS.value:
      loss, epe, zero, zero_epe = np.mean(window, 0)
      window = []
      print(f'{i:4d}  {loss / zero:.3f}  {epe:.3f}  {zero_epe:.3f}  '
            f'{time.time() - start:.0f}', flush=True)


if __name__ == '__main__':
  app.run(main)
