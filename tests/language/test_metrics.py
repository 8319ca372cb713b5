"""GLUE metrics against values worked out by hand ([P] Table 14)."""
import numpy as np
import pytest

from perceiver.tasks.language import metrics

# pred:  1 1 0 0 1 0 1 0
# label: 1 0 0 0 1 1 1 0   -> TP 3 (0,4,6), FP 1 (1), FN 1 (5), TN 3 (2,3,7)
PRED = [1, 1, 0, 0, 1, 0, 1, 0]
LABEL = [1, 0, 0, 0, 1, 1, 1, 0]


def test_accuracy():
  assert metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
  assert metrics.accuracy(PRED, LABEL) == 6 / 8


def test_f1():
  assert metrics.f1(PRED, LABEL) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
  assert metrics.f1([0, 0], [0, 0]) == 0.0


def test_mcc():
  # (3*3 - 1*1) / sqrt(4 * 4 * 4 * 4) = 8 / 16
  assert metrics.matthews_corrcoef(PRED, LABEL) == pytest.approx(0.5)
  assert metrics.matthews_corrcoef([1, 0, 1], [1, 0, 1]) == pytest.approx(1)
  assert metrics.matthews_corrcoef([0, 1, 0], [1, 0, 1]) == pytest.approx(-1)
  assert metrics.matthews_corrcoef([1, 1, 1], [1, 0, 1]) == 0.0  # degenerate


def test_pearson():
  # x - 2 = (-1, 0, 1); y - 7/3 = (-4/3, -1/3, 5/3); sum xy = 3,
  # sum x^2 = 2, sum y^2 = 42/9.
  assert metrics.pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(
      3 / np.sqrt(2 * 42 / 9))
  with pytest.raises(ValueError, match='predictions.*constant'):
    metrics.pearson([1, 1, 1], [1, 2, 3])


def test_spearman_with_ties():
  assert metrics.rankdata([10, 20, 20, 5]).tolist() == [2, 3.5, 3.5, 1]
  # ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4); centred at 2.5:
  # sum xy = 4.5, sum x^2 = 4.5, sum y^2 = 5.
  assert metrics.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(
      4.5 / np.sqrt(4.5 * 5))
  assert metrics.spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1)


def test_glue_metrics_per_task():
  logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])  # argmax 1, 0, 1
  out = metrics.glue_metrics('mrpc', logits, [1, 1, 1])
  assert out['accuracy'] == pytest.approx(2 / 3)
  assert out['f1'] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
  assert out['score'] == out['accuracy']
  cola = metrics.glue_metrics('cola', PRED, LABEL)
  assert cola['score'] == pytest.approx(0.5)
  sts = metrics.glue_metrics('stsb', [[1.0], [2.0], [3.0]], [1.0, 2.0, 4.0])
  assert sts['score'] == sts['pearson'] and sts['spearman'] == 1.0
  assert metrics.glue_metrics('mnli_mismatched', [0, 1, 2], [0, 1, 1])[
      'score'] == pytest.approx(2 / 3)
  with pytest.raises(ValueError, match='task'):
    metrics.glue_metrics('wnli', [0], [0])


def test_glue_average_reproduces_paper_table_14():
  # Perceiver IO bytes row of Table 14; the paper's average is 80.95.
  row = {'cola': 50.19, 'mnli_matched': 83.22, 'mnli_mismatched': 83.89,
         'mrpc': 87.24, 'qnli': 91.71, 'qqp': 90.12, 'rte': 64.84,
         'sst2': 93.17, 'stsb': 86.81, 'wnli': 0.0}
  # By hand: (50.19 + 83.555 + 87.24 + 91.71 + 90.12 + 64.84 + 93.17
  #           + 86.81) / 8 = 647.635 / 8
  assert metrics.glue_average(row) == pytest.approx(647.635 / 8)
  assert round(metrics.glue_average(row), 2) == 80.95
  with pytest.raises(ValueError, match='mnli_mismatched'):
    metrics.glue_average({k: v for k, v in row.items()
                          if k != 'mnli_mismatched'})
  with pytest.raises(ValueError, match='missing'):
    metrics.glue_average({'cola': 1.0, 'mnli': 1.0})


def test_bad_shapes():
  with pytest.raises(ValueError, match='equal length'):
    metrics.accuracy([1, 0], [1])
  with pytest.raises(ValueError, match='binary'):
    metrics.f1([2, 0], [1, 0])
