"""Tests of mlpbook.nn.loss: MSELoss, CrossEntropyLoss, BCEWithLogitsLoss, SVMLoss, accuracy."""
import re
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax

from mlpbook.gradcheck import check_gradients
from mlpbook.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, SVMLoss, accuracy

LOSSES = [MSELoss, CrossEntropyLoss, BCEWithLogitsLoss, SVMLoss]


def make_targets(kind: str, rng, N: int, C: int):
    """Targets of each kind a loss accepts."""
    labels = rng.integers(0, C, size=N)
    return {
        "real": rng.standard_normal((N, C)),
        "labels": labels,
        "one-hot": np.eye(C)[labels],
        "probabilities": rng.dirichlet(np.ones(C), size=N),
        "unnormalised": rng.random((N, C)) * 2,
        "binary": rng.integers(0, 2, size=(N, C)).astype(float),
        "soft": rng.random((N, C)),
    }[kind]


def default_targets(loss_cls, rng, N, C):
    kind = {MSELoss: "real", CrossEntropyLoss: "labels", BCEWithLogitsLoss: "binary", SVMLoss: "labels"}
    return make_targets(kind[loss_cls], rng, N, C)


# ## Gradient checks

GRAD_CASES = [(MSELoss, "real"),
              (CrossEntropyLoss, "labels"), (CrossEntropyLoss, "one-hot"),
              (CrossEntropyLoss, "probabilities"), (CrossEntropyLoss, "unnormalised"),
              (BCEWithLogitsLoss, "binary"), (BCEWithLogitsLoss, "soft"),
              (SVMLoss, "labels"), (SVMLoss, "one-hot")]


@pytest.mark.parametrize("loss_cls, kind", GRAD_CASES, ids=lambda v: getattr(v, "__name__", v))
def test_backward_matches_central_differences(loss_cls, kind):
    rng = np.random.default_rng(7)
    A = rng.standard_normal((6, 5)) * 2
    Y = make_targets(kind, rng, 6, 5)
    if loss_cls is SVMLoss:  # central differences must not straddle a kink of the hinge
        y = Y if Y.ndim == 1 else Y.argmax(axis=1)
        assert np.abs(A - A[np.arange(6), y][:, None] + 1).min() > 1e-3
    errors = check_gradients(loss_cls(), A, Y)
    assert errors["input"] < 1e-7


def test_a_wrong_gradient_fails_the_check():
    """The check above can fail: a cross-entropy gradient without 1/N is caught."""
    class MissingN(CrossEntropyLoss):
        def backward(self):
            return super().backward() * self.N

    rng = np.random.default_rng(0)
    with pytest.raises(AssertionError):
        check_gradients(MissingN(), rng.standard_normal((4, 3)), np.array([0, 1, 2, 0]))


# ## Cross-entropy: targets, fused gradient, homework compatibility

def test_cross_entropy_labels_equal_one_hot():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((9, 4)) * 3
    y = rng.integers(0, 4, size=9)
    by_labels, by_rows = CrossEntropyLoss(), CrossEntropyLoss()
    assert np.isclose(by_labels.forward(A, y), by_rows.forward(A, np.eye(4)[y]), rtol=1e-14)
    np.testing.assert_allclose(by_labels.backward(), by_rows.backward(), rtol=1e-14, atol=1e-17)


def test_integral_float_labels_are_labels():
    A = np.random.default_rng(2).standard_normal((3, 4))
    assert CrossEntropyLoss().forward(A, [0.0, 3.0, 1.0]) == CrossEntropyLoss().forward(A, [0, 3, 1])


def test_cross_entropy_keeps_softmax_and_fused_gradient_like_the_homework():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 3))
    Y = np.eye(3)[[0, 2, 1, 1, 0]]
    ce = CrossEntropyLoss()
    L = ce.forward(A, Y)
    softmax = np.exp(A) / np.exp(A).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ce.softmax, softmax, rtol=1e-14)
    np.testing.assert_allclose(ce.backward(), (softmax - Y) / 5, rtol=1e-13, atol=1e-17)
    assert np.isclose(L, -np.sum(Y * np.log(softmax)) / 5, rtol=1e-14)
    assert L.round(4) == round(float(L), 4)  # the homework's tests call .round on the loss
    assert ce.forward(A, Y) == L  # a second forward on the same object works


def test_fused_gradient_equals_chaining_through_softmax():
    Softmax = pytest.importorskip("mlpbook.nn.activation").Softmax
    rng = np.random.default_rng(4)
    A = rng.standard_normal((6, 4))
    Y = rng.dirichlet(np.ones(4), size=6)
    ce = CrossEntropyLoss()
    ce.forward(A, Y)
    softmax = Softmax()
    a = softmax.forward(A)
    chained = softmax.backward(-Y / (len(A) * a))
    np.testing.assert_allclose(ce.backward(), chained, rtol=1e-10, atol=1e-15)


def test_cross_entropy_of_probability_targets_is_minimal_at_the_targets():
    """At logits log(q) the loss is the entropy of q and the gradient vanishes."""
    q = np.random.default_rng(5).dirichlet(np.ones(5), size=4)
    ce = CrossEntropyLoss()
    L = ce.forward(np.log(q), q)
    assert np.isclose(L, -np.sum(q * np.log(q)) / 4, rtol=1e-13)
    np.testing.assert_allclose(ce.backward(), 0, atol=1e-16)


# ## Worked examples of the sources

def test_mse_hand_example():
    A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    Y = np.array([[0.0, 2.0, 5.0], [4.0, 2.0, 5.0]])
    mse = MSELoss()
    assert mse.forward(A, Y) == 2.5
    np.testing.assert_allclose(mse.backward(), 2 * (A - Y) / 6)


def test_source_003_cross_entropy_example():
    y_hat = np.array([[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]])
    L = CrossEntropyLoss().forward(np.log(y_hat), [0, 2])
    assert np.isclose(L, (2.302585093 + 0.693147181) / 2, rtol=1e-9)


def test_source_004_training_log_is_minus_log_p5():
    p5 = [6.67757555e-06, 2.06341951e-02, 7.59704050e-01]
    printed = [11.916755577788203, 3.8808056223823644, 0.2748263287780079]
    for p, loss in zip(p5, printed):
        assert np.isclose(CrossEntropyLoss().forward(np.log([[p, 1 - p]]), [0]), loss, rtol=5e-9)


def test_svm_hand_example():
    svm = SVMLoss()
    assert svm.forward(np.array([[2.0, 3.5, -1.0], [4.0, 0.5, 3.5]]), [0, 0]) == 1.5
    np.testing.assert_array_equal(svm.backward(), [[-0.5, 0.5, 0.0], [-0.5, 0.0, 0.5]])


def test_source_003_accuracy_example_is_one_not_two_thirds():
    y_hat = np.array([[0.1, 0.4, 0.5], [0.8, 0.1, 0.1], [0.3, 0.2, 0.5]])
    assert accuracy(y_hat, [2, 0, 2]) == 1.0
    assert accuracy(y_hat, np.eye(3)[[2, 0, 2]]) == 1.0
    assert accuracy(y_hat, [2, 1, 0]) == 1 / 3


def test_bce_equals_two_class_softmax_cross_entropy():
    z = np.array([[-3.0], [-0.5], [0.0], [2.0], [6.0]])
    t = np.array([1, 0, 1, 1, 0])
    bce = BCEWithLogitsLoss().forward(z, t[:, None].astype(float))
    ce = CrossEntropyLoss().forward(np.hstack([np.zeros_like(z), z]), t)
    assert np.isclose(bce, ce, rtol=1e-14)


def test_svm_is_zero_beyond_the_margin():
    svm = SVMLoss()
    assert svm.forward(np.array([[5.0, 1.0, 3.9]]), [0]) == 0
    assert not svm.backward().any()
    assert SVMLoss(margin=2.0).forward(np.array([[5.0, 1.0, 3.9]]), [0]) == pytest.approx(0.9)


# ## Extreme inputs, dtypes, return types

EXTREME = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss_cls", LOSSES, ids=lambda c: c.__name__)
def test_extreme_logits_give_finite_values_and_no_warnings(loss_cls, dtype):
    Y = {MSELoss: np.zeros((2, 3)), CrossEntropyLoss: np.array([1, 0]),
         BCEWithLogitsLoss: np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5]]), SVMLoss: np.array([1, 0])}[loss_cls]
    loss = loss_cls()
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        L = loss.forward(EXTREME.astype(dtype), Y)
        dLdA = loss.backward()
    assert isinstance(L, np.float64) and np.isfinite(L)
    assert dLdA.dtype == dtype and np.isfinite(dLdA).all()


def test_extreme_logit_losses_are_exact():
    assert CrossEntropyLoss().forward(EXTREME, [1, 0]) == 1500.0  # (1000 + 2000) / 2
    assert CrossEntropyLoss().forward(EXTREME.astype(np.float32), [1, 0]) == 1500.0
    assert BCEWithLogitsLoss().forward(np.array([[1000.0, -1000.0]]), [[0.0, 1.0]]) == 1000.0
    assert SVMLoss().forward(EXTREME, [1, 0]) == (1001 + 2001 + 1001) / 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss_cls", LOSSES, ids=lambda c: c.__name__)
def test_loss_is_float64_and_gradient_keeps_the_dtype(loss_cls, dtype):
    rng = np.random.default_rng(8)
    A = rng.standard_normal((4, 3)).astype(dtype)
    loss = loss_cls()
    L = loss.forward(A, default_targets(loss_cls, rng, 4, 3))
    assert type(L) is np.float64
    assert loss.backward().dtype == dtype and loss.backward().shape == (4, 3)
    assert type(accuracy(A, rng.integers(0, 3, size=4))) is np.float64


def test_integer_predictions_become_float64():
    mse = MSELoss()
    assert mse.forward(np.array([[1, 2]]), np.array([[0, 0]])) == 2.5
    assert mse.backward().dtype == np.float64


def test_backward_does_not_modify_the_cache():
    rng = np.random.default_rng(9)
    for loss_cls in LOSSES:
        loss = loss_cls()
        loss.forward(rng.standard_normal((4, 3)), default_targets(loss_cls, rng, 4, 3))
        first = loss.backward().copy()
        np.testing.assert_array_equal(loss.backward(), first)


# ## Bad input: clear errors, no state change

@pytest.mark.parametrize("loss_cls", LOSSES, ids=lambda c: c.__name__)
def test_backward_before_forward(loss_cls):
    with pytest.raises(RuntimeError, match=f"{loss_cls.__name__}.backward called before forward"):
        loss_cls().backward()


@pytest.mark.parametrize("loss_cls", LOSSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("A", [np.zeros(3), np.zeros((2, 3, 1)), np.zeros((0, 3))], ids=["1d", "3d", "empty"])
def test_wrong_rank_or_empty_batch(loss_cls, A):
    with pytest.raises(ValueError, match=re.escape(f"{loss_cls.__name__}.forward") + ".*" + re.escape(str(A.shape))):
        loss_cls().forward(A, np.zeros(A.shape))


@pytest.mark.parametrize("loss_cls", [MSELoss, BCEWithLogitsLoss])
def test_targets_of_another_shape(loss_cls):
    with pytest.raises(ValueError, match=rf"{loss_cls.__name__}\.forward: Y has shape \(2, 4\) but A has shape \(2, 3\)"):
        loss_cls().forward(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("loss_cls", [CrossEntropyLoss, SVMLoss])
@pytest.mark.parametrize("Y", [np.zeros((2, 4)), np.zeros(3, dtype=int), np.zeros((2, 1), dtype=int)],
                         ids=["rows", "labels", "column"])
def test_class_targets_of_another_shape(loss_cls, Y):
    with pytest.raises(ValueError, match=re.escape(f"{loss_cls.__name__}.forward: A has shape (2, 3)")
                       + ".*" + re.escape(f"got {Y.shape}")):
        loss_cls().forward(np.zeros((2, 3)), Y)


@pytest.mark.parametrize("where, call", [
    ("CrossEntropyLoss", lambda y: CrossEntropyLoss().forward(np.zeros((2, 3)), y)),
    ("SVMLoss", lambda y: SVMLoss().forward(np.zeros((2, 3)), y)),
    ("accuracy", lambda y: accuracy(np.zeros((2, 3)), y)),
])
@pytest.mark.parametrize("labels, bad", [([0, 3], "3"), ([-1, 0], "-1")])
def test_labels_out_of_range(where, call, labels, bad):
    with pytest.raises(ValueError, match=rf"{where}.*0\.\.2.*Y\[\d\] = {bad}.*\(2, 3\)"):
        call(np.array(labels))


@pytest.mark.parametrize("loss_cls", [CrossEntropyLoss, SVMLoss])
def test_non_integer_labels(loss_cls):
    with pytest.raises(ValueError, match=rf"{loss_cls.__name__}.*must be integers.*1\.5.*\(2, 3\)"):
        loss_cls().forward(np.zeros((2, 3)), np.array([0.0, 1.5]))
    with pytest.raises(TypeError, match=rf"{loss_cls.__name__}.*must be integers.*bool"):
        loss_cls().forward(np.zeros((2, 3)), np.array([True, False]))


@pytest.mark.parametrize("loss_cls", LOSSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(loss_cls, bad):
    rng = np.random.default_rng(10)
    A = rng.standard_normal((3, 4))
    Y = default_targets(loss_cls, rng, 3, 4)
    A[1, 2] = bad
    with pytest.raises(ValueError, match=rf"{loss_cls.__name__}\.forward: A of shape \(3, 4\) contains .* \(1, 2\)"):
        loss_cls().forward(A, Y)
    if Y.ndim == 2:
        A[1, 2], Y = 0.0, Y.astype(float)
        Y[0, 1] = bad
        with pytest.raises(ValueError, match=rf"{loss_cls.__name__}\.forward: Y of shape \(3, 4\) contains"):
            loss_cls().forward(A, Y)


def test_bce_targets_outside_unit_interval():
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss\.forward: targets must lie in \[0, 1\].*\(1, 2\)"):
        BCEWithLogitsLoss().forward(np.zeros((1, 2)), [[0.5, 1.5]])


def test_svm_refuses_probability_rows():
    with pytest.raises(ValueError, match=r"SVMLoss\.forward: Y of shape \(2, 3\) must be one-hot"):
        SVMLoss().forward(np.zeros((2, 3)), np.full((2, 3), 1 / 3))


@pytest.mark.parametrize("loss_cls", LOSSES, ids=lambda c: c.__name__)
def test_failed_forward_changes_no_state(loss_cls):
    rng = np.random.default_rng(11)
    loss = loss_cls()
    A = rng.standard_normal((4, 3))
    loss.forward(A, default_targets(loss_cls, rng, 4, 3))
    before = {k: v for k, v in vars(loss).items()}
    gradient = loss.backward().copy()
    bad_A = A.copy()
    bad_A[0, 0] = np.nan
    for args in ((bad_A, default_targets(loss_cls, rng, 4, 3)), (A[0], default_targets(loss_cls, rng, 4, 3)),
                 (A[:2], default_targets(loss_cls, rng, 4, 3))):
        with pytest.raises(ValueError):
            loss.forward(*args)
    assert vars(loss).keys() == before.keys() and all(vars(loss)[k] is v for k, v in before.items())
    np.testing.assert_array_equal(loss.backward(), gradient)


# ## Properties over random shapes

shapes = dict(N=st.integers(1, 8), C=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
              scale=st.sampled_from([1e-3, 1.0, 30.0, 1e3]))


@settings(max_examples=40, deadline=None)
@given(**shapes)
def test_cross_entropy_properties(N, C, seed, scale):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N, C)) * scale
    y = rng.integers(0, C, size=N)
    ce = CrossEntropyLoss()
    L = ce.forward(A, y)
    grad = ce.backward()
    reference = -np.mean(log_softmax(A, axis=1)[np.arange(N), y])
    assert L >= 0 and np.isclose(L, reference, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-15)   # rows of a softmax minus one-hot
    ce_rows = CrossEntropyLoss()
    assert np.isclose(ce_rows.forward(A, np.eye(C)[y]), L, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ce_rows.backward(), grad, atol=1e-15)
    shifted = CrossEntropyLoss()   # a constant per row changes nothing
    assert np.isclose(shifted.forward(A + rng.standard_normal((N, 1)) * scale, y), L, rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(shifted.backward(), grad, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(**shapes)
def test_mse_and_bce_match_references(N, C, seed, scale):
    rng = np.random.default_rng(seed)
    A, Y, T = rng.standard_normal((N, C)) * scale, rng.standard_normal((N, C)), rng.random((N, C))
    mse = MSELoss()
    assert np.isclose(mse.forward(A, Y), np.mean((A - Y) ** 2), rtol=1e-12)
    np.testing.assert_allclose(mse.backward(), 2 * (A - Y) / A.size, rtol=1e-12)
    bce = BCEWithLogitsLoss()
    assert np.isclose(bce.forward(A, T), np.mean(np.logaddexp(0, A) - A * T), rtol=1e-12, atol=1e-15)
    sigma = np.exp(-np.logaddexp(0, -A))
    np.testing.assert_allclose(bce.backward(), (sigma - T) / A.size, rtol=1e-12, atol=1e-17)


@settings(max_examples=40, deadline=None)
@given(**shapes)
def test_svm_and_accuracy_match_loops(N, C, seed, scale):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N, C)) * scale
    y = rng.integers(0, C, size=N)
    expected_loss, expected_grad = 0.0, np.zeros((N, C))
    for i in range(N):          # the plain double loop, as a reference
        for j in range(C):
            if j != y[i] and A[i, j] - A[i, y[i]] + 1 > 0:
                expected_loss += (A[i, j] - A[i, y[i]] + 1) / N
                expected_grad[i, j] += 1 / N
                expected_grad[i, y[i]] -= 1 / N
    svm = SVMLoss()
    assert np.isclose(svm.forward(A, y), expected_loss, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(svm.backward(), expected_grad, atol=1e-15)
    correct = sum(int(np.argmax(A[i]) == y[i]) for i in range(N))
    assert accuracy(A, y) == correct / N


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 4), C=st.integers(2, 4), seed=st.integers(0, 2**32 - 1))
def test_gradients_over_random_shapes(N, C, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N, C)) * 2
    y = rng.integers(0, C, size=N)
    check_gradients(MSELoss(), A, rng.standard_normal((N, C)))
    check_gradients(CrossEntropyLoss(), A, y)
    check_gradients(CrossEntropyLoss(), A, rng.dirichlet(np.ones(C), size=N))
    check_gradients(BCEWithLogitsLoss(), A, rng.random((N, C)))
    assume(np.abs(A - A[np.arange(N), y][:, None] + 1).min() > 1e-4)
    check_gradients(SVMLoss(), A, y)


# ## Parity with PyTorch

def _torch_loss_and_grad(torch, fn, A, *args, **kwargs):
    a = torch.tensor(A, requires_grad=True)
    value = fn(a, *args, **kwargs)
    value.backward()
    return value.item(), a.grad.numpy()


@pytest.mark.parametrize("kind", ["labels", "probabilities", "unnormalised"])
def test_cross_entropy_matches_torch(kind):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(12)
    A = rng.standard_normal((7, 5)) * 3
    Y = make_targets(kind, rng, 7, 5)
    ce = CrossEntropyLoss()
    L = ce.forward(A, Y)
    t_L, t_grad = _torch_loss_and_grad(torch, F.cross_entropy, A, torch.tensor(Y))
    assert np.isclose(L, t_L, rtol=1e-13)
    np.testing.assert_allclose(ce.backward(), t_grad, rtol=1e-12, atol=1e-16)


def test_cross_entropy_matches_torch_in_float32_at_extreme_logits():
    torch = pytest.importorskip("torch")
    A = EXTREME.astype(np.float32)
    ce = CrossEntropyLoss()
    L = ce.forward(A, [1, 0])
    t_L, t_grad = _torch_loss_and_grad(torch, torch.nn.functional.cross_entropy, A, torch.tensor([1, 0]))
    assert L == t_L
    np.testing.assert_allclose(ce.backward(), t_grad, atol=1e-7)


def test_mse_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    A, Y = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    mse = MSELoss()
    L = mse.forward(A, Y)
    t_L, t_grad = _torch_loss_and_grad(torch, torch.nn.functional.mse_loss, A, torch.tensor(Y))
    assert np.isclose(L, t_L, rtol=1e-13)
    np.testing.assert_allclose(mse.backward(), t_grad, rtol=1e-13)


def test_bce_with_logits_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    A, T = rng.standard_normal((6, 4)) * 10, rng.random((6, 4))
    bce = BCEWithLogitsLoss()
    L = bce.forward(A, T)
    t_L, t_grad = _torch_loss_and_grad(torch, torch.nn.functional.binary_cross_entropy_with_logits,
                                       A, torch.tensor(T))
    assert np.isclose(L, t_L, rtol=1e-13)
    np.testing.assert_allclose(bce.backward(), t_grad, rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_svm_matches_torch_multi_margin_loss_times_C(margin):
    """PyTorch divides each sample's hinge sum by C as well; ours follows CS231n and does not."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(15)
    A, y = rng.standard_normal((8, 5)), rng.integers(0, 5, size=8)
    svm = SVMLoss(margin)
    L = svm.forward(A, y)
    t_L, t_grad = _torch_loss_and_grad(torch, torch.nn.functional.multi_margin_loss, A,
                                       torch.tensor(y), margin=margin)
    assert np.isclose(L, 5 * t_L, rtol=1e-13)
    np.testing.assert_allclose(svm.backward(), 5 * t_grad, rtol=1e-13, atol=1e-17)
