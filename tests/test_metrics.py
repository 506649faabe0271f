"""Metrics against hand computation and a loop-by-loop oracle of the starter code's definitions."""

import numpy as np
import pytest
from tests.oracles import metrics_oracle as oracle

from compactvideo.metrics import MetricAccumulator, gap, hit_at_one, mean_average_precision, perr

PREDICTIONS = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.7]])
LABELS = np.array([[1, 1, 0], [0, 0, 1]])


def test_hand_computed_case():
    # Pooled top-2 pairs by score: .9 hit, .8 miss, .7 hit, .5 miss; 3 positives in all.
    assert gap(PREDICTIONS, LABELS, top_k=2) == pytest.approx((1 + 2 / 3) / 3)
    assert hit_at_one(PREDICTIONS, LABELS) == pytest.approx(0.5)
    assert perr(PREDICTIONS, LABELS) == pytest.approx((1 / 2 + 0) / 2)
    # Class 0: AP 1; class 1: its only positive is outside video 0's top 2, AP 0; class 2: AP 1.
    assert mean_average_precision(PREDICTIONS, LABELS, top_k=2) == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def random_case():
    rng = np.random.default_rng(0)
    labels = (rng.random((300, 50)) < 0.06).astype(np.int64)
    labels[:5] = 0  # videos without labels
    predictions = np.clip(0.5 * labels + rng.random((300, 50)), 0, 1)  # distinct scores, no ties
    return predictions, labels


@pytest.fixture(scope="module")
def tied_case():
    rng = np.random.default_rng(1)
    labels = (rng.random((200, 30)) < 0.1).astype(np.int64)
    predictions = np.round(0.3 * labels + rng.random((200, 30)), 1)  # 14 distinct scores: many ties
    return predictions, labels


@pytest.mark.parametrize("case", ["random_case", "tied_case"])
def test_functions_match_the_oracle(request, case):
    predictions, labels = request.getfixturevalue(case)
    expected = oracle(predictions, labels, top_k=20)
    assert gap(predictions, labels) == pytest.approx(expected["gap"], abs=1e-12)
    assert hit_at_one(predictions, labels) == pytest.approx(expected["hit_at_one"], abs=1e-12)
    assert perr(predictions, labels) == pytest.approx(expected["perr"], abs=1e-12)
    assert mean_average_precision(predictions, labels) == pytest.approx(expected["map"], abs=1e-12)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 300])
def test_accumulator_does_not_depend_on_batch_size(random_case, batch_size):
    predictions, labels = random_case
    accumulator = MetricAccumulator(num_classes=50)
    for start in range(0, len(predictions), batch_size):
        accumulator.update(predictions[start : start + batch_size], labels[start : start + batch_size])
    result = accumulator.result()
    expected = oracle(predictions, labels, top_k=20)
    for name in ("gap", "hit_at_one", "perr", "map"):
        assert result[name] == pytest.approx(expected[name], abs=1e-12), name
    assert result["videos"] == 300


def test_fewer_classes_than_k_uses_every_class():
    predictions = np.array([[0.2, 0.9], [0.6, 0.3]])
    labels = np.array([[1, 0], [1, 1]])
    # All 4 pairs pooled: .9 miss, .6 hit, .3 hit, .2 hit -> (1/2 + 2/3 + 3/4) / 3.
    assert gap(predictions, labels, top_k=20) == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)


def test_videos_without_labels():
    predictions = np.array([[0.9, 0.1], [0.8, 0.3]])
    labels = np.zeros((2, 2))
    assert gap(predictions, labels) == 0.0
    assert hit_at_one(predictions, labels) == 0.0
    assert perr(predictions, labels) == 0.0
    assert mean_average_precision(predictions, labels) == 0.0


def test_shape_errors_are_precise():
    with pytest.raises(ValueError, match=r"\[videos, classes\]"):
        gap(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="expected 3 classes"):
        MetricAccumulator(num_classes=3).update(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no predictions"):
        MetricAccumulator(num_classes=3).result()


def test_tied_scores_count_as_one_threshold():
    # Pooled pairs: .9 hit; then .5 miss and .5 hit tied (precision 2/3 once both are in); .1 miss.
    predictions = np.array([[0.9, 0.5], [0.5, 0.1]])
    labels = np.array([[1, 0], [1, 0]])
    assert gap(predictions, labels) == pytest.approx((1 + 2 / 3) / 2)
    assert gap(predictions[::-1], labels[::-1]) == gap(predictions, labels)


def test_accumulated_metrics_are_bit_identical_whatever_the_order_batches_and_merges(tied_case):
    predictions, labels = tied_case
    whole = MetricAccumulator(num_classes=30)
    whole.update(predictions, labels)
    expected = whole.result()
    rng = np.random.default_rng(2)
    for batch_size in (1, 7, 64):
        order = rng.permutation(len(predictions))
        parts = [MetricAccumulator(num_classes=30) for _ in range(3)]
        for number, start in enumerate(range(0, len(order), batch_size)):
            rows = order[start : start + batch_size]
            parts[number % 3].update(predictions[rows], labels[rows])
        parts[2].merge(parts[0])
        parts[2].merge(parts[1])
        assert parts[2].result() == expected, batch_size


def test_merged_accumulators_equal_one_pass(random_case):
    predictions, labels = random_case
    whole, first, second = (MetricAccumulator(num_classes=50) for _ in range(3))
    whole.update(predictions, labels)
    first.update(predictions[:120], labels[:120])
    second.update(predictions[120:], labels[120:])
    first.merge(second)
    assert first.result() == pytest.approx(whole.result(), abs=1e-12)
