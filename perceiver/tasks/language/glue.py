"""GLUE fine-tuning: model, loss and metrics ([P] §4.1, App. F.4, Table 14).

Shapes: B batch (per device inside the step), T sequence length, L labels
of a task (1 for the STS-B regression), G eval groups (tasks + 1), C = 3
(the most classes of any task).

Models (perceiver.tasks.language.models): one task, `glue_classifier` (one learned
decoder query, 2-layer tanh MLP head); several tasks
(`config.input.glue_tasks`), `glue_multitask` with `config.model.multitask`
in ('query', 'shared_token', 'task_tokens'), one output per task. The
embedded Rotten Tomatoes task is task 'sst2' read from
`config.input.name = 'rotten_tomatoes_snippets'`.

Losses ([P] silent on all of these; each is a choice made here):
  * classification: softmax cross-entropy;
  * STS-B: the head's scalar output regresses the 0-5 similarity with the
    squared error (no scaling);
  * multitask: every example trains only its own task's head; the batch
    loss is the mean over the examples of the mix that
    `config.input.multitask_sampling` draws ([P] silent).

Metrics ([P] App. F.4, Table 14): MCC for CoLA, Pearson for STS-B,
accuracy otherwise (F1 reported too for MRPC/QQP); MNLI matched and
mismatched are separate groups and their mean is MNLI's score. Eval sums are
confusion matrices and regression moments, so they add over devices and
batches exactly; `finalize_eval` gives the same numbers as
`perceiver.tasks.language.metrics.glue_metrics` on the concatenated predictions
(tested). 'score' is the task's score (single task) or the mean over tasks
(multitask; the paper's GLUE average when all 8 are present).
"""
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from perceiver.tasks.language import glue_data as glue_lib
from perceiver.tasks.language import metrics as metrics_lib
from perceiver.tasks.language import models
from perceiver.tasks.language import data
from perceiver.tasks.language import mlm
# GLUE fine-tunes the MLM's trunk: the same options, input keys, data
# preparation and init batch.
from perceiver.tasks.language.mlm import default_input_config  # pylint: disable=unused-import
from perceiver.tasks.language.mlm import default_task_config  # pylint: disable=unused-import
from perceiver.tasks.language.mlm import example_batch  # pylint: disable=unused-import
from perceiver.tasks.language.mlm import prepare_data  # pylint: disable=unused-import

C = 3  # the most classes of any GLUE task (MNLI)
MISMATCHED = 'mnli_mismatched'


def train_iterator(config, **kwargs):
  """This process's batches {inputs, input_mask [B_p, T], label, task_id}."""
  return data.glue_train_iterator(config.input, **kwargs)


def _tasks(config) -> tuple[str, ...]:
  tasks = tuple(config.input.glue_tasks)
  for t in tasks:
    glue_lib.get_task(t)  # raises for unknown names (and WNLI)
  if not tasks:
    raise ValueError('config.input.glue_tasks is empty.')
  return tasks


def _multitask(config) -> str:
  variant = config.model.get('multitask', '')
  if len(_tasks(config)) > 1 and not variant:
    return 'query'
  return variant


def make_model(config: ml_collections.ConfigDict) -> hk.TransformedWithState:
  """forward(batch, *, is_training) -> logits [B, L] ([B] for STS-B), or
  {task: logits} for multitask, of batch['inputs'] [B, T] and
  batch['input_mask'] [B, T]."""
  kwargs = mlm.trunk_kwargs(config)
  tasks = _tasks(config)
  variant = _multitask(config)
  if variant:
    num_labels = {t: glue_lib.TASKS[t].num_classes for t in tasks}
    classifier = models.glue_multitask(kwargs, num_labels, variant)
  else:
    classifier = models.glue_classifier(
        kwargs, glue_lib.TASKS[tasks[0]].num_classes)

  def forward(batch, *, is_training):
    return classifier(batch['inputs'], batch['input_mask'],
                      is_training=is_training)

  return hk.transform_with_state(forward)


def _per_task(outputs, config) -> dict[str, jax.Array]:
  if isinstance(outputs, dict):
    return outputs
  return {_tasks(config)[0]: outputs}


def _own(batch, task: str) -> jax.Array:  # [B] 1.0 where the example is task's
  return (batch['task_id'] == glue_lib.TASK_NAMES.index(task)).astype(
      jnp.float32)


def _example_losses(outputs, batch, config):
  """Per-example loss, correct (classification) and is-classification [B]."""
  losses = correct = is_class = 0.0
  for task, out in _per_task(outputs, config).items():
    own = _own(batch, task)
    out = out.astype(jnp.float32)
    if glue_lib.TASKS[task].is_regression:
      label = batch['label'].astype(jnp.float32)
      losses += own * jnp.square(out - label)
    else:
      label = batch['label'].astype(jnp.int32)
      losses += own * optax.softmax_cross_entropy_with_integer_labels(
          out, jnp.clip(label, 0, out.shape[-1] - 1))
      correct += own * (jnp.argmax(out, -1) == label)
      is_class += own
  return losses, correct, is_class


def loss_and_metrics(outputs, batch: dict[str, jax.Array],
                     config: ml_collections.ConfigDict
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  losses, correct, is_class = _example_losses(outputs, batch, config)
  loss = jnp.mean(losses)
  metrics = {'loss': loss}
  if not isinstance(is_class, float):
    metrics['accuracy'] = (jnp.sum(correct) /
                           jnp.maximum(jnp.sum(is_class), 1.0))
  return loss, metrics


def eval_groups(config) -> list[str]:
  """Names of the G eval groups: the tasks, then MNLI mismatched."""
  return list(_tasks(config)) + [MISMATCHED]


def _group(batch, config) -> jax.Array:  # [B] group index
  del config
  if 'group' in batch:
    return batch['group']
  return jnp.zeros_like(batch['task_id'])


def eval_sums(outputs, batch: dict[str, jax.Array],
              config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Per group: confusion [G, C, C] (label, prediction), regression moments
  [G, 5] (sum p, y, p^2, y^2, p*y), loss and count [G]."""
  groups = len(eval_groups(config))
  mask = batch['mask'].astype(jnp.float32)
  in_group = jax.nn.one_hot(_group(batch, config), groups) * mask[:, None]
  losses, _, _ = _example_losses(outputs, batch, config)
  confusion = jnp.zeros((groups, C, C), jnp.float32)
  moments = jnp.zeros((groups, 5), jnp.float32)
  for task, out in _per_task(outputs, config).items():
    w = in_group * _own(batch, task)[:, None]  # [B, G]
    out = out.astype(jnp.float32)
    if glue_lib.TASKS[task].is_regression:
      p, y = out, batch['label'].astype(jnp.float32)
      stats = jnp.stack([p, y, p * p, y * y, p * y], -1)  # [B, 5]
      moments += jnp.einsum('bg,bk->gk', w, stats)
    else:
      label = jax.nn.one_hot(batch['label'].astype(jnp.int32), C)  # [B, C]
      pred = jax.nn.one_hot(jnp.argmax(out, -1), C)
      confusion += jnp.einsum('bg,bi,bj->gij', w, label, pred)
  return {'confusion': confusion, 'moments': moments,
          'loss_sum': jnp.einsum('bg,b->g', in_group, losses),
          'count': jnp.sum(in_group, 0)}


def _pearson(m: np.ndarray, n: float) -> float:
  sp, sy, spp, syy, spy = m
  cov = spy - sp * sy / n
  var = (spp - sp * sp / n) * (syy - sy * sy / n)
  return float(cov / np.sqrt(var)) if var > 0 else 0.0


def _mcc(cm: np.ndarray) -> float:
  """Matthews correlation (Gorodkin's multi-class form) of a confusion."""
  t, p = cm.sum(1), cm.sum(0)
  s, c = cm.sum(), np.trace(cm)
  den = np.sqrt((s * s - p @ p) * (s * s - t @ t))
  return float((c * s - t @ p) / den) if den > 0 else 0.0


def _task_metrics(task: str, cm: np.ndarray, m: np.ndarray, n: float
                  ) -> dict[str, float]:
  base = 'mnli' if task == MISMATCHED else task
  if glue_lib.TASKS[base].is_regression:
    return {'pearson': _pearson(m, n), 'score': _pearson(m, n)}
  out = {'accuracy': float(np.trace(cm) / max(cm.sum(), 1.0))}
  if base == 'cola':
    out['mcc'] = _mcc(cm)
  if base in ('mrpc', 'qqp'):
    tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
    out['f1'] = float(2 * tp / max(2 * tp + fp + fn, 1.0))
  out['score'] = out['mcc'] if base == 'cola' else out['accuracy']
  return out


def finalize_eval(sums: dict[str, Any], config: ml_collections.ConfigDict
                  ) -> dict[str, float]:
  names = eval_groups(config)
  confusion = np.asarray(sums['confusion'], np.float64)
  moments = np.asarray(sums['moments'], np.float64)
  count = np.asarray(sums['count'], np.float64)
  out, scores = {}, {}
  for g, name in enumerate(names):
    if count[g] == 0:
      continue
    result = _task_metrics(name, confusion[g], moments[g], count[g])
    result['loss'] = float(sums['loss_sum'][g] / count[g])
    scores[name] = result['score']
    out.update({f'{name}/{k}': v for k, v in result.items()})
  if 'mnli' in scores and MISMATCHED in scores:  # [P]: one MNLI task
    scores['mnli'] = (scores['mnli'] + scores.pop(MISMATCHED)) / 2
  elif MISMATCHED in scores and 'mnli' not in scores:
    scores['mnli'] = scores.pop(MISMATCHED)
  total = max(count.sum(), 1.0)
  out['loss'] = float(np.sum(sums['loss_sum']) / total)
  out['num_examples'] = float(count.sum())
  if len(scores) == 1:  # single task: its metrics at the top level too
    out.update({k.split('/', 1)[1]: v for k, v in out.items() if '/' in k})
  if set(scores) == set(glue_lib.TASK_NAMES):
    out['score'] = metrics_lib.glue_average(scores)
  else:
    out['score'] = float(np.mean(list(scores.values()))) if scores else 0.0
  return out


def eval_iterator(config, split: str, *, data_dir, process_index: int,
                  process_count: int):
  """Each task's `split` ('validation': every dev split, MNLI's both), with
  the group index of `eval_groups`."""
  groups = eval_groups(config)
  pairs = data.glue_eval_splits(config.input, split)
  index = [groups.index(MISMATCHED if s == 'validation_mismatched' else t)
           for t, s in pairs]
  return data.glue_eval_iterator(config.input, split, groups=index,
                                 data_dir=data_dir,
                                 process_index=process_index,
                                 process_count=process_count)
