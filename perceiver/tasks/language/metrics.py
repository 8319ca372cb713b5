"""GLUE metrics in numpy ([P] §4.1, App F.4, Table 14).

[P] App. F.4, Table 14: MCC for CoLA, Pearson for STS-B, accuracy otherwise; WNLI
excluded; MNLI matched/mismatched averaged into one task for the average.
The GLUE benchmark also reports F1 for MRPC/QQP and Spearman for STS-B;
`glue_metrics` returns those too, but the task `score` (used by
`glue_average`) is the paper's metric. Check: Table 14's "PIO bytes" row
averages to 80.95 under this rule (tested).

Shape glossary: N number of evaluated examples, C number of classes.

Conventions (the paper is silent):
* Degenerate inputs follow scikit-learn: MCC is 0 when a marginal is empty,
  F1 is 0 when there are no positive predictions and labels; Pearson and
  Spearman raise on constant input (undefined), naming the argument.
* Spearman ranks ties by their average rank (as scipy.stats.spearmanr).
* Values are fractions in [0, 1] (or [-1, 1]); multiply by 100 for tables.
"""
from typing import Dict, Mapping

import numpy as np

_TASKS = ('cola', 'sst2', 'mrpc', 'stsb', 'qqp', 'mnli', 'qnli', 'rte')


def _pair(predictions, labels, fn: str):
  p = np.asarray(predictions)
  y = np.asarray(labels)
  if p.ndim != 1 or y.ndim != 1 or p.shape != y.shape:
    raise ValueError(
        f'{fn}: `predictions` and `labels` must be 1-D of equal length, got '
        f'{p.shape} and {y.shape}; take argmax of logits first.')
  if p.size == 0:
    raise ValueError(f'{fn}: got no examples.')
  return p, y


def _confusion(predictions, labels, fn):
  p, y = _pair(predictions, labels, fn)
  for name, v in (('predictions', p), ('labels', y)):
    if not np.isin(v, (0, 1)).all():
      raise ValueError(f'{fn}: `{name}` must be binary 0/1, got values '
                       f'{np.unique(v)[:10]}.')
  p, y = p.astype(bool), y.astype(bool)
  tp = float(np.sum(p & y))
  tn = float(np.sum(~p & ~y))
  fp = float(np.sum(p & ~y))
  fn_ = float(np.sum(~p & y))
  return tp, tn, fp, fn_


def accuracy(predictions, labels) -> float:
  """Fraction of predictions [N] equal to labels [N]."""
  p, y = _pair(predictions, labels, 'accuracy')
  return float(np.mean(p == y))


def f1(predictions, labels) -> float:
  """Binary F1 of the positive class 1: 2TP / (2TP + FP + FN)."""
  tp, _, fp, fn = _confusion(predictions, labels, 'f1')
  denominator = 2 * tp + fp + fn
  return 0.0 if denominator == 0 else 2 * tp / denominator


def matthews_corrcoef(predictions, labels) -> float:
  """Binary MCC: (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))."""
  tp, tn, fp, fn = _confusion(predictions, labels, 'matthews_corrcoef')
  denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  return 0.0 if denominator == 0 else float((tp * tn - fp * fn) / denominator)


def pearson(predictions, labels) -> float:
  """Pearson correlation of two real vectors [N]."""
  p, y = _pair(predictions, labels, 'pearson')
  p = p.astype(np.float64) - np.mean(p)
  y = y.astype(np.float64) - np.mean(y)
  for name, v in (('predictions', p), ('labels', y)):
    if not np.any(v):
      raise ValueError(f'pearson: `{name}` is constant; the correlation is '
                       'undefined.')
  return float(np.sum(p * y) / np.sqrt(np.sum(p * p) * np.sum(y * y)))


def rankdata(x) -> np.ndarray:
  """1-based ranks of x [N]; ties get their average rank."""
  x = np.asarray(x)
  order = np.argsort(x, kind='stable')
  sorted_x = x[order]
  # Start index of each run of equal values.
  starts = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
  run_id = np.cumsum(starts) - 1
  run_start = np.flatnonzero(starts)
  run_end = np.concatenate([run_start[1:], [len(x)]])  # exclusive
  average = (run_start + run_end - 1) / 2.0 + 1.0  # mean of 1-based ranks
  ranks = np.empty(len(x), np.float64)
  ranks[order] = average[run_id]
  return ranks


def spearman(predictions, labels) -> float:
  """Spearman correlation: Pearson of the tie-averaged ranks."""
  p, y = _pair(predictions, labels, 'spearman')
  return pearson(rankdata(p), rankdata(y))


def _class_predictions(predictions, fn):
  p = np.asarray(predictions)
  if p.ndim == 2:
    return np.argmax(p, axis=-1)
  if p.ndim == 1:
    return p
  raise ValueError(f'{fn}: `predictions` must be class ids [N] or logits '
                   f'[N, C], got shape {p.shape}.')


def glue_metrics(task: str, predictions, labels) -> Dict[str, float]:
  """All metrics of one GLUE task; 'score' is the paper's metric.

  Args:
    task: 'cola', 'sst2', 'mrpc', 'stsb', 'qqp', 'mnli', 'qnli' or 'rte'
      (also 'mnli_matched' / 'mnli_mismatched').
    predictions: class ids [N] or logits [N, C]; for 'stsb' scores [N] or
      [N, 1].
    labels: [N] class ids (float similarity for 'stsb').
  """
  base = 'mnli' if task in ('mnli_matched', 'mnli_mismatched') else task
  if base not in _TASKS:
    raise ValueError(f'glue_metrics: `task` must be one of {list(_TASKS)} or '
                     f'mnli_matched/mnli_mismatched, got {task!r}.')
  if base == 'stsb':
    p = np.asarray(predictions, np.float64)
    p = p[:, 0] if p.ndim == 2 and p.shape[1] == 1 else p
    out = {'pearson': pearson(p, labels), 'spearman': spearman(p, labels)}
    out['score'] = out['pearson']
    return out
  p = _class_predictions(predictions, 'glue_metrics')
  out = {'accuracy': accuracy(p, labels)}
  if base == 'cola':
    out['mcc'] = matthews_corrcoef(p, labels)
    out['score'] = out['mcc']
  else:
    if base in ('mrpc', 'qqp'):
      out['f1'] = f1(p, labels)
    out['score'] = out['accuracy']
  return out


def glue_average(scores: Mapping[str, float]) -> float:
  """The paper's GLUE average over 8 tasks (Table 14 "Avg").

  Args:
    scores: task -> score (`glue_metrics(...)['score']`). MNLI is given
      either as 'mnli' or as both 'mnli_matched' and 'mnli_mismatched' (then
      averaged into one task). 'wnli' is ignored (excluded by the paper).
  """
  scores = {k: float(v) for k, v in scores.items() if k != 'wnli'}
  has_m = 'mnli_matched' in scores or 'mnli_mismatched' in scores
  if has_m:
    if 'mnli' in scores:
      raise ValueError("glue_average: give either 'mnli' or "
                       "'mnli_matched'+'mnli_mismatched', not both.")
    if not ('mnli_matched' in scores and 'mnli_mismatched' in scores):
      raise ValueError("glue_average: need both 'mnli_matched' and "
                       "'mnli_mismatched' to average MNLI.")
    scores['mnli'] = (scores.pop('mnli_matched') +
                      scores.pop('mnli_mismatched')) / 2
  missing = [t for t in _TASKS if t not in scores]
  unknown = [t for t in scores if t not in _TASKS]
  if missing or unknown:
    raise ValueError(f'glue_average: `scores` must hold exactly {list(_TASKS)}'
                     f' (missing {missing}, unknown {unknown}).')
  return float(np.mean([scores[t] for t in _TASKS]))
