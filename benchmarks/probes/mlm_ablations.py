r"""The plateau ablations of benchmarks/repro/LANGUAGE.md: run, tabulate, plot.

Not a test. Each arm is a set of benchmarks/probes/mlm_plateau.py flags; every
(arm, seed) runs as its own process (one XLA thread each, `--jobs` at a
time) and appends one JSON line to `--out`, so an interrupted sweep resumes
where it stopped. Then it prints a table (validation masked-byte accuracy
and NLL at the last step, mean +- standard error over seeds) and, with
`--png`, plots masked-byte accuracy against steps (needs matplotlib, which
the pinned requirements do not include: `pip install matplotlib`).

  .venv/bin/python benchmarks/probes/mlm_ablations.py --arms=release,bert \
      --seeds=0,1,2 --steps=2000 --out=/tmp/mlm_ablations.jsonl
  .venv/bin/python benchmarks/probes/mlm_ablations.py \
      --out=/tmp/mlm_ablations.jsonl \
      --arms=all --run=false --png=benchmarks/repro/figures/mlm_ablations.png

Arms: ARMS below (the defaults of mlm_plateau.py are the release's).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (mlm_plateau.py flags, what it changes). Release settings are the
# defaults of mlm_plateau.py: learned input positions and queries at init
# scale 0.02, hk.Embed at 1.0, 32 latents, T = 128, whole-word masking,
# LAMB 2e-3 with 10% warmup, weight decay 0.01.
# Per-byte masking with the token embedding at 0.02, the base of most arms.
BYTE_E002 = ['--masking=byte', '--embed_scale=0.02']
ARMS = {
    'release': ([], 'the release design at recipes.SMALL size'),
    'bert': (['--arch=bert'], 'same-size encoder-only Transformer'),
    'bert_pos1': (['--arch=bert', '--input_pos_scale=1.0'],
                  'BERT, input positions at init scale 1.0'),
    'pos1': (['--input_pos_scale=1.0', '--query_pos_scale=1.0'],
             'input positions and queries at init scale 1.0'),
    'fourier': (['--input_pos=fourier'],
                'Fourier input positions (64 bands, concatenated)'),
    'byte_mask': (['--masking=byte'], 'per-byte masking'),
    'bert_byte': (['--arch=bert', '--masking=byte'], 'BERT, per-byte masking'),
    'byte_pos1': (['--masking=byte', '--input_pos_scale=1.0',
                   '--query_pos_scale=1.0'],
                  'per-byte masking, positions and queries at 1.0'),
    'byte_latents128': (['--masking=byte', '--latents=128'],
                        'per-byte masking, 128 latents'),
    'bert_byte_adamw': (['--arch=bert', '--masking=byte', '--optimizer=adamw',
                         '--lr=1e-3'], 'BERT, per-byte masking, AdamW 1e-3'),
    'embed002': (['--embed_scale=0.02'], 'token embedding init 0.02'),
    'byte_embed002': (['--masking=byte', '--embed_scale=0.02'],
                      'per-byte masking, token embedding init 0.02'),
    'bert_byte_embed002': (['--arch=bert', '--masking=byte',
                            '--embed_scale=0.02'],
                           'BERT, per-byte masking, embedding init 0.02'),
    'bert_embed002': (['--arch=bert', '--embed_scale=0.02'],
                      'BERT, token embedding init 0.02'),
    'byte_e002_pos1': (BYTE_E002 + ['--input_pos_scale=1.0',
                                    '--query_pos_scale=1.0'],
                       'per-byte masking, embedding 0.02, positions 1.0'),
    'byte_e002_adamw': (BYTE_E002 + ['--optimizer=adamw', '--lr=1e-3'],
                        'per-byte masking, embedding 0.02, AdamW 1e-3'),
    'byte_e002_pos1_adamw': (BYTE_E002 + ['--input_pos_scale=1.0',
                              '--query_pos_scale=1.0', '--optimizer=adamw',
                              '--lr=1e-3'],
                             'per-byte masking, embedding 0.02, positions '
                             '1.0, AdamW 1e-3'),
    'byte_pos1_adamw': (['--masking=byte', '--input_pos_scale=1.0',
                         '--query_pos_scale=1.0', '--optimizer=adamw',
                         '--lr=1e-3'],
                        'per-byte masking, positions at 1.0, AdamW 1e-3'),
    'byte_e002_latents128': (BYTE_E002 + ['--latents=128'],
                             'per-byte masking, embedding 0.02, 128 latents'),
    'byte_e002_xheads16': (BYTE_E002 + ['--cross_heads=16'],
                           'per-byte masking, embedding 0.02, 16 encoder '
                           'cross-attention heads'),
    'byte_e002_lamb1e2': (BYTE_E002 + ['--lr=1e-2'],
                          'per-byte masking, embedding 0.02, LAMB 1e-2'),
    'byte_e002_adamw3e3': (BYTE_E002 + ['--optimizer=adamw', '--lr=3e-3'],
                           'per-byte masking, embedding 0.02, AdamW 3e-3'),
    'byte_e002_seq32': (BYTE_E002 + ['--seq_len=32'],
                        'per-byte masking, embedding 0.02, T = 32 bytes '
                        '(1 byte per latent)'),
    'byte_e002_pos1_seq32': (BYTE_E002 + ['--input_pos_scale=1.0',
                              '--query_pos_scale=1.0', '--seq_len=32'],
                             'per-byte masking, embedding 0.02, positions '
                             'and queries at 1.0, T = 32 bytes'),
    'byte_e002_lamb1e2_seq32': (BYTE_E002 + ['--lr=1e-2', '--seq_len=32'],
                                'per-byte masking, embedding 0.02, LAMB '
                                '1e-2, T = 32 bytes'),
    'bert_byte_e002_seq32': (['--arch=bert', '--masking=byte',
                              '--embed_scale=0.02', '--seq_len=32'],
                             'BERT, per-byte masking, embedding 0.02, '
                             'T = 32 bytes'),
    'latents128': (['--latents=128'], '128 latents'),
    'seq512': (['--seq_len=512'], 'T = 512 bytes'),
    'adamw': (['--optimizer=adamw', '--lr=1e-3'], 'AdamW 1e-3'),
    'warmup0': (['--warmup=0'], 'no warmup'),
}


def _records(path):
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _done(records, name, seed, steps):
  return any(r['name'] == name and r['args']['seed'] == seed and
             r['args']['steps'] == steps for r in records)


def run(arms, seeds, steps, jobs, out, workdir, extra):
  todo = [(a, s) for a in arms for s in seeds
          if not _done(_records(out), a, s, steps)]
  env = dict(os.environ, XLA_FLAGS='--xla_cpu_multi_thread_eigen=false '
             'intra_op_parallelism_threads=1', TF_NUM_INTRAOP_THREADS='1',
             TF_NUM_INTEROP_THREADS='1')
  running = []
  while todo or running:
    while todo and len(running) < jobs:
      arm, seed = todo.pop(0)
      cmd = [sys.executable, os.path.join(HERE, 'mlm_plateau.py'),
             f'--name={arm}', f'--seed={seed}', f'--steps={steps}',
             f'--out={out}', f'--workdir={workdir}'] + ARMS[arm][0] + extra
      log = open(os.path.join(workdir, f'{arm}_s{seed}_{steps}.log'), 'w')
      print('$', ' '.join(cmd[1:]), flush=True)
      running.append((subprocess.Popen(cmd, stdout=log, stderr=log, env=env),
                      log))
    time.sleep(5)
    for proc, log in list(running):
      if proc.poll() is not None:
        log.close()
        running.remove((proc, log))
        if proc.returncode:
          print(f'FAILED ({proc.returncode}): {log.name}', flush=True)


def _mean_se(values):
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
  return values.mean(), se


def curves(records, arms, steps):
  """{arm: (steps [P], val acc [S, P], val nll [S, P], record list)}."""
  out = {}
  for arm in arms:
    runs = [r for r in records if r['name'] == arm and
            r['args']['steps'] == steps]
    if not runs:
      continue
    x = [p['step'] for p in runs[0]['curve']]
    acc = np.array([[p['val_acc'] for p in r['curve']] for r in runs])
    nll = np.array([[p['val_nll'] for p in r['curve']] for r in runs])
    out[arm] = (x, acc, nll, runs)
  return out


def table(data):
  print(f'| arm | seeds | masked-byte acc. | masked-byte NLL | NLL - unigram '
        f'| steps/s (load) |')
  print('|---|---|---|---|---|---|')
  for arm, (x, acc, nll, runs) in data.items():
    a, ase = _mean_se(acc[:, -1])
    n, nse = _mean_se(nll[:, -1])
    uni = runs[0]['unigram_nll']
    rate = np.mean([r['steps_per_s'] for r in runs])
    load = np.mean([r['mean_load'] for r in runs])
    print(f'| {arm} | {len(runs)} | {100 * a:.2f} +- {100 * ase:.2f}% | '
          f'{n:.3f} +- {nse:.3f} | {n - uni:+.3f} | {rate:.2f} ({load:.0f}) |')
  seen = {}
  for _, _, _, runs in data.values():
    seen.setdefault(runs[0]['args']['masking'], runs[0])
  for masking, r in seen.items():
    print(f'{masking} masking: unigram masked-byte acc '
          f'{100 * r["unigram_acc"]:.2f}%, NLL {r["unigram_nll"]:.3f}; '
          f'context count model {100 * r["context_acc"]:.2f}%, NLL '
          f'{r["context_nll"]:.3f}')


def plot(data, png, title):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 6.5))
  colours = plt.cm.tab20(np.linspace(0, 1, 20))
  if len(data) <= 10:  # the dark shade of each pair only
    colours = colours[::2]
  for i, (arm, (x, acc, nll, runs)) in enumerate(data.items()):
    label = f'{arm} ({len(runs)} seed{"s" if len(runs) > 1 else ""})'
    style = '--' if runs[0]['args']['arch'] == 'bert' else '-'
    for ax, y in ((ax1, 100 * acc), (ax2, nll - runs[0]['unigram_nll'])):
      mean = y.mean(0)
      line, = ax.plot(x, mean, style, marker='o', ms=3, label=label,
                      color=colours[i % len(colours)])
      if len(runs) > 1:
        se = y.std(0, ddof=1) / np.sqrt(len(runs))
        ax.fill_between(x, mean - se, mean + se, alpha=0.2,
                        color=line.get_color())
  runs = next(iter(data.values()))[3]
  ax1.axhline(100 * runs[0]['unigram_acc'], color='k', ls='--', lw=1,
              label='unigram')
  ax1.axhline(30, color='grey', ls=':', lw=1,
              label='bar: 30% (left), -0.5 nats (right)')
  ax2.axhline(0, color='k', ls='--', lw=1)  # the legend is ax1's
  ax2.axhline(-0.5, color='grey', ls=':', lw=1)
  ax1.set(xlabel='step (batch 32)',
          ylabel='validation masked-byte accuracy (%)', title=title)
  ax2.set(xlabel='step (batch 32)',
          ylabel='validation masked-byte NLL - unigram NLL (nats)')
  ax2.set_ylim(top=0.5)
  for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
  # One legend under both panels (BERT arms dashed).
  handles, labels = ax1.get_legend_handles_labels()
  fig.legend(handles, labels, loc='lower center', ncol=5, fontsize=8)
  fig.tight_layout(rect=(0, 0.16, 1, 1))
  fig.savefig(png, dpi=110)
  print(f'wrote {png}')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--arms', default='release,bert',
                 help=f'comma-separated names of {list(ARMS)}, or "all"')
  p.add_argument('--seeds', default='0')
  p.add_argument('--steps', type=int, default=2000)
  p.add_argument('--jobs', type=int, default=1, help='processes at a time')
  p.add_argument('--out', default='/tmp/mlm_ablations.jsonl')
  p.add_argument('--workdir', default='/tmp/mlm_plateau')
  p.add_argument('--run', default='true', choices=('true', 'false'))
  p.add_argument('--png', default='')
  p.add_argument('--title', default='Small bytes MLM, KJV + Shakespeare')
  p.add_argument('extra', nargs='*', help='more mlm_plateau.py flags (--)')
  args = p.parse_args()
  arms = list(ARMS) if args.arms == 'all' else args.arms.split(',')
  unknown = set(arms) - set(ARMS)
  if unknown:
    p.error(f'unknown arms {sorted(unknown)}; known: {list(ARMS)}')
  seeds = [int(s) for s in args.seeds.split(',')]
  os.makedirs(args.workdir, exist_ok=True)
  if args.run == 'true':
    run(arms, seeds, args.steps, args.jobs, args.out, args.workdir,
        args.extra)
  data = curves(_records(args.out), arms, args.steps)
  table(data)
  if args.png and data:
    plot(data, args.png, args.title)


if __name__ == '__main__':
  main()
