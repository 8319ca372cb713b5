r"""A small reproduction of [P] §4.1 on real data: does MLM pretraining help?

Not a test: a CPU-sized version of the paper's recipe on the embedded
corpora (no network):
  1. pretrain a small bytes MLM (recipes.SMALL: T = 128 bytes, E = 128,
     N x D = 32 x 160, 4 layers) on KJV + Shakespeare prose
     (experiments/mlm_bytes.py:embedded with the small model), and report
     the masked-byte accuracy on the validation split (books/plays held
     out);
  2. fine-tune it on the embedded Rotten Tomatoes sentiment task
     (experiments/sentiment.py:init=<pretrain workdir>/checkpoints);
  3. fine-tune the same model from scratch (same steps, seed, lr, data),
and report validation/test accuracy of both and the wall time of each stage.
Everything runs through perceiver.train.trainer.train_and_evaluate, the one
training loop; each stage is the launch/train.py command this prints.

  .venv/bin/python benchmarks/repro/language_repro.py --workdir=/tmp/lang_repro
  .venv/bin/python benchmarks/repro/language_repro.py --workdir=/tmp/lang3 \
      --seeds=0,1,2 --pretrain_config=input.mask_unit=token

With several seeds, each runs in <workdir>/seed<k> and a mean +- standard
error table closes the output. `--pretrain_config KEY=VALUE` changes the
MLM only (its data or optimiser); `--model_config KEY=VALUE` changes the
model of all three runs, so that the checkpoint still fits the classifier;
`--model_variants=embed_init=0.02,local=2` adds experiments/mlm_bytes.py's
model variants to all three (fields that the release's config does not
have, such as the locality prior, can only be set this way).
The printed launch/train.py commands spell overrides as --config.KEY=VALUE,
which launch/train.py accepts only for keys the config already has (for
the MLM's model fields, use experiments/mlm_bytes.py's variants instead).
Results and the exact settings: benchmarks/repro/LANGUAGE.md.
"""
import argparse
import functools
import json
import os
import shutil
import sys
import time

import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from perceiver.train import config_lib  # pylint: disable=wrong-import-position
from perceiver.train import trainer  # pylint: disable=wrong-import-position


def _experiment(name, arg):
  return config_lib.load_experiment(
      os.path.join(_REPO, 'experiments', f'{name}.py'), arg)


def set_overrides(config, overrides):
  """Sets dotted keys, making missing parents (e.g. model.decoder_kwargs)."""
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split('.')
    for p in parents:
      if p not in target:
        target[p] = {}
      target = target[p]
    target[leaf] = value


def _command(name, arg, workdir, overrides):
  flags = ' '.join(f'--config.{k}={v}' for k, v in overrides.items())
  variant = f':{arg}' if arg else ''
  return (f'python launch/train.py --config=experiments/{name}.py{variant} '
          f'--workdir={workdir} {flags}')


def _run(name, arg, workdir, overrides, log):
  config = _experiment(name, arg)
  set_overrides(config, overrides)
  command = _command(name, arg, workdir, overrides)
  log(f'$ {command}')
  start = time.time()
  final = trainer.train_and_evaluate(config, workdir)
  seconds = time.time() - start
  log(f'  -> {seconds:.0f} s: ' + ', '.join(
      f'{k} {v:.4f}' for k, v in sorted(final.items())))
  return final, seconds, command


def parse_overrides(items):
  """['a.b=1', 'c=x', 'd=true'] -> {'a.b': 1, 'c': 'x', 'd': True} (numbers
  and booleans parsed)."""
  out = {}
  for item in items:
    key, eq, value = item.partition('=')
    if not eq:
      raise SystemExit(f'Config override "{item}" is not KEY=VALUE (for '
                       'example input.mask_unit=token)')
    if value.lower() in ('true', 'false'):
      out[key] = value.lower() == 'true'
      continue
    for cast in (int, float):
      try:
        value = cast(value)
        break
      except ValueError:
        pass
    out[key] = value
  return out


def _mean_se(values):
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
  return values.mean(), se


def one_seed(args, seed, workdir, pre_extra, model_extra, log):
  """Pretrain, fine-tune from it, fine-tune from scratch; one seed."""
  data_dir = os.path.join(args.data_root or workdir, 'tensorflow_datasets')
  pre_dir = os.path.join(workdir, 'mlm_small')
  ft_dir = os.path.join(workdir, 'sentiment_pretrained')
  scratch_dir = os.path.join(workdir, 'sentiment_scratch')
  if args.fresh:
    for d in (pre_dir, ft_dir, scratch_dir):
      shutil.rmtree(d, ignore_errors=True)

  # Pretraining: the small model, 1 document per example (a 128-byte
  # random crop of a KJV chapter or a Shakespeare passage), p = 0.15.
  # DEVIATION from [P] Table 12 (CPU budget): batch 32 for a few thousand
  # steps, no accumulation, warmup 10% of the steps.
  pre = {
      'input.data_dir': data_dir,
      'input.docs_per_example': 1,
      'input.global_batch_size': args.pretrain_batch,
      'input.eval_batch_size': 64,
      'input.eval_epochs': 4,
      'optimizer.grad_accum_steps': 1,
      'num_train_steps': args.pretrain_steps,
      'schedule.base_lr': args.pretrain_lr,
      'schedule.warmup_steps': args.pretrain_steps // 10,
      'seed': seed,
      'log_every': 100,
      'eval_every': args.pretrain_steps,
      'checkpoint_every': args.pretrain_steps,
      **pre_extra, **model_extra,
  }
  variants = lambda *parts: ','.join(p for p in parts if p)
  pre_final, pre_s, pre_cmd = _run(
      'mlm_bytes', variants('embedded,small', args.model_variants), pre_dir,
      pre, log)

  # The classifier is built from the same model fields as the MLM, so the
  # checkpoint's encoder loads (init_from checks the shapes).
  fine = {
      'input.data_dir': data_dir,
      'input.global_batch_size': args.finetune_batch,
      'num_train_steps': args.finetune_steps,
      'schedule.base_lr': args.finetune_lr,
      'schedule.warmup_steps': args.finetune_steps // 10,
      'seed': seed,
      'log_every': 100,
      **model_extra,
  }
  ft_final, ft_s, ft_cmd = _run(
      'sentiment', variants(f'init={pre_dir}/checkpoints',
                            args.model_variants), ft_dir, fine, log)
  sc_final, sc_s, sc_cmd = _run('sentiment', args.model_variants,
                                scratch_dir, fine, log)
  return {
      'seed': seed,
      'pretrain': {'command': pre_cmd, 'seconds': pre_s,
                   'masked_byte_accuracy': pre_final.get('eval/accuracy'),
                   'masked_byte_loss': pre_final.get('eval/loss')},
      'finetune_pretrained': {
          'command': ft_cmd, 'seconds': ft_s,
          'validation_accuracy': ft_final['eval/accuracy'],
          'test_accuracy': ft_final['test/accuracy']},
      'finetune_scratch': {
          'command': sc_cmd, 'seconds': sc_s,
          'validation_accuracy': sc_final['eval/accuracy'],
          'test_accuracy': sc_final['test/accuracy']},
      'total_seconds': pre_s + ft_s + sc_s,
  }


def table(results, log):
  """Mean +- standard error over seeds (markdown)."""
  log(f'| arm | seeds | validation acc. | test acc. |')
  log('|---|---|---|---|')
  for arm in ('finetune_pretrained', 'finetune_scratch'):
    val = _mean_se([r[arm]['validation_accuracy'] for r in results])
    test = _mean_se([r[arm]['test_accuracy'] for r in results])
    log(f'| {arm} | {len(results)} | {100 * val[0]:.2f} +- '
        f'{100 * val[1]:.2f}% | {100 * test[0]:.2f} +- {100 * test[1]:.2f}% |')
  acc = _mean_se([r['pretrain']['masked_byte_accuracy'] for r in results])
  nll = _mean_se([r['pretrain']['masked_byte_loss'] for r in results])
  log(f'pretraining: masked-byte accuracy {100 * acc[0]:.2f} +- '
      f'{100 * acc[1]:.2f}%, NLL {nll[0]:.3f} +- {nll[1]:.3f}')
  diff = _mean_se([r['finetune_pretrained']['test_accuracy'] -
                   r['finetune_scratch']['test_accuracy'] for r in results])
  log(f'test accuracy, pretrained - scratch (paired by seed): '
      f'{100 * diff[0]:+.2f} +- {100 * diff[1]:.2f} points')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', default='/tmp/lang_repro')
  parser.add_argument('--pretrain_steps', type=int, default=2000)
  parser.add_argument('--pretrain_batch', type=int, default=32)
  parser.add_argument('--pretrain_lr', type=float, default=2e-3)
  parser.add_argument('--pretrain_config', action='append', default=[],
                      metavar='KEY=VALUE',
                      help='config override of the MLM only (repeatable), '
                      'e.g. input.mask_unit=token')
  parser.add_argument('--model_config', action='append', default=[],
                      metavar='KEY=VALUE',
                      help='config override of the MLM and both fine-tunes '
                      '(repeatable), e.g. model.num_latents=128')
  parser.add_argument('--model_variants', default='',
                      help='experiments/mlm_bytes.py model variants for the '
                      'MLM and both fine-tunes, e.g. embed_init=0.02,local=2')
  parser.add_argument('--finetune_steps', type=int, default=800)
  parser.add_argument('--finetune_batch', type=int, default=32)
  parser.add_argument('--finetune_lr', type=float, default=1e-3)
  parser.add_argument('--seeds', default='0',
                      help='comma-separated; each seed runs all three '
                      'stages in <workdir>/seed<k>')
  parser.add_argument('--data_root', default='',
                      help='where the prepared TFDS data lives (default: '
                      'each seed\'s workdir)')
  parser.add_argument('--fresh', action='store_true',
                      help='delete the workdirs first (else stages resume)')
  args = parser.parse_args()
  pre_extra = parse_overrides(args.pretrain_config)
  model_extra = parse_overrides(args.model_config)
  seeds = [int(s) for s in args.seeds.split(',')]

  log = functools.partial(print, flush=True)
  results = []
  for seed in seeds:
    workdir = (args.workdir if len(seeds) == 1 else
               os.path.join(args.workdir, f'seed{seed}'))
    results.append(one_seed(args, seed, workdir, pre_extra, model_extra, log))
  with open(os.path.join(args.workdir, 'results.json'), 'w') as f:
    json.dump({'args': vars(args), 'runs': results}, f, indent=2)
  log(json.dumps(results, indent=2))
  table(results, log)


if __name__ == '__main__':
  main()
