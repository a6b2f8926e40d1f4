"""Tests of mlpbook.metrics.confusion_matrix: the definition, its sums, the link to accuracy,
agreement with a plain loop over the pairs, and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.metrics import confusion_matrix
from mlpbook.nn.loss import accuracy


def loop_confusion(y_true, y_pred, K):
    C = np.zeros((K, K), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        C[t, p] += 1
    return C


def test_worked_example_of_source_003():
    """Predictions argmax = (2, 0, 2) for labels (2, 0, 2): all on the diagonal."""
    y_hat = np.array([[0.1, 0.4, 0.5], [0.8, 0.1, 0.1], [0.3, 0.2, 0.5]])
    C = confusion_matrix([2, 0, 2], y_hat.argmax(axis=1), 3)
    assert np.array_equal(C, [[1, 0, 0], [0, 0, 0], [0, 0, 2]])


def test_rows_are_true_classes_and_columns_predictions():
    C = confusion_matrix([0, 0, 1, 2], [1, 1, 1, 0], 3)
    assert C[0, 1] == 2 and C[1, 1] == 1 and C[2, 0] == 1 and C.sum() == 4
    assert C.dtype == np.int64 and C.shape == (3, 3)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(0, 200), st.integers(0, 2**32 - 1))
def test_matches_a_loop_and_its_sums(K, N, seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, K, N), rng.integers(0, K, N)
    C = confusion_matrix(y_true, y_pred, K)
    assert np.array_equal(C, loop_confusion(y_true, y_pred, K))
    assert np.array_equal(C.sum(axis=1), np.bincount(y_true, minlength=K))
    assert np.array_equal(C.sum(axis=0), np.bincount(y_pred, minlength=K))
    assert C.sum() == N and np.trace(C) == np.sum(y_true == y_pred)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 10), st.integers(1, 100), st.integers(0, 2**32 - 1))
def test_trace_over_total_is_the_accuracy(K, N, seed):
    rng = np.random.default_rng(seed)
    scores, y = rng.standard_normal((N, K)), rng.integers(0, K, N)
    C = confusion_matrix(y, scores.argmax(axis=1), K)
    assert np.trace(C) / C.sum() == accuracy(scores, y)


def test_num_classes_is_inferred_and_can_exceed_the_labels():
    assert confusion_matrix([0, 3], [1, 0]).shape == (4, 4)
    C = confusion_matrix([0, 1], [1, 0], 5)
    assert C.shape == (5, 5) and C[2:].sum() == 0 and C[:, 2:].sum() == 0


def test_accepts_other_integer_dtypes_and_empty_input():
    C = confusion_matrix(np.array([1, 2], dtype=np.uint8), np.array([2, 2], dtype=np.int16), 3)
    assert np.array_equal(C, [[0, 0, 0], [0, 0, 1], [0, 0, 1]])
    assert np.array_equal(confusion_matrix(np.array([], dtype=int), np.array([], dtype=int), 2), np.zeros((2, 2)))


def test_large_labels_do_not_overflow_small_dtypes():
    """Codes K*i + j exceed 255 for K = 20, although both label arrays are uint8."""
    y = np.array([19, 19, 0], dtype=np.uint8)
    C = confusion_matrix(y, y, 20)
    assert C[19, 19] == 2 and C[0, 0] == 1


def test_equals_counting_pairs_one_by_one():
    """The bincount form against the definition: C[i, j] = #{n : y_true[n] = i, y_pred[n] = j}."""
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    expected = np.zeros((7, 7), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    assert np.array_equal(confusion_matrix(y_true, y_pred, 7), expected)


@pytest.mark.parametrize("y_true, y_pred, K, match", [
    ([0, 1], [0], 2, "same length"),
    ([[0, 1]], [[0, 1]], 2, "1-d"),
    ([0.0, 1.0], [0, 1], 2, "integer class labels"),
    ([0, 1], [0, 2], 2, r"y_pred has labels from 0 to 2, outside 0\.\.1"),
    ([-1, 1], [0, 1], 2, "y_true has labels from -1"),
    ([0, 1], [0, 1], 0, "num_classes"),
    ([0, 1], [0, 1], 2.0, "num_classes"),
    (np.array([], dtype=int), np.array([], dtype=int), None, "cannot be inferred"),
])
def test_bad_input_is_refused_with_a_clear_message(y_true, y_pred, K, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred, K)
