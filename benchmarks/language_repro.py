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

  .venv/bin/python benchmarks/language_repro.py --workdir=/tmp/lang_repro

Results and the exact settings: benchmarks/LANGUAGE.md.
"""
import argparse
import importlib.util
import json
import os
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from perceiver.train import trainer  # pylint: disable=wrong-import-position


def _experiment(name, arg):
  path = os.path.join(REPO, 'experiments', f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'exp_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _set(config, overrides):
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split('.')
    for p in parents:
      target = target[p]
    target[leaf] = value


def _command(name, arg, workdir, overrides):
  flags = ' '.join(f'--config.{k}={v}' for k, v in overrides.items())
  variant = f':{arg}' if arg else ''
  return (f'python launch/train.py --config=experiments/{name}.py{variant} '
          f'--workdir={workdir} {flags}')


def _run(name, arg, workdir, overrides, log):
  config = _experiment(name, arg)
  _set(config, overrides)
  command = _command(name, arg, workdir, overrides)
  log(f'$ {command}')
  start = time.time()
  final = trainer.train_and_evaluate(config, workdir)
  seconds = time.time() - start
  log(f'  -> {seconds:.0f} s: ' + ', '.join(
      f'{k} {v:.4f}' for k, v in sorted(final.items())))
  return final, seconds, command


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', default='/tmp/lang_repro')
  parser.add_argument('--pretrain_steps', type=int, default=2000)
  parser.add_argument('--pretrain_batch', type=int, default=32)
  parser.add_argument('--pretrain_lr', type=float, default=2e-3)
  parser.add_argument('--finetune_steps', type=int, default=800)
  parser.add_argument('--finetune_batch', type=int, default=32)
  parser.add_argument('--finetune_lr', type=float, default=1e-3)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--fresh', action='store_true',
                      help='delete the workdirs first (else stages resume)')
  args = parser.parse_args()

  data_dir = os.path.join(args.workdir, 'tensorflow_datasets')
  lines = []

  def log(line):
    print(line, flush=True)
    lines.append(line)

  pre_dir = os.path.join(args.workdir, 'mlm_small')
  ft_dir = os.path.join(args.workdir, 'sentiment_pretrained')
  scratch_dir = os.path.join(args.workdir, 'sentiment_scratch')
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
      'seed': args.seed,
      'log_every': 100,
      'eval_every': args.pretrain_steps,
      'checkpoint_every': args.pretrain_steps,
  }
  pre_final, pre_s, pre_cmd = _run('mlm_bytes', 'embedded,small', pre_dir,
                                   pre, log)

  fine = {
      'input.data_dir': data_dir,
      'input.global_batch_size': args.finetune_batch,
      'num_train_steps': args.finetune_steps,
      'schedule.base_lr': args.finetune_lr,
      'schedule.warmup_steps': args.finetune_steps // 10,
      'seed': args.seed,
      'log_every': 100,
  }
  ft_final, ft_s, ft_cmd = _run(
      'sentiment', f'init={pre_dir}/checkpoints', ft_dir, fine, log)
  sc_final, sc_s, sc_cmd = _run('sentiment', '', scratch_dir, fine, log)

  result = {
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
  with open(os.path.join(args.workdir, 'results.json'), 'w') as f:
    json.dump(result, f, indent=2)
  log(json.dumps(result, indent=2))


if __name__ == '__main__':
  main()
