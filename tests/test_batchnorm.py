"""BatchNorm1d: worked example, gradients (train and eval), running statistics, modes, dtypes,
bad input, and parity with PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.gradcheck import check_gradients, rel_error
from mlpbook.models.mlp import Sequential
from mlpbook.nn.batchnorm import BatchNorm1d
from mlpbook.nn.module import named_parameters


def long_backward(dLdBZ, Z, gamma, eps):
    """The sources' route through dL/dNZ, dL/dV and dL/dM (written independently of the layer)."""
    N = Z.shape[0]
    M = Z.mean(axis=0, keepdims=True)
    V = Z.var(axis=0, keepdims=True)
    NZ = (Z - M) / np.sqrt(V + eps)
    dLdNZ = dLdBZ * gamma
    dLdV = np.sum(dLdNZ * (Z - M) * -0.5 * (V + eps) ** -1.5, axis=0, keepdims=True)
    dLdM = np.sum(-dLdNZ / np.sqrt(V + eps), axis=0, keepdims=True) \
        + dLdV * np.mean(-2 * (Z - M), axis=0, keepdims=True)
    dLdZ = dLdNZ / np.sqrt(V + eps) + dLdV * 2 * (Z - M) / N + dLdM / N
    return dLdZ, np.sum(dLdBZ * NZ, axis=0, keepdims=True), np.sum(dLdBZ, axis=0, keepdims=True)


def random_layer(C, rng, **kwargs):
    bn = BatchNorm1d(C, **kwargs)
    bn.BW, bn.Bb = rng.standard_normal((1, C)), rng.standard_normal((1, C))
    return bn




# ## The homework's interface

def test_initial_state_follows_the_homework():
    bn = BatchNorm1d(4)
    assert bn.alpha == 0.9 and bn.eps == 1e-8
    for name, value in (("BW", 1), ("Bb", 0), ("running_M", 0), ("running_V", 1), ("dLdBW", 0), ("dLdBb", 0)):
        assert getattr(bn, name).shape == (1, 4) and np.all(getattr(bn, name) == value), name


def test_parameters_and_buffers_are_declared():
    bn = BatchNorm1d(3)
    assert [p.name for p in named_parameters(bn)] == ["BW", "Bb"]
    assert set(bn.state_dict()) == {"BW", "Bb", "running_M", "running_V"}


def test_state_dict_round_trip_restores_running_statistics():
    rng = np.random.default_rng(0)
    bn = BatchNorm1d(3)
    bn.forward(rng.standard_normal((8, 3)))
    saved = bn.state_dict()
    bn.forward(rng.standard_normal((8, 3)) + 5)
    bn.load_state_dict(saved)
    assert np.array_equal(bn.running_M, saved["running_M"]) and np.array_equal(bn.running_V, saved["running_V"])


# ## The sources' worked example

def test_worked_example_forward_and_backward():
    """Z = [1, 2, 3], gamma = 2, beta = 1, dL/dY = [0.1, 0.2, 0.3] (sources 000 and 001)."""
    bn = BatchNorm1d(1)
    bn.BW[:], bn.Bb[:] = 2.0, 1.0
    Y = bn.forward(np.array([[1.0], [2.0], [3.0]]))
    assert bn.M.item() == 2 and np.isclose(bn.V.item(), 2 / 3)
    np.testing.assert_allclose(bn.NZ.ravel(), [-1.2247, 0, 1.2247], atol=5e-5)
    np.testing.assert_allclose(Y.ravel(), [1 - 2 * 1.2247449, 1, 1 + 2 * 1.2247449], atol=1e-6)
    dLdZ = bn.backward(np.array([[0.1], [0.2], [0.3]]))
    assert np.isclose(bn.dLdBb.item(), 0.6)
    assert np.isclose(bn.dLdBW.item(), 0.2449490, atol=1e-6)   # the sources print 0.12247
    assert np.abs(dLdZ).max() < 1e-8                           # the upstream gradient is affine in Z


def test_worked_example_with_a_non_affine_upstream_gradient():
    bn = BatchNorm1d(1)
    bn.BW[:], bn.Bb[:] = 2.0, 1.0
    bn.forward(np.array([[1.0], [2.0], [3.0]]))
    np.testing.assert_allclose(bn.backward(np.array([[0.1], [0.2], [0.6]])).ravel(),
                               [0.1224745, -0.2449490, 0.1224745], atol=1e-6)


# ## Gradients

@pytest.mark.parametrize("shape", [(3, 1), (4, 3), (7, 5), (32, 6)])
def test_training_backward_matches_central_differences(shape):
    rng = np.random.default_rng(sum(shape))
    bn = random_layer(shape[1], rng)
    errors = check_gradients(bn, rng.normal(1.0, 3.0, shape))
    assert set(errors) == {"input", "BW", "Bb"} and max(errors.values()) < 1e-7


@pytest.mark.parametrize("shape", [(1, 3), (4, 3), (16, 5)])
def test_eval_backward_matches_central_differences(shape):
    rng = np.random.default_rng(sum(shape) + 1)
    bn = random_layer(shape[1], rng)
    bn.running_M, bn.running_V = rng.standard_normal((1, shape[1])), rng.uniform(0.5, 2.0, (1, shape[1]))
    errors = check_gradients(bn, rng.normal(1.0, 3.0, shape), eval=True)
    assert max(errors.values()) < 1e-7


def test_eval_backward_is_the_affine_gradient():
    rng = np.random.default_rng(2)
    bn = random_layer(3, rng)
    bn.running_M, bn.running_V = rng.standard_normal((1, 3)), rng.uniform(0.5, 2.0, (1, 3))
    Z, G = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    bn.forward(Z, eval=True)
    np.testing.assert_allclose(bn.backward(G), G * bn.BW / np.sqrt(bn.running_V + bn.eps), rtol=1e-12)
    np.testing.assert_allclose(bn.dLdBW, np.sum(G * (Z - bn.running_M) / np.sqrt(bn.running_V + bn.eps), axis=0, keepdims=True))


@pytest.mark.parametrize("shape", [(3, 1), (5, 4), (64, 17)])
def test_compact_backward_equals_the_long_form(shape):
    rng = np.random.default_rng(shape[0])
    bn = random_layer(shape[1], rng)
    Z, G = rng.normal(2.0, 3.0, shape), rng.standard_normal(shape)
    bn.forward(Z)
    dLdZ = bn.backward(G)
    ref = long_backward(G, Z, bn.BW, bn.eps)
    for ours, theirs in zip((dLdZ, bn.dLdBW, bn.dLdBb), ref):
        assert rel_error(ours, theirs) < 1e-12


def test_input_gradient_sums_to_zero_over_the_batch():
    """Shifting the whole batch does not change the output, so the input gradient has zero column sums."""
    rng = np.random.default_rng(3)
    bn = random_layer(4, rng)
    bn.forward(rng.normal(0, 5, (10, 4)))
    dLdZ = bn.backward(rng.standard_normal((10, 4)))
    assert np.abs(dLdZ.sum(axis=0)).max() < 1e-12 * np.abs(dLdZ).max()


def test_backward_does_not_modify_its_argument():
    rng = np.random.default_rng(4)
    bn = random_layer(3, rng)
    bn.forward(rng.standard_normal((6, 3)))
    G = rng.standard_normal((6, 3))
    before = G.copy()
    bn.backward(G)
    assert np.array_equal(G, before)


@settings(max_examples=30, deadline=None)
@given(N=st.integers(3, 24), C=st.integers(1, 8), seed=st.integers(0, 2**31 - 1),
       scale=st.floats(0.1, 100.0), shift=st.floats(-100.0, 100.0))
def test_random_shapes_match_the_long_form_and_keep_shapes(N, C, seed, scale, shift):
    rng = np.random.default_rng(seed)
    bn = random_layer(C, rng)
    Z, G = shift + scale * rng.standard_normal((N, C)), rng.standard_normal((N, C))
    Y = bn.forward(Z)
    assert Y.shape == (N, C)
    np.testing.assert_allclose(bn.NZ.mean(axis=0), 0, atol=1e-9)
    dLdZ = bn.backward(G)
    ref = long_backward(G, Z, bn.BW, bn.eps)
    assert dLdZ.shape == (N, C) and bn.dLdBW.shape == bn.dLdBb.shape == (1, C)
    np.testing.assert_allclose(dLdZ, ref[0], rtol=1e-7, atol=1e-9 * np.abs(ref[0]).max() + 1e-300)
    np.testing.assert_allclose(bn.dLdBW, ref[1], rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(3, 8), C=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), eval_mode=st.booleans())
def test_random_shapes_pass_the_gradient_check(N, C, seed, eval_mode):
    rng = np.random.default_rng(seed)
    bn = random_layer(C, rng)
    bn.running_M, bn.running_V = rng.standard_normal((1, C)), rng.uniform(0.5, 2.0, (1, C))
    assert max(check_gradients(bn, rng.normal(0.0, 2.0, (N, C)), eval=eval_mode).values()) < 1e-7


# ## Running statistics and modes

def test_running_statistics_over_several_batches_match_hand_computation():
    rng = np.random.default_rng(5)
    bn = BatchNorm1d(3, alpha=0.8)
    batches = [rng.normal(4.0, 2.0, (6, 3)) for _ in range(4)]
    M, V = np.zeros((1, 3)), np.ones((1, 3))
    for b in batches:
        bn.forward(b)
        M = 0.8 * M + 0.2 * b.mean(axis=0)
        V = 0.8 * V + 0.2 * b.var(axis=0)          # biased: divides by N
    np.testing.assert_allclose(bn.running_M, M, rtol=1e-12)
    np.testing.assert_allclose(bn.running_V, V, rtol=1e-12)


def test_eval_forward_uses_running_statistics_and_updates_nothing():
    rng = np.random.default_rng(6)
    bn = random_layer(4, rng)
    bn.running_M, bn.running_V = rng.standard_normal((1, 4)), rng.uniform(0.5, 2.0, (1, 4))
    saved = bn.running_M.copy(), bn.running_V.copy()
    Z = rng.standard_normal((5, 4))
    out = bn.forward(Z, eval=True)
    np.testing.assert_allclose(out, bn.BW * (Z - saved[0]) / np.sqrt(saved[1] + bn.eps) + bn.Bb, rtol=1e-12)
    assert np.array_equal(bn.running_M, saved[0]) and np.array_equal(bn.running_V, saved[1])
    # each row depends on itself only
    np.testing.assert_allclose(bn.forward(Z[2:3], eval=True), out[2:3], rtol=1e-12)


def test_model_level_train_and_eval_are_honoured():
    rng = np.random.default_rng(7)
    bn = random_layer(3, rng)
    model = Sequential(bn)
    Z = rng.normal(3.0, 2.0, (6, 3))
    model.eval()
    saved = bn.running_M.copy()
    np.testing.assert_allclose(model.forward(Z), bn.forward(Z, eval=True))
    assert np.array_equal(bn.running_M, saved)
    # an explicit eval=False overrides the flag
    train_out = bn.forward(Z, eval=False)
    assert not np.array_equal(bn.running_M, saved)
    np.testing.assert_allclose(train_out.mean(axis=0), bn.Bb.ravel(), atol=1e-10)
    model.train()
    np.testing.assert_allclose(model.forward(Z), train_out)
    # and an explicit eval=True overrides training mode
    np.testing.assert_allclose(bn.forward(Z, eval=True), bn.BW * (Z - bn.running_M) / np.sqrt(bn.running_V + bn.eps) + bn.Bb)


def test_backward_follows_the_mode_of_the_last_forward():
    rng = np.random.default_rng(8)
    bn = random_layer(2, rng)
    Z, G = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    bn.eval()
    bn.forward(Z)
    assert np.allclose(bn.backward(G), G * bn.BW / np.sqrt(bn.running_V + bn.eps))
    bn.train()
    bn.forward(Z)
    assert np.abs(bn.backward(G).sum(axis=0)).max() < 1e-12


def test_single_sample_in_training_mode_returns_beta_with_zero_gradient():
    bn = random_layer(3, np.random.default_rng(9))
    out = bn.forward(np.array([[1.0, -2.0, 3.0]]))
    np.testing.assert_allclose(out, bn.Bb)
    assert np.all(bn.backward(np.ones((1, 3))) == 0)


# ## Numerics and dtypes

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_constant_feature_stays_finite(dtype):
    bn = BatchNorm1d(2)
    Z = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 4.0]], dtype)
    out = bn.forward(Z)
    dLdZ = bn.backward(np.ones_like(Z))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dLdZ)) and np.all(np.isfinite(bn.running_V))
    assert np.abs(out[:, 0]).max() < 1e-3


def test_large_inputs_give_finite_values_and_no_warnings():
    rng = np.random.default_rng(10)
    bn = BatchNorm1d(3)
    Z = 1e3 * rng.standard_normal((8, 3))
    Z[:, 1] = 1e3
    out = bn.forward(Z)
    dLdZ = bn.backward(rng.standard_normal((8, 3)))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dLdZ))


def test_float32_stays_float32_and_running_statistics_keep_their_dtype():
    rng = np.random.default_rng(11)
    bn = BatchNorm1d(3)
    Z = rng.standard_normal((5, 3)).astype(np.float32)
    out = bn.forward(Z)
    assert out.dtype == np.float32
    assert bn.backward(np.ones((5, 3), np.float32)).dtype == np.float32
    assert bn.running_M.dtype == bn.running_V.dtype == np.float64
    assert bn.forward(Z, eval=True).dtype == np.float32
    assert bn.backward(np.ones((5, 3), np.float32)).dtype == np.float32
    ref = BatchNorm1d(3)
    np.testing.assert_allclose(out, ref.forward(Z.astype(np.float64)), atol=1e-5)


def test_float32_layer_keeps_float32_state():
    bn = BatchNorm1d(3, dtype=np.float32)
    bn.forward(np.random.default_rng(12).standard_normal((4, 3)))   # float64 input
    assert bn.BW.dtype == bn.Bb.dtype == bn.running_M.dtype == bn.running_V.dtype == np.float32


def test_integer_input_is_converted_to_float():
    bn = BatchNorm1d(2)
    out = bn.forward(np.array([[1, 2], [3, 5], [4, 4]]))
    assert out.dtype == np.float64 and np.all(np.isfinite(out))


# ## Bad input

@pytest.mark.parametrize("bad", [np.ones((4, 2)), np.ones((4, 5)), np.ones(3), np.ones((2, 3, 1))])
def test_wrong_input_is_rejected_without_state_change(bad):
    rng = np.random.default_rng(13)
    bn = random_layer(3, rng)
    bn.forward(rng.standard_normal((6, 3)))
    before = {k: np.copy(getattr(bn, k)) for k in ("running_M", "running_V", "NZ", "BW", "Bb")}
    with pytest.raises(ValueError) as err:
        bn.forward(bad)
    message = str(err.value)
    assert "BatchNorm1d" in message and str(bad.shape) in message
    for k, v in before.items():
        assert np.array_equal(getattr(bn, k), v), k


def test_wrong_feature_count_message_names_both_shapes():
    with pytest.raises(ValueError, match=r"BatchNorm1d\.forward: expected shape \(N, 3\), got \(4, 2\)"):
        BatchNorm1d(3).forward(np.ones((4, 2)))


def test_empty_batch_in_training_mode_is_rejected_without_state_change():
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d.*\(0, 3\)"):
        bn.forward(np.ones((0, 3)))
    assert np.all(bn.running_M == 0) and np.all(bn.running_V == 1)
    assert bn.forward(np.ones((0, 3)), eval=True).shape == (0, 3)


def test_backward_before_forward_is_rejected():
    with pytest.raises(RuntimeError, match="BatchNorm1d"):
        BatchNorm1d(3).backward(np.ones((2, 3)))


def test_backward_with_wrong_shape_is_rejected_without_state_change():
    rng = np.random.default_rng(14)
    bn = random_layer(3, rng)
    bn.forward(rng.standard_normal((4, 3)))
    bn.backward(rng.standard_normal((4, 3)))
    saved = bn.dLdBW.copy(), bn.dLdBb.copy()
    with pytest.raises(ValueError, match=r"BatchNorm1d.*\(4, 3\).*\(4, 2\)"):
        bn.backward(np.ones((4, 2)))
    assert np.array_equal(bn.dLdBW, saved[0]) and np.array_equal(bn.dLdBb, saved[1])


# ## Parity with PyTorch (momentum = 1 - alpha; torch's running variance is unbiased)

@pytest.mark.parametrize("shape", [(4, 3), (32, 7)])
def test_training_mode_matches_torch(shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(15)
    N, C = shape
    bn = random_layer(C, rng, alpha=0.8, eps=1e-5)
    t_mean, t_var = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    our_unbiased = np.ones((1, C))
    for step in range(3):
        Z, G = rng.normal(1.0, 2.0, shape), rng.standard_normal(shape)
        x = torch.tensor(Z, requires_grad=True)
        w = torch.tensor(bn.BW.ravel(), requires_grad=True)
        b = torch.tensor(bn.Bb.ravel(), requires_grad=True)
        y = F.batch_norm(x, t_mean, t_var, w, b, training=True, momentum=0.2, eps=1e-5)
        y.backward(torch.tensor(G))
        out = bn.forward(Z)
        dLdZ = bn.backward(G)
        np.testing.assert_allclose(out, y.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dLdZ, x.grad.numpy(), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(bn.dLdBW.ravel(), w.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(bn.dLdBb.ravel(), b.grad.numpy(), rtol=1e-10)
        our_unbiased = 0.8 * our_unbiased + 0.2 * Z.var(axis=0, ddof=1)
        np.testing.assert_allclose(bn.running_M.ravel(), t_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(our_unbiased.ravel(), t_var.numpy(), rtol=1e-12)
        # ours averages the biased variance instead
        assert not np.allclose(bn.running_V.ravel(), t_var.numpy())


def test_eval_mode_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(16)
    bn = random_layer(5, rng, eps=1e-5)
    bn.running_M, bn.running_V = rng.standard_normal((1, 5)), rng.uniform(0.5, 2.0, (1, 5))
    Z, G = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    x = torch.tensor(Z, requires_grad=True)
    w = torch.tensor(bn.BW.ravel(), requires_grad=True)
    b = torch.tensor(bn.Bb.ravel(), requires_grad=True)
    y = F.batch_norm(x, torch.tensor(bn.running_M.ravel()), torch.tensor(bn.running_V.ravel()), w, b,
                     training=False, eps=1e-5)
    y.backward(torch.tensor(G))
    np.testing.assert_allclose(bn.forward(Z, eval=True), y.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.backward(G), x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.dLdBW.ravel(), w.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.dLdBb.ravel(), b.grad.numpy(), rtol=1e-12)
