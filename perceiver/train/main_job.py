"""`make main`: train, test, export the MNIST experiment in one call.

Steps (each skipped part is logged):
  1. train experiments/mnist.py in <workdir> (resumes if interrupted);
  2. evaluate the best checkpoint (by validation accuracy) on the test split;
  3. export it to <workdir>/mnist_params.pystate in the release format and
     read the file back with perceiver.checkpoint_io.load_params;
  4. write <workdir>/summary.json (accuracy, wall times) and print it.
"""
import json
import os
import time

from perceiver import checkpoint_io
from perceiver.train import config_lib
from perceiver.train import trainer


def run(config_path: str, workdir: str, *, variant: str = '',
        progress: bool = False) -> dict:
  start = time.time()
  os.makedirs(workdir, exist_ok=True)
  config = config_lib.load_experiment(config_path, variant)
  final = trainer.train_and_evaluate(config, workdir, progress=progress)
  train_seconds = time.time() - start
  test = trainer.evaluate(config, workdir, step='best', split='test')
  # .pystate: the conv input has BatchNorm state ({'params', 'state'}).
  output = os.path.join(workdir, 'mnist_params.pystate')
  trainer.export(config, workdir, output, step='best')
  params, _ = checkpoint_io.load_params(output)
  summary = {
      'best_step': test['step'],
      'test_accuracy_best': test['accuracy'],
      'test_accuracy_last': final.get('test/accuracy'),
      'validation_accuracy_last': final.get('eval/accuracy'),
      'train_seconds': round(train_seconds, 1),
      'total_seconds': round(time.time() - start, 1),
      'exported': output,
      'exported_modules': len(params),
  }
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  print(json.dumps(summary, indent=2))
  return summary
