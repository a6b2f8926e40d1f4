"""mlpbook.nn.activation: Identity, Sigmoid, Tanh, ReLU, GELU (chapter 05) and Softmax (chapter 06)."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlpbook.gradcheck import check_gradients, numerical_gradient, rel_error
from mlpbook.nn.activation import GELU, Identity, ReLU, Sigmoid, Softmax, Tanh

ALL = (Identity, Sigmoid, Tanh, ReLU, GELU, Softmax)
ELEMENTWISE = (Identity, Sigmoid, Tanh, ReLU, GELU)
SHAPES = [(1, 1), (1, 5), (4, 1), (3, 4), (7, 2), (2, 10)]

# the derivative f'(z) of each element-wise activation, written independently of the classes
_PHI = lambda z: 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))  # noqa: E731
DERIVATIVES = {
    Identity: lambda z: np.ones_like(z),
    Sigmoid: lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2,
    Tanh: lambda z: 1 / np.cosh(z) ** 2,
    ReLU: lambda z: (z > 0).astype(float),
    GELU: lambda z: _PHI(z) + z * np.exp(-z**2 / 2) / math.sqrt(2 * math.pi),
}


def away_from_kink(Z):
    """Move entries within 1e-3 of 0 (ReLU's kink) away from it."""
    Z = Z.copy()
    near = np.abs(Z) < 1e-3
    Z[near] = np.where(Z[near] < 0, -0.5, 0.5)
    return Z


def softmax_backward_jacobian_loop(A, dLdA):
    """Reference: one C x C Jacobian diag(a) - a a^T per sample."""
    return np.stack([g @ (np.diag(a) - np.outer(a, a)) for a, g in zip(A, dLdA)])


# ## Gradients

@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_backward_matches_central_difference(cls, shape):
    rng = np.random.default_rng(sum(shape))
    Z = away_from_kink(rng.standard_normal(shape) * 2)
    errors = check_gradients(cls(), Z)
    assert errors["input"] < 1e-7


@pytest.mark.parametrize("cls", ELEMENTWISE, ids=lambda c: c.__name__)
def test_backward_of_ones_is_the_derivative(cls):
    """backward(1) = f'(Z), compared with an independent formula."""
    Z = away_from_kink(np.linspace(-6, 6, 61).reshape(1, -1))
    layer = cls()
    layer.forward(Z)
    np.testing.assert_allclose(layer.backward(np.ones_like(Z)), DERIVATIVES[cls](Z), rtol=1e-12, atol=1e-15)


def test_relu_derivative_at_zero_is_zero():
    layer = ReLU()
    layer.forward(np.array([[-1.0, 0.0, -0.0, 2.0]]))
    np.testing.assert_array_equal(layer.backward(np.full((1, 4), 3.0)), [[0, 0, 0, 3]])


def test_relu_blocks_infinite_upstream_gradient_at_inactive_units():
    layer = ReLU()
    layer.forward(np.array([[-1.0, 2.0]]))
    np.testing.assert_array_equal(layer.backward(np.array([[np.inf, 1.0]])), [[0, 1]])



def test_relu_backward_gives_positive_zero_at_inactive_units():
    """Multiplying a negative gradient by the mask would give -0.0; backward returns 0.0."""
    layer = ReLU()
    layer.forward(np.array([[-1.0, 0.0, 2.0]]))
    dLdZ = layer.backward(np.array([[-3.0, -3.0, -3.0]]))
    np.testing.assert_array_equal(dLdZ, [[0, 0, -3]])
    assert not np.signbit(dLdZ[0, :2]).any()


def test_relu_backward_propagates_nan_at_active_units_and_keeps_extreme_values():
    layer = ReLU()
    layer.forward(np.array([[-1.0, 2.0, 3.0]], np.float32))
    out = layer.backward(np.array([[np.nan, np.nan, 1.0]], np.float32))
    assert out[0, 0] == 0 and np.isnan(out[0, 1]) and out[0, 2] == 1
    big = np.full((1, 3), 3e38, np.float32)                # finite, but their sum is not
    np.testing.assert_array_equal(layer.backward(big), np.array([[0, 3e38, 3e38]], np.float32))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble, ">f4", np.int64])
def test_relu_backward_is_where_for_every_dtype_and_layout(dtype):
    """Bit selection where an unsigned integer of the size exists, np.where otherwise; any strides."""
    layer = ReLU()
    layer.forward(np.array([[-1.0, 0.0, 2.0], [3.0, -4.0, 5.0]]))
    G = np.array([[7.0, -1.0, -0.0], [-2.0, 9.0, 1.5]]).astype(dtype)
    for g in (G, np.asfortranarray(G), G.T.copy().T):
        out = layer.backward(g)
        expected = np.where(layer.A > 0, g, 0)
        assert out.dtype.newbyteorder("=") == expected.dtype and np.array_equal(out, expected)
        assert np.array_equal(np.signbit(out), np.signbit(expected))


@given(arrays(np.float64, (5, 7), elements=st.floats(-1e3, 1e3)),
       arrays(np.float64, (5, 7), elements=st.floats(-1e3, 1e3)), st.sampled_from([np.float32, np.float64]))
@settings(max_examples=40, deadline=None)
def test_relu_backward_equals_where(Z, G, dtype):
    """The bit selection is np.where(A > 0, dLdA, 0), bit for bit, in the input's dtype."""
    layer = ReLU()
    layer.forward(Z.astype(dtype))
    out = layer.backward(G.astype(dtype))
    expected = np.where(Z.astype(dtype) > 0, G.astype(dtype), 0)
    assert out.dtype == dtype and np.array_equal(out, expected)
    assert np.array_equal(out.view(np.uint8), expected.view(np.uint8))

def test_relu_backward_without_upstream_gradient_fails_the_check():
    """Source 000's first form, dLdZ = 1[Z > 0], is not a gradient."""
    from mlpbook.gradcheck import GradientCheckError

    class Wrong(ReLU):
        def backward(self, dLdA):
            return (self.A > 0).astype(float)

    Z = away_from_kink(np.random.default_rng(0).standard_normal((3, 4)))
    with pytest.raises(GradientCheckError):
        check_gradients(Wrong(), Z)


# ## Worked examples (source 000)

Z_TABLE = np.array([[-4.0, -3.0], [-2.0, -1.0], [0.0, 1.0], [2.0, 3.0]])


def test_sigmoid_table_is_the_exact_values_truncated_to_two_decimals():
    A = Sigmoid().forward(Z_TABLE)
    np.testing.assert_array_equal(np.trunc(A * 100) / 100,
                                  [[0.01, 0.04], [0.11, 0.26], [0.50, 0.73], [0.88, 0.95]])


def test_tanh_table_is_the_exact_values_truncated_to_two_decimals():
    A = Tanh().forward(Z_TABLE)
    np.testing.assert_array_equal(np.trunc(A * 100) / 100,
                                  [[-0.99, -0.99], [-0.96, -0.76], [0.00, 0.76], [0.96, 0.99]])


def test_relu_table():
    np.testing.assert_array_equal(ReLU().forward(Z_TABLE), [[0, 0], [0, 0], [0, 1], [2, 3]])


def test_softmax_example_of_source_000():
    layer = Softmax()
    A = layer.forward(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]))
    dLdZ = layer.backward(np.array([[0.1, 0.2, 0.7], [0.1, 0.2, 0.7]]))
    np.testing.assert_allclose(A, [[0.09003057, 0.24472847, 0.66524096]] * 2, atol=5e-9)
    np.testing.assert_allclose(dLdZ, [[-0.03813852, -0.0791984, 0.11733692]] * 2, atol=5e-9)


def test_gelu_is_the_exact_erf_form():
    z = np.linspace(-5, 5, 11).reshape(1, -1)
    np.testing.assert_allclose(GELU().forward(z), z * _PHI(z), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(GELU().forward(np.array([[1.0]])), [[0.8413447460685429]], rtol=1e-15)


def test_sigmoid_matches_expit():
    from scipy.special import expit
    z = np.linspace(-700, 700, 2801).reshape(1, -1)
    np.testing.assert_allclose(Sigmoid().forward(z), expit(z), rtol=1e-14, atol=1e-300)


# ## Softmax

def test_softmax_backward_equals_the_jacobian_loop():
    rng = np.random.default_rng(3)
    layer = Softmax()
    A = layer.forward(rng.standard_normal((20, 9)) * 4)
    G = rng.standard_normal((20, 9))
    np.testing.assert_allclose(layer.backward(G), softmax_backward_jacobian_loop(A, G), rtol=1e-12, atol=1e-16)


def test_softmax_backward_builds_no_jacobian():
    """Peak memory of backward stays a few N x C arrays; one C x C Jacobian per sample would be
    N * C times larger (here 4 * 2000 * 2000 * 8 B = 128 MB)."""
    import tracemalloc
    N, C = 4, 2000
    rng = np.random.default_rng(0)
    layer = Softmax()
    layer.forward(rng.standard_normal((N, C)))
    G = rng.standard_normal((N, C))
    tracemalloc.start()
    try:
        layer.backward(G)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * N * C * 8, f"backward allocated {peak} bytes at its peak"


def test_softmax_jacobian_matches_central_differences():
    z = np.array([0.3, -1.2, 2.0, 0.0, 0.7])

    def output(m):
        return lambda v: Softmax().forward(v[None, :])[0, m]

    a = Softmax().forward(z[None, :])[0]
    J = np.stack([numerical_gradient(output(m), z.copy()) for m in range(5)])
    assert rel_error(J, np.diag(a) - np.outer(a, a)) < 1e-9


logit_rows = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 8)),
                    elements=st.floats(-50, 50, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(Z=logit_rows, shift=st.floats(-500, 500))
def test_softmax_rows_sum_to_one_and_are_shift_invariant(Z, shift):
    A = Softmax().forward(Z)
    np.testing.assert_allclose(A.sum(axis=1), 1, rtol=1e-12)
    assert np.all(A >= 0)
    np.testing.assert_allclose(Softmax().forward(Z + shift), A, rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(Z=logit_rows, seed=st.integers(0, 2**16))
def test_softmax_gradient_rows_sum_to_zero(Z, seed):
    """J 1 = 0, so every row of dLdZ sums to 0 whatever dLdA is."""
    layer = Softmax()
    layer.forward(Z)
    G = np.random.default_rng(seed).standard_normal(Z.shape)
    dLdZ = layer.backward(G)
    np.testing.assert_allclose(dLdZ.sum(axis=1), 0, atol=1e-12 * (1 + np.abs(G).sum()))


@settings(max_examples=30, deadline=None)
@given(Z=arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 6)),
                elements=st.floats(-4, 4, allow_nan=False)),
       cls=st.sampled_from(ALL))
def test_backward_matches_central_difference_on_random_shapes(Z, cls):
    """|z| <= 4: deeper in saturation, round-off in the central difference (eps |f| / h)
    exceeds 1e-7 of the tiny derivative, and the check would fail the estimate, not backward."""
    Z = away_from_kink(Z)
    assert check_gradients(cls(), Z)["input"] < 1e-7


# ## Dtypes, extreme inputs

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_output_and_gradient_keep_the_input_dtype(cls, dtype):
    Z = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    layer = cls()
    A = layer.forward(Z)
    dLdZ = layer.backward(np.ones_like(A))
    assert A.dtype == dtype and dLdZ.dtype == dtype


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_integer_input_becomes_float64(cls):
    A = cls().forward(np.array([[1, 2], [3, -4]]))
    assert A.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_extreme_inputs_give_finite_values_without_warnings(cls, dtype):
    Z = np.array([[-1e3, -100.0, -1.0, 0.0, 1.0, 100.0, 1e3],
                  [1e3, 1e3, 1e3, 1e3, 1e3, 1e3, 1e3],
                  [-1e3, -1e3, -1e3, -1e3, -1e3, -1e3, -1e3]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = cls()
        A = layer.forward(Z)
        dLdZ = layer.backward(np.linspace(-1, 1, Z.size, dtype=dtype).reshape(Z.shape))
    assert np.isfinite(A).all() and np.isfinite(dLdZ).all()


def test_extreme_values_are_correct():
    z = np.array([[-1e3, 0.0, 1e3]])
    for dtype in (np.float32, np.float64):
        np.testing.assert_array_equal(Sigmoid().forward(z.astype(dtype)), [[0, 0.5, 1]])
        np.testing.assert_array_equal(Tanh().forward(z.astype(dtype)), [[-1, 0, 1]])
        np.testing.assert_array_equal(GELU().forward(z.astype(dtype)), [[0, 0, 1e3]])
        np.testing.assert_array_equal(Softmax().forward(z.astype(dtype)), [[0, 0, 1]])


# ## Bad input

@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), ()], ids=str)
def test_wrong_rank_is_refused_and_changes_nothing(cls, shape):
    layer = cls()
    A_before = layer.forward(np.ones((2, 3))).copy()
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.forward.*{shape!r}".replace("(", r"\(").replace(")", r"\)")):
        layer.forward(np.ones(shape))
    np.testing.assert_array_equal(layer.A, A_before)
    assert layer.backward(np.ones((2, 3))).shape == (2, 3)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_backward_before_forward_is_refused(cls):
    layer = cls()
    with pytest.raises(RuntimeError, match=rf"{cls.__name__}\.backward called before forward.*\(2, 3\)"):
        layer.backward(np.ones((2, 3)))
    assert layer.A is None


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_backward_with_wrong_shape_is_refused(cls):
    layer = cls()
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.backward.*\(2, 3\).*\(3, 2\)"):
        layer.backward(np.ones((3, 2)))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_backward_does_not_modify_its_argument(cls):
    layer = cls()
    layer.forward(np.random.default_rng(0).standard_normal((3, 4)))
    G = np.random.default_rng(1).standard_normal((3, 4))
    G_copy = G.copy()
    dLdZ = layer.backward(G)
    dLdZ += 1  # the result must not alias the argument
    np.testing.assert_array_equal(G, G_copy)


def test_activations_have_no_parameters():
    for cls in ALL:
        assert cls().parameters() == []


# ## Parity with PyTorch

TORCH_FUNCTIONS = {
    Sigmoid: lambda torch, z: torch.sigmoid(z),
    Tanh: lambda torch, z: torch.tanh(z),
    ReLU: lambda torch, z: torch.relu(z),
    GELU: lambda torch, z: torch.nn.functional.gelu(z, approximate="none"),
    Softmax: lambda torch, z: torch.softmax(z, dim=1),
    Identity: lambda torch, z: z * 1,
}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_forward_and_backward_match_torch(cls):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    Z = away_from_kink(rng.standard_normal((5, 7)) * 3)
    Z[0, :3] = [-1e3, 1e3, 0.5]
    G = rng.standard_normal(Z.shape)
    z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    a = TORCH_FUNCTIONS[cls](torch, z)
    a.backward(torch.tensor(G))
    layer = cls()
    np.testing.assert_allclose(layer.forward(Z), a.detach().numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(layer.backward(G), z.grad.numpy(), rtol=1e-10, atol=1e-14)
