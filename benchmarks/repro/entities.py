r"""Entity encoders: AlphaStar's Transformer against Perceiver IO ([P] Table 9).

A script, not a test. Sections (--sections, comma-separated):
  table      at M = 512 entity slots, for each encoder: parameters of the
             encoder alone (and of the heads), forward FLOPs per example
             (XLA), train-step FLOPs, and train steps/s at the experiment's
             batch, the two encoders' steps timed alternately in one run.
  sweep      Perceiver IO's forward FLOPs at M = 512 for N in {32, 64} and
             D in {128, 256, 512, 1024} ([P] does not give D).
  scaling    forward FLOPs and time of each encoder alone as M grows from
             2^min_log2 to 2^max_log2 (64 .. 4096), timed alternately;
             log-log slopes; the PNG of both (--plot).
  baselines  what simple rules score on the held-out split (so the
             trained accuracies can be read): pointing at a random real
             entity, at the nearest opponent; predicting the majority
             outcome, the side with more total health, or the side with
             more health x damage per tick.
  compare    the training comparison: launch/train.py for both encoders at
             once (side by side, the same machine load) for --budget_min
             minutes of wall time each, then launch/eval.py on the held-out
             split for each encoder's last checkpoint and, for Perceiver IO,
             its checkpoint at the Transformer's last step (equal steps).
  curves     the training curves of a compare run, from its logs in
             --workdir (a PNG with --curves_plot).

FLOPs: XLA's cost analysis of the lowered program (as launch/model_card.py),
a multiply-add counted as 2, per example (batch 1). XLA counts a loop body
once, so the FLOPs are measured on the unrolled, unchunked encoders.
Times: jitted and compiled ahead of time, `--warmup` calls, then the median
of `--repeats` calls each ended by `block_until_ready`, the two encoders
alternating call by call. The machine may be shared: the script prints the
load average (os.getloadavg) next to every timing.

  python benchmarks/repro/entities.py --sections=table,scaling,baselines \
      --plot=benchmarks/repro/figures/entities_scaling.png
  python benchmarks/repro/entities.py --sections=compare --budget_min=21 \
      --workdir=/tmp/entities_compare

The plot needs matplotlib (a benchmark-only dependency: pip install
matplotlib); nothing else in the repository imports it.
"""
import functools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from perceiver.tasks.entities import battle
from perceiver.tasks.entities import encoders
from perceiver.tasks.entities import models
from perceiver.tasks.entities import recipes
from perceiver.tasks.entities import task as entity_task
from perceiver.train import optim
# pylint: enable=g-import-not-at-top,wrong-import-position

SECTIONS = ('table', 'sweep', 'scaling', 'baselines', 'compare', 'curves')
NAMES = ('transformer', 'perceiver')
EXPERIMENT = os.path.join(_REPO, 'experiments', 'entities.py')

FLAGS = flags.FLAGS
flags.DEFINE_list('sections', ['table', 'sweep', 'scaling', 'baselines'],
                  f'Any of {SECTIONS}.')
flags.DEFINE_integer('latents', 32, "Perceiver IO's N (32 or 64).")
flags.DEFINE_integer('batch', 8, 'Train-step batch of the table section.')
flags.DEFINE_integer('entities', 512, 'Entity slots M of the table section.')
flags.DEFINE_integer('warmup', 1, 'Untimed calls after compilation.')
flags.DEFINE_integer('repeats', 5, 'Timed calls per encoder (median).')
flags.DEFINE_integer('scale_batch', 4, 'Forward batch of the scaling times.')
flags.DEFINE_integer('min_log2', 6, 'Smallest M is 2^min_log2.')
flags.DEFINE_integer('max_log2', 12, 'Largest M is 2^max_log2.')
flags.DEFINE_string('plot', '', 'Write the scaling figure (PNG) here.')
flags.DEFINE_string('json_out', '', 'Write all numbers here (JSON).')
flags.DEFINE_string('replot', '', 'Only redraw --plot from the scaling '
                    'section of this --json_out file.')
flags.DEFINE_integer('baseline_examples', 512,
                     'Held-out scenes for the baselines (the validation set).')
flags.DEFINE_float('budget_min', 21.0,
                   'compare: training minutes (wall) of each encoder.')
flags.DEFINE_string('workdir', '/tmp/entities_compare', 'compare: workdirs.')
flags.DEFINE_string('curves_plot', '', 'curves: write the PNG here.')
flags.DEFINE_integer('checkpoint_every', 10, 'compare: steps between '
                     'checkpoints (the evaluations read them).')
flags.DEFINE_string('variant', '', 'compare: extra experiment variants, '
                    'e.g. "batch=8" (appended to encoder=...).')


def _load() -> str:
  one, five, fifteen = os.getloadavg()
  return f'load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} CPUs'


def _kwargs(name: str) -> dict[str, Any]:
  return {'num_latents': FLAGS.latents} if name == 'perceiver' else {}


def _encoder_forward(name: str, **extra):
  def forward(entities, mask, *, is_training):
    return encoders.ENCODERS[name](**_kwargs(name), **extra)(
        entities, mask, is_training=is_training)
  return hk.transform(forward)


def _inputs(batch: int, num_slots: int):
  return (jax.ShapeDtypeStruct((batch, num_slots, battle.NUM_FEATURES),
                               jnp.float32),
          jax.ShapeDtypeStruct((batch, num_slots), jnp.bool_))


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _forward_flops(name: str, num_slots: int) -> float:
  """Forward FLOPs per example of the encoder alone (unrolled, unchunked)."""
  model = _encoder_forward(name)
  inputs = _inputs(1, num_slots)
  params = jax.eval_shape(functools.partial(model.init, is_training=False),
                          jax.random.PRNGKey(0), *inputs)
  def apply(p, entities, mask):
    return model.apply(p, None, entities, mask, is_training=False)
  cost = jax.jit(apply).trace(params, *inputs).lower().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost['flops'])


def _alternate(calls: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
  """Times each call `repeats` times, alternating between them."""
  for call in calls.values():
    for _ in range(FLAGS.warmup):
      jax.block_until_ready(call())
  times = {k: [] for k in calls}
  for _ in range(FLAGS.repeats):
    for key, call in calls.items():
      start = time.perf_counter()
      jax.block_until_ready(call())
      times[key].append(time.perf_counter() - start)
  return times


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
  return '\n'.join(lines)


# --- table ---------------------------------------------------------------


def run_table() -> dict[str, Any]:
  config = entity_task.default_input_config()
  m = FLAGS.entities
  data = battle.batch(0, battle.TRAIN_STREAM, range(FLAGS.batch),
                      min_entities=min(config.min_entities, m),
                      max_entities=m)
  task_config = ml_collections.ConfigDict(
      {'task': entity_task.default_task_config()})
  out, steps = {}, {}
  for name in NAMES:
    model = hk.transform_with_state(models.make_forward(name, _kwargs(name)))
    params, state = model.init(jax.random.PRNGKey(0), data, is_training=True)
    encoder_params = _count({k: v for k, v in params.items()
                             if k.startswith(f'{name}_entity_encoder')})
    # The experiment's optimiser (AdamW, clipping, the decay mask), as the
    # trainer builds it.
    recipe = recipes.from_variants({'encoder': name})
    tx = optim.make_optimizer(recipe.optimizer, optim.make_schedule(
        recipe.schedule, recipe.num_train_steps))

    def train_step(params, opt_state, batch, model=model, state=state, tx=tx):
      def loss_fn(p):
        outputs, _ = model.apply(p, state, None, batch, is_training=True)
        return entity_task.loss_and_metrics(outputs, batch, task_config)[0]
      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(
        params, tx.init(params), data).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
      cost = cost[0]
    holder = {'p': params, 'o': tx.init(params)}

    def one_step(compiled=compiled, holder=holder):
      holder['p'], holder['o'], loss = compiled(holder['p'], holder['o'], data)
      return loss

    steps[name] = one_step
    out[name] = {'encoder_params': encoder_params,
                 'head_params': _count(params) - encoder_params,
                 'forward_flops': _forward_flops(name, m),
                 'train_step_flops_per_example':
                     float(cost['flops']) / FLAGS.batch}
  load_before = _load()
  times = _alternate(steps)
  load_after = _load()
  for name in NAMES:
    out[name]['step_s'] = statistics.median(times[name])
    out[name]['steps_per_s'] = 1.0 / out[name]['step_s']
  t, p = out['transformer'], out['perceiver']
  print(f'\n## Table 9 form: M = {m} entity slots, batch {FLAGS.batch} '
        f'(train step), N = {FLAGS.latents} latents')
  print(f'timed: {load_before} before, {load_after} after; median of '
        f'{FLAGS.repeats} alternating steps each')
  rows = [[name, f'{r["encoder_params"]:,}', f'{r["head_params"]:,}',
           f'{r["forward_flops"] / 1e9:.3f}',
           f'{r["train_step_flops_per_example"] / 1e9:.2f}',
           f'{r["step_s"]:.2f}', f'{r["steps_per_s"]:.3f}']
          for name, r in out.items()]
  print(_table(['encoder', 'encoder params', 'head params',
                'forward GFLOPs/example', 'train-step GFLOPs/example',
                's/step', 'steps/s'], rows))
  print(f'Transformer / Perceiver IO: forward FLOPs '
        f'{t["forward_flops"] / p["forward_flops"]:.2f}x, step time '
        f'{t["step_s"] / p["step_s"]:.2f}x, encoder params '
        f'{t["encoder_params"] / p["encoder_params"]:.2f}x')
  out['load'] = [load_before, load_after]
  return out


def run_sweep() -> dict[str, float]:
  """Perceiver IO's forward FLOPs at M = 512 for other N x D ([P] does not
  give D), to see which sizes land near [P]'s 0.93B."""
  rows, out = [], {}
  for d in (128, 256, 512, 1024):
    for n in (32, 64):
      model = hk.transform(lambda e, m, n=n, d=d: encoders.PerceiverEntityEncoder(
          num_latents=n, num_z_channels=d)(e, m, is_training=False))
      inputs = _inputs(1, FLAGS.entities)
      params = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)
      cost = jax.jit(lambda p, e, m, model=model: model.apply(
          p, None, e, m)).trace(params, *inputs).lower().cost_analysis()
      if isinstance(cost, (list, tuple)):
        cost = cost[0]
      out[f'N={n},D={d}'] = float(cost['flops'])
      rows.append([n, d, f'{_count(params):,}', f'{cost["flops"] / 1e9:.3f}'])
  print(f'\n## Perceiver IO encoder at M = {FLAGS.entities}: other N x D '
        "([P] Table 9: 0.93B)")
  print(_table(['N', 'D', 'encoder params', 'forward GFLOPs/example'], rows))
  return out


# --- scaling -------------------------------------------------------------


def _slope(xs, ys) -> float:
  return float(np.polyfit(np.log2(xs), np.log2(ys), 1)[0])


def run_scaling() -> dict[str, Any]:
  sizes = [2 ** k for k in range(FLAGS.min_log2, FLAGS.max_log2 + 1)]
  result = {name: {'flops': [], 'seconds': []} for name in NAMES}
  loads = []
  for m in sizes:
    rng = np.random.default_rng(m)
    entities = jnp.asarray(rng.standard_normal(
        (FLAGS.scale_batch, m, battle.NUM_FEATURES)), jnp.float32)
    mask = jnp.asarray(np.arange(m) < (m * 3) // 4)[None].repeat(
        FLAGS.scale_batch, 0)
    calls = {}
    for name in NAMES:
      result[name]['flops'].append(_forward_flops(name, m))
      model = _encoder_forward(name)
      params = model.init(jax.random.PRNGKey(0), entities, mask,
                          is_training=False)
      compiled = jax.jit(lambda p, e, m, model=model: model.apply(
          p, None, e, m, is_training=False)).lower(
              params, entities, mask).compile()
      calls[name] = functools.partial(compiled, params, entities, mask)
    times = _alternate(calls)
    loads.append(os.getloadavg()[0])
    for name in NAMES:
      result[name]['seconds'].append(statistics.median(times[name]))
    print(f'M={m}: ' + ', '.join(
        f'{n} {result[n]["flops"][-1] / 1e9:.3f} GFLOPs '
        f'{result[n]["seconds"][-1] * 1e3:.1f} ms' for n in NAMES) +
          f' ({_load()})', flush=True)
  print(f'\n## Scaling with the number of entity slots M (forward, encoder '
        f'alone; FLOPs per example, time per batch of {FLAGS.scale_batch})')
  rows = []
  for i, m in enumerate(sizes):
    t, p = (result[n] for n in NAMES)
    rows.append([m, f'{t["flops"][i] / 1e9:.3f}', f'{p["flops"][i] / 1e9:.3f}',
                 f'{t["flops"][i] / p["flops"][i]:.1f}x',
                 f'{t["seconds"][i] * 1e3:.1f}', f'{p["seconds"][i] * 1e3:.1f}',
                 f'{t["seconds"][i] / p["seconds"][i]:.1f}x',
                 f'{loads[i]:.1f}'])
  print(_table(['M', 'Transformer GFLOPs', 'Perceiver IO GFLOPs', 'ratio',
                'Transformer ms', 'Perceiver IO ms', 'ratio', 'load (1 min)'],
               rows))
  for name in NAMES:
    r = result[name]
    r['flops_slope_top3'] = _slope(sizes[-3:], r['flops'][-3:])
    r['time_slope_top3'] = _slope(sizes[-3:], r['seconds'][-3:])
    print(f'{name}: log-log slope over the largest three M: FLOPs '
          f'{r["flops_slope_top3"]:.2f}, time {r["time_slope_top3"]:.2f}')
  result['sizes'] = sizes
  result['loads'] = loads
  if FLAGS.plot:
    _plot(result, FLAGS.plot)
  return result


def _plot(result: dict[str, Any], path: str) -> None:
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit('--plot needs matplotlib, a benchmark-only dependency: '
                     'pip install matplotlib') from e
  sizes = result['sizes']
  labels = {'transformer': "AlphaStar's Transformer (3 layers)",
            'perceiver': f'Perceiver IO (N = {FLAGS.latents})'}
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for ax, key, ylabel in ((axes[0], 'flops', 'forward GFLOPs per example'),
                          (axes[1], 'seconds',
                           f'forward ms per batch of {FLAGS.scale_batch}')):
    scale = 1e-9 if key == 'flops' else 1e3
    for name, marker in zip(NAMES, 'os'):
      ax.plot(sizes, np.asarray(result[name][key]) * scale, marker=marker,
              label=labels[name])
    if key == 'flops':  # guides: ~M through Perceiver IO's first point,
      m0 = sizes[0]     # ~M^2 through the Transformer's
      for power, name, style in ((1, 'perceiver', '--'),
                                 (2, 'transformer', ':')):
        y0 = result[name][key][0] * scale
        ax.plot(sizes, [y0 * (m / m0) ** power for m in sizes], color='grey',
                ls=style, lw=1, label=f'~ M{"" if power == 1 else "^2"}')
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xticks(sizes, [str(m) for m in sizes])
    ax.set_xlabel('entity slots M')
    ax.set_ylabel(ylabel)
    ax.grid(True, which='both', alpha=0.3)
    ax.axvline(512, color='black', ls='-.', lw=0.8)
  axes[0].set_title('FLOPs (XLA cost analysis)')
  axes[1].set_title('time (2 shared CPU cores; noisy)')
  axes[0].legend(loc='upper left')
  fig.suptitle('Entity encoders against the number of entities '
               '(dash-dot: AlphaStar\'s 512)')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  print(f'wrote {path}')


# --- baselines -------------------------------------------------------------


def run_baselines() -> dict[str, float]:
  config = entity_task.default_input_config()
  data = entity_task.held_out('validation', FLAGS.baseline_examples,
                              config.min_entities, config.max_entities)
  x, mask = data['entities'], data['entity_mask']
  owner = x[..., battle.FEATURE_OWNER].argmax(-1)
  pos = x[..., [battle.FEATURE_X, battle.FEATURE_Y]]
  health = x[..., battle.FEATURE_HEALTH] * battle.HEALTH_SCALE
  kind = x[..., battle.FEATURE_TYPE].argmax(-1)
  damage = np.array([t.damage / t.cooldown for t in battle.UNIT_TYPES])[kind]
  has = data['target'] >= 0
  random_hits = nearest_hits = 0.0
  strength, health_sum = [], []
  for b in range(x.shape[0]):
    real = mask[b]
    foe = (owner[b][:, None] != owner[b][None, :]) & (
        owner[b][None, :] != battle.NEUTRAL) & real[None, :]
    sq = ((pos[b][:, None] - pos[b][None, :]) ** 2).sum(-1)
    nearest = np.argmin(np.where(foe, sq, np.inf), axis=1)
    rows = has[b]
    nearest_hits += float((nearest[rows] == data['target'][b][rows]).sum())
    random_hits += float(rows.sum()) / float(real.sum())
    sides = [(owner[b] == s) & real for s in (battle.SELF, battle.ENEMY)]
    health_sum.append([health[b][s].sum() for s in sides])
    strength.append([health[b][s].sum() * damage[b][s].sum() for s in sides])
  count = float(has.sum())
  win = data['win']
  health_sum, strength = np.asarray(health_sum), np.asarray(strength)
  out = {
      'pointer_random_real_entity': random_hits / count,
      'pointer_nearest_opponent': nearest_hits / count,
      'pointer_share_in_range_rule': float(
          (data['rule'] == battle.RULE_IN_RANGE)[has].mean()),
      'win_majority': float(max(win.mean(), 1 - win.mean())),
      'win_more_health': float(
          ((health_sum[:, 0] > health_sum[:, 1]) == win).mean()),
      'win_more_health_x_damage': float(
          ((strength[:, 0] > strength[:, 1]) == win).mean()),
  }
  print(f'\n## Rule baselines on the {x.shape[0]} validation scenes '
        f'({int(count)} pointer targets)')
  print(_table(['baseline', 'accuracy'],
               [[k, f'{v:.3f}'] for k, v in out.items()]))
  return out


# --- compare ---------------------------------------------------------------


def _launch(script: str, name: str, workdir: str, extra: Sequence[str],
            log_path: str) -> subprocess.Popen:
  variant = f'encoder={name}' + (f',{FLAGS.variant}' if FLAGS.variant else '')
  if name == 'perceiver':
    variant += f',latents={FLAGS.latents}'
  cmd = [sys.executable, os.path.join(_REPO, 'launch', script),
         f'--config={EXPERIMENT}:{variant}', f'--workdir={workdir}',
         *extra]
  env = dict(os.environ, PYTHONPATH=_REPO)
  log = open(log_path, 'w')  # pylint: disable=consider-using-with
  return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                          start_new_session=True)


def _steps(workdir: str) -> list[int]:
  root = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(root):
    return []
  return sorted(int(d) for d in os.listdir(root) if d.isdigit())


def _evaluate(name: str, workdir: str, step: int) -> dict[str, float]:
  log_path = os.path.join(FLAGS.workdir, f'eval_{name}_{step}.log')
  proc = _launch('eval.py', name, workdir,
                 [f'--step={step}', '--split=validation'], log_path)
  proc.wait()
  text = open(log_path).read()
  start = text.rfind('{')
  if proc.returncode or start < 0:
    raise RuntimeError(f'launch/eval.py failed for {name} step {step}; see '
                       f'{log_path}:\n{text[-2000:]}')
  return json.loads(text[start:text.rfind('}') + 1])


def run_compare() -> dict[str, Any]:
  os.makedirs(FLAGS.workdir, exist_ok=True)
  workdirs = {n: os.path.join(FLAGS.workdir, n) for n in NAMES}
  # A huge step count: the wall-clock budget ends the runs, not the schedule
  # (whose cosine then stays within 0.1% of the peak learning rate), and a
  # checkpoint every few steps, all kept, for the evaluations afterwards.
  flags_ = ['--config.num_train_steps=100000',
            f'--config.checkpoint_every={FLAGS.checkpoint_every}',
            '--config.keep_checkpoints=100000', '--config.eval_every=0']
  procs = {n: _launch('train.py', n, workdirs[n], flags_,
                      os.path.join(FLAGS.workdir, f'train_{n}.log'))
           for n in NAMES}
  start = time.time()
  loads = []
  deadline = start + 60 * FLAGS.budget_min
  while time.time() < deadline and all(p.poll() is None
                                       for p in procs.values()):
    time.sleep(min(30.0, max(deadline - time.time(), 0.1)))
    loads.append(os.getloadavg()[0])
  for name, proc in procs.items():
    if proc.poll() is not None:
      raise RuntimeError(f'{name} training ended early (code '
                         f'{proc.returncode}); see its log in '
                         f'{FLAGS.workdir}.')
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
  wall = time.time() - start
  print(f'\n## Training side by side: {wall / 60:.1f} min wall each, load '
        f'(1 min) mean {np.mean(loads):.1f}, min {np.min(loads):.1f}, '
        f'max {np.max(loads):.1f} on {os.cpu_count()} CPUs')
  out: dict[str, Any] = {'wall_s': wall, 'loads': loads}
  last = {n: _steps(workdirs[n])[-1] for n in NAMES}
  for name in NAMES:
    out[name] = {'last_step': last[name],
                 'final': _evaluate(name, workdirs[name], last[name])}
  # Perceiver IO at the Transformer's step count (its nearest checkpoint).
  perceiver_steps = _steps(workdirs['perceiver'])
  equal = min(perceiver_steps, key=lambda s: abs(s - last['transformer']))
  out['perceiver']['at_equal_steps'] = {
      'step': equal,
      'metrics': _evaluate('perceiver', workdirs['perceiver'], equal)}
  rows = []
  for name, step, metrics in (
      ('transformer', last['transformer'], out['transformer']['final']),
      ('perceiver', last['perceiver'], out['perceiver']['final']),
      ('perceiver (equal steps)', equal,
       out['perceiver']['at_equal_steps']['metrics'])):
    rows.append([name, step, f'{metrics["pointer_accuracy"]:.3f}',
                 f'{metrics["pointer_accuracy_in_range"]:.3f}',
                 f'{metrics["pointer_accuracy_nearest"]:.3f}',
                 f'{metrics["win_accuracy"]:.3f}', f'{metrics["loss"]:.3f}'])
  print(_table(['encoder', 'steps', 'pointer acc', 'in range', 'nearest',
                'win acc', 'loss'], rows))
  return out


_LOG_LINE = re.compile(
    r'^I\d{4} (?P<time>\d\d:\d\d:\d\d\.\d+) .*\] step (?P<step>\d+)/\d+ '
    r'\| (?P<metrics>.*)$')


def _seconds(clock: str) -> float:
  h, m, sec = clock.split(':')
  return int(h) * 3600 + int(m) * 60 + float(sec)


def _curve(log_path: str) -> dict[str, list[float]]:
  """(minutes since the loop started, step, train metrics) from a
  launch/train.py log. Every training batch is freshly generated, so the
  training accuracies estimate held-out ones (averaged over log_every steps,
  8 scenes each: noisy)."""
  rows, start = [], None
  with open(log_path) as f:
    for line in f:
      if start is None and 'training steps' in line:  # the loop's first line
        start = _seconds(line.split()[1])
      match = _LOG_LINE.match(line.strip())
      if not match:
        continue
      seconds = _seconds(match['time'])
      values = {}
      for item in match['metrics'].split(' | '):
        key, _, value = item.partition(' ')
        try:
          values[key] = float(value)
        except ValueError:
          pass
      rows.append((seconds, int(match['step']), values))
  if not rows or start is None:
    raise ValueError(f'No training progress lines in {log_path}.')
  return {'minutes': [(t - start) % 86400 / 60 for t, _, _ in rows],
          'step': [s for _, s, _ in rows],
          **{k: [v.get(k, float('nan')) for _, _, v in rows]
             for k in ('pointer_accuracy', 'win_accuracy', 'loss')}}


def run_curves() -> dict[str, Any]:
  """Training curves of a `compare` run (its logs in --workdir); PNG to
  --curves_plot."""
  curves = {n: _curve(os.path.join(FLAGS.workdir, f'train_{n}.log'))
            for n in NAMES}
  for name, c in curves.items():
    print(f'{name}: {c["step"][-1]} steps logged over '
          f'{c["minutes"][-1]:.1f} min after the loop started (compilation '
          'included)')
  if FLAGS.curves_plot:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    labels = {'transformer': "AlphaStar's Transformer",
              'perceiver': f'Perceiver IO (N = {FLAGS.latents})'}
    for name in NAMES:
      c = curves[name]
      axes[0].plot(c['minutes'], c['pointer_accuracy'], label=labels[name])
      axes[1].plot(c['step'], c['pointer_accuracy'], label=labels[name])
      axes[2].plot(c['step'], c['win_accuracy'], label=labels[name])
    for ax, xlabel, ylabel in (
        (axes[0], 'minutes of training (side by side)', 'pointer accuracy'),
        (axes[1], 'steps (batch 8)', 'pointer accuracy'),
        (axes[2], 'steps (batch 8)', 'win accuracy')):
      ax.set_xlabel(xlabel)
      ax.set_ylabel(ylabel)
      ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle('Entity encoders trained side by side on 2 shared CPU '
                 'cores, M = 512 slots (accuracy on the fresh training '
                 'batches, 10-step means)')
    fig.tight_layout()
    fig.savefig(FLAGS.curves_plot, dpi=110)
    print(f'wrote {FLAGS.curves_plot}')
  return curves


RUNS = {'table': run_table, 'sweep': run_sweep, 'scaling': run_scaling,
        'baselines': run_baselines, 'compare': run_compare,
        'curves': run_curves}


def main(argv):
  del argv
  unknown = set(FLAGS.sections) - set(SECTIONS)
  if unknown:
    raise app.UsageError(f'Unknown sections {sorted(unknown)}; use '
                         f'{SECTIONS}.')
  if FLAGS.replot:
    with open(FLAGS.replot) as f:
      _plot(json.load(f)['scaling'], FLAGS.plot)
    return
  print(f'jax {jax.__version__}, {jax.devices()[0].platform}, {_load()}')
  results = {s: RUNS[s]() for s in SECTIONS if s in FLAGS.sections}
  if FLAGS.json_out:
    with open(FLAGS.json_out, 'w') as f:
      json.dump(results, f, indent=2, default=float)
    print(f'wrote {FLAGS.json_out}')


if __name__ == '__main__':
  app.run(main)
