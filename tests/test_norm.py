"""LayerNorm: gradients, the long form of source 002, invariances, dtypes, bad input, and
parity with PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.gradcheck import check_gradients, rel_error
from mlpbook.nn.module import named_parameters
from mlpbook.nn.norm import LayerNorm


def long_backward(dLdBZ, Z, gamma, eps):
    """Through dL/dV and dL/dM per row (source 002's route), written independently of the layer."""
    C = Z.shape[1]
    M = Z.mean(axis=1, keepdims=True)
    V = Z.var(axis=1, keepdims=True)
    NZ = (Z - M) / np.sqrt(V + eps)
    dLdNZ = dLdBZ * gamma
    dLdV = np.sum(dLdNZ * (Z - M) * -0.5 * (V + eps) ** -1.5, axis=1, keepdims=True)
    dLdM = np.sum(-dLdNZ / np.sqrt(V + eps), axis=1, keepdims=True) \
        + dLdV * np.mean(-2 * (Z - M), axis=1, keepdims=True)
    dLdZ = dLdNZ / np.sqrt(V + eps) + dLdV * 2 * (Z - M) / C + dLdM / C
    return dLdZ, np.sum(dLdBZ * NZ, axis=0, keepdims=True), np.sum(dLdBZ, axis=0, keepdims=True)


def random_layer(C, rng, **kwargs):
    ln = LayerNorm(C, **kwargs)
    ln.BW, ln.Bb = rng.standard_normal((1, C)), rng.standard_normal((1, C))
    return ln


def test_initial_state_and_declared_parameters():
    ln = LayerNorm(4)
    assert ln.eps == 1e-5
    assert np.array_equal(ln.BW, np.ones((1, 4))) and np.array_equal(ln.Bb, np.zeros((1, 4)))
    assert ln.dLdBW.shape == ln.dLdBb.shape == (1, 4)
    assert [p.name for p in named_parameters(ln)] == ["BW", "Bb"]
    assert set(ln.state_dict()) == {"BW", "Bb"}   # no running statistics


def test_forward_normalizes_each_row():
    rng = np.random.default_rng(0)
    ln = LayerNorm(6)
    Z = rng.normal(3.0, 2.0, (5, 6))
    out = ln.forward(Z)
    expected = (Z - Z.mean(axis=1, keepdims=True)) / np.sqrt(Z.var(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert ln.M.shape == ln.V.shape == (5, 1)


@pytest.mark.parametrize("shape", [(1, 3), (1, 8), (4, 3), (6, 5), (20, 8)])
def test_backward_matches_central_differences(shape):
    rng = np.random.default_rng(sum(shape))
    ln = random_layer(shape[1], rng)
    errors = check_gradients(ln, rng.normal(-1.0, 2.0, shape))
    assert set(errors) == {"input", "BW", "Bb"} and max(errors.values()) < 1e-7


@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (32, 17)])
def test_compact_backward_equals_the_long_form(shape):
    rng = np.random.default_rng(shape[1])
    ln = random_layer(shape[1], rng)
    Z, G = rng.normal(1.0, 3.0, shape), rng.standard_normal(shape)
    ln.forward(Z)
    dLdZ = ln.backward(G)
    for ours, ref in zip((dLdZ, ln.dLdBW, ln.dLdBb), long_backward(G, Z, ln.BW, ln.eps)):
        assert rel_error(ours, ref) < 1e-12


def test_input_gradient_sums_to_zero_along_each_row():
    rng = np.random.default_rng(1)
    ln = random_layer(5, rng)
    ln.forward(rng.normal(0, 4, (6, 5)))
    dLdZ = ln.backward(rng.standard_normal((6, 5)))
    assert np.abs(dLdZ.sum(axis=1)).max() < 1e-12 * np.abs(dLdZ).max()


def test_backward_does_not_modify_its_argument():
    rng = np.random.default_rng(2)
    ln = random_layer(4, rng)
    ln.forward(rng.standard_normal((3, 4)))
    G = rng.standard_normal((3, 4))
    before = G.copy()
    ln.backward(G)
    assert np.array_equal(G, before)


@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 16), C=st.integers(3, 12), seed=st.integers(0, 2**31 - 1),
       scale=st.floats(0.1, 100.0), shift=st.floats(-100.0, 100.0))
def test_random_shapes_match_the_long_form(N, C, seed, scale, shift):
    rng = np.random.default_rng(seed)
    ln = random_layer(C, rng)
    Z, G = shift + scale * rng.standard_normal((N, C)), rng.standard_normal((N, C))
    assert ln.forward(Z).shape == (N, C)
    dLdZ = ln.backward(G)
    ref = long_backward(G, Z, ln.BW, ln.eps)
    assert dLdZ.shape == (N, C) and ln.dLdBW.shape == ln.dLdBb.shape == (1, C)
    np.testing.assert_allclose(dLdZ, ref[0], rtol=1e-7, atol=1e-9 * np.abs(ref[0]).max())
    np.testing.assert_allclose(ln.dLdBW, ref[1], rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 6), C=st.integers(3, 6), seed=st.integers(0, 2**31 - 1))
def test_random_shapes_pass_the_gradient_check(N, C, seed):
    rng = np.random.default_rng(seed)
    assert max(check_gradients(random_layer(C, rng), rng.normal(0.0, 2.0, (N, C))).values()) < 1e-7


def test_output_of_a_row_does_not_depend_on_the_batch():
    rng = np.random.default_rng(3)
    ln = random_layer(6, rng)
    Z = rng.standard_normal((8, 6))
    full = ln.forward(Z)
    for i in (0, 5):
        np.testing.assert_allclose(ln.forward(Z[i:i + 1]), full[i:i + 1], rtol=1e-13, atol=1e-15)


def test_training_and_evaluation_agree():
    rng = np.random.default_rng(4)
    ln = random_layer(5, rng)
    Z = rng.standard_normal((4, 5))
    out = ln.forward(Z)
    ln.eval()
    assert np.array_equal(ln.forward(Z), out) and np.array_equal(ln.forward(Z, eval=True), out)
    ln.train()
    assert np.array_equal(ln.forward(Z, eval=False), out)


def test_invariant_to_shifting_and_scaling_a_sample():
    rng = np.random.default_rng(5)
    ln = random_layer(6, rng, eps=1e-12)   # eps is the only thing that is not scale-invariant
    Z = rng.standard_normal((4, 6))
    out = ln.forward(Z)
    Z[2] = 7 * Z[2] - 3
    np.testing.assert_allclose(ln.forward(Z), out, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_constant_row_stays_finite_and_gives_the_shift(dtype):
    rng = np.random.default_rng(6)
    ln = random_layer(4, rng)
    Z = np.array([[0.1, 0.1, 0.1, 0.1], [1.0, 2.0, 3.0, 5.0]], dtype)
    out = ln.forward(Z)
    dLdZ = ln.backward(np.ones_like(Z))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dLdZ))
    np.testing.assert_allclose(out[0], ln.Bb.ravel(), atol=1e-3)


def test_large_inputs_give_finite_values_and_no_warnings():
    rng = np.random.default_rng(7)
    ln = random_layer(5, rng)
    Z = 1e3 * rng.standard_normal((6, 5))
    Z[0] = 1e3
    out = ln.forward(Z)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(ln.backward(rng.standard_normal((6, 5)))))


def test_float32_stays_float32():
    rng = np.random.default_rng(8)
    ln = LayerNorm(4)
    Z = rng.standard_normal((3, 4)).astype(np.float32)
    out = ln.forward(Z)
    assert out.dtype == np.float32 and ln.backward(np.ones((3, 4), np.float32)).dtype == np.float32
    np.testing.assert_allclose(out, LayerNorm(4).forward(Z.astype(np.float64)), atol=1e-5)
    assert LayerNorm(4, dtype=np.float32).BW.dtype == np.float32


@pytest.mark.parametrize("bad", [np.ones((4, 2)), np.ones(3), np.ones((2, 3, 1))])
def test_wrong_input_is_rejected_without_state_change(bad):
    rng = np.random.default_rng(9)
    ln = random_layer(3, rng)
    ln.forward(rng.standard_normal((4, 3)))
    before = ln.NZ.copy()
    with pytest.raises(ValueError) as err:
        ln.forward(bad)
    assert "LayerNorm" in str(err.value) and str(bad.shape) in str(err.value)
    assert np.array_equal(ln.NZ, before)


def test_backward_before_forward_and_wrong_gradient_shape_are_rejected():
    with pytest.raises(RuntimeError, match="LayerNorm"):
        LayerNorm(3).backward(np.ones((2, 3)))
    ln = LayerNorm(3)
    ln.forward(np.arange(6.0).reshape(2, 3))
    ln.backward(np.ones((2, 3)))
    saved = ln.dLdBW.copy()
    with pytest.raises(ValueError, match=r"LayerNorm.*\(2, 3\).*\(3, 2\)"):
        ln.backward(np.ones((3, 2)))
    assert np.array_equal(ln.dLdBW, saved)


@pytest.mark.parametrize("shape", [(1, 5), (8, 7)])
def test_matches_torch_layer_norm(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    ln = random_layer(shape[1], rng)
    Z, G = rng.normal(1.0, 2.0, shape), rng.standard_normal(shape)
    x = torch.tensor(Z, requires_grad=True)
    w = torch.tensor(ln.BW.ravel(), requires_grad=True)
    b = torch.tensor(ln.Bb.ravel(), requires_grad=True)
    y = torch.nn.functional.layer_norm(x, (shape[1],), w, b, eps=1e-5)
    y.backward(torch.tensor(G))
    np.testing.assert_allclose(ln.forward(Z), y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ln.backward(G), x.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ln.dLdBW.ravel(), w.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ln.dLdBb.ravel(), b.grad.numpy(), rtol=1e-10)
