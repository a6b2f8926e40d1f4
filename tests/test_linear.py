"""mlpbook.nn.linear: Z = A Wᵀ + ι_N bᵀ and its backward pass (chapter 04_linear)."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlpbook
from mlpbook.gradcheck import check_gradients
from mlpbook.nn.linear import Linear
from mlpbook.nn.module import named_parameters

# source 000, §1.1: the homework's 4 x 2 example
A0 = np.array([[-4., -3.], [-2., -1.], [0., 1.], [2., 3.]])
W0 = np.array([[-2., -1.], [0., 1.], [2., 3.]])
b0 = np.array([[-1.], [0.], [1.]])
Z0 = np.array([[10., -3., -16.], [4., -1., -6.], [-2., 1., 4.], [-8., 3., 14.]])


def example_layer(**kwargs) -> Linear:
    layer = Linear(2, 3, weight_init="zeros", **kwargs)
    layer.W[:], layer.b[:] = W0, b0
    return layer


# ## Gradients

@pytest.mark.parametrize("N, C_in, C_out", [(1, 1, 1), (4, 2, 3), (5, 3, 1), (2, 7, 4), (3, 1, 5), (8, 6, 6)])
def test_backward_matches_central_difference(N, C_in, C_out):
    """Input, W and b gradients agree with central differences to 1e-7 in float64."""
    layer = Linear(C_in, C_out, rng=N * 100 + C_in * 10 + C_out)
    x = np.random.default_rng(C_out).standard_normal((N, C_in))
    errors = check_gradients(layer, x)
    assert set(errors) == {"input", "W", "b"}
    assert max(errors.values()) < 1e-7


def test_backward_matches_the_elementwise_chain_rule():
    """dLdA = dLdZ W, dLdW = dLdZᵀ A, dLdb = dLdZᵀ ι_N, against the sums of the derivation."""
    rng = np.random.default_rng(0)
    layer = Linear(3, 4, rng=1)
    A = rng.standard_normal((5, 3))
    G = rng.standard_normal((5, 4))
    layer.forward(A)
    dLdA = layer.backward(G)
    np.testing.assert_allclose(dLdA, np.einsum("nj,jk->nk", G, layer.W))
    np.testing.assert_allclose(layer.dLdW, np.einsum("nj,nk->jk", G, A))
    np.testing.assert_allclose(layer.dLdb, G.T @ np.ones((5, 1)))


def test_wrong_backward_is_detected_by_the_gradient_check():
    """A bias gradient averaged instead of summed fails the check (the check can fail)."""
    class Averages(Linear):
        def backward(self, dLdZ):
            dLdA = super().backward(dLdZ)
            self.dLdb = dLdZ.mean(axis=0).reshape(-1, 1)
            return dLdA

    with pytest.raises(AssertionError, match="b: relative error"):
        check_gradients(Averages(3, 2, rng=0), np.random.default_rng(1).standard_normal((4, 3)))


# ## The worked example

def test_worked_example_forward_matches_source_000():
    """Source 000 prints Z for its 4 x 2 example; the layer reproduces it exactly."""
    assert np.array_equal(example_layer().forward(A0), Z0)


def test_iota_form_equals_broadcasting():
    """The homework's A Wᵀ + ι_N bᵀ equals the broadcast A Wᵀ + bᵀ."""
    iota = np.ones((4, 1))
    assert np.array_equal(A0 @ W0.T + iota @ b0.T, example_layer().forward(A0))


def test_worked_example_backward_with_ones():
    """With dLdZ = 1: rows of dLdA are W's column sums, rows of dLdW are A's, dLdb = N."""
    layer = example_layer()
    layer.forward(A0)
    dLdA = layer.backward(np.ones((4, 3)))
    assert np.array_equal(dLdA, np.tile([0., 3.], (4, 1)))
    assert np.array_equal(layer.dLdW, np.tile([-4., 0.], (3, 1)))
    assert np.array_equal(layer.dLdb, [[4.], [4.], [4.]])


def test_worked_example_backward_with_dLdZ_equal_Z():
    """L = ½ΣZ², so dLdZ = Z: the values the chapter prints, computed by hand."""
    layer = example_layer()
    Z = layer.forward(A0)
    dLdA = layer.backward(Z)
    assert np.array_equal(dLdA, [[-52., -61.], [-20., -23.], [12., 15.], [44., 53.]])
    assert np.array_equal(layer.dLdW, [[-64., -60.], [20., 20.], [104., 100.]])
    assert np.array_equal(layer.dLdb, [[4.], [0.], [-4.]])


# ## Dtypes and arguments

def test_float32_layer_and_input_stay_float32():
    layer = Linear(3, 2, rng=0, dtype=np.float32)
    assert layer.W.dtype == layer.b.dtype == np.float32
    Z = layer.forward(np.ones((4, 3), np.float32))
    dLdA = layer.backward(np.ones((4, 2), np.float32))
    assert Z.dtype == dLdA.dtype == layer.dLdW.dtype == layer.dLdb.dtype == np.float32


def test_float32_input_through_float64_layer_gives_float32_output():
    layer = Linear(3, 2, rng=0)
    Z = layer.forward(np.ones((4, 3), np.float32))
    assert Z.dtype == np.float32
    assert layer.W.dtype == np.float64  # the parameters are not converted in place
    np.testing.assert_allclose(Z, layer.forward(np.ones((4, 3))), rtol=1e-6)


def test_integer_input_is_converted_to_float64():
    assert example_layer().forward(A0.astype(int)).dtype == np.float64


def test_integer_upstream_gradient_does_not_truncate_the_weights():
    """backward(int array) must not cast W to int (W has non-integer entries here)."""
    layer = Linear(2, 3, rng=0)
    layer.forward(A0)
    dLdA = layer.backward(np.ones((4, 3), dtype=int))
    np.testing.assert_allclose(dLdA, np.ones((4, 3)) @ layer.W)
    assert dLdA.dtype == np.float64


def test_backward_does_not_modify_its_argument():
    layer = Linear(2, 3, rng=0)
    layer.forward(A0)
    G = np.random.default_rng(0).standard_normal((4, 3))
    before = G.copy()
    layer.backward(G)
    assert np.array_equal(G, before)


def test_debug_keeps_dLdA():
    layer = Linear(2, 3, debug=True, rng=0)
    layer.forward(A0)
    dLdA = layer.backward(np.ones((4, 3)))
    assert np.array_equal(layer.dLdA, dLdA)
    plain = Linear(2, 3, rng=0)
    plain.forward(A0)
    plain.backward(np.ones((4, 3)))
    assert not hasattr(plain, "dLdA")



def test_needs_input_grad_false_skips_dLdA_and_keeps_parameter_gradients():
    """A first layer fed with data: backward returns None and stores the same dLdW, dLdb."""
    G = np.random.default_rng(4).standard_normal((4, 3))
    full, first = example_layer(), example_layer(needs_input_grad=False, debug=True)
    full.forward(A0), first.forward(A0)
    assert full.backward(G) is not None and first.backward(G) is None and first.dLdA is None
    assert np.array_equal(first.dLdW, full.dLdW) and np.array_equal(first.dLdb, full.dLdb)
    first.needs_input_grad = True                      # an attribute that may change at any time
    np.testing.assert_allclose(first.backward(G), G @ W0, rtol=1e-15)


@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5), st.sampled_from([np.float32, np.float64]))
@settings(max_examples=25, deadline=None)
def test_forward_equals_the_broadcast_formula_exactly(N, C_in, C_out, dtype):
    """Adding the bias in place gives the same bits as A Wᵀ + bᵀ, in the input's dtype."""
    layer = Linear(C_in, C_out, rng=N + C_in, dtype=dtype)
    A = np.random.default_rng(C_out).standard_normal((N, C_in)).astype(dtype)
    Z = layer.forward(A)
    assert Z.dtype == dtype
    assert np.array_equal(Z, A @ layer.W.T + layer.b.T)

def test_parameters_are_found_through_params():
    layer = Linear(2, 3, rng=0)
    assert [(p.name, p.value.shape) for p in named_parameters(layer)] == [("W", (3, 2)), ("b", (3, 1))]
    layer.forward(A0)
    layer.backward(np.ones((4, 3)))
    assert [p.grad.shape for p in named_parameters(layer)] == [(3, 2), (3, 1)]


def test_empty_batch():
    layer = Linear(2, 3, rng=0)
    assert layer.forward(np.zeros((0, 2))).shape == (0, 3)
    assert layer.backward(np.zeros((0, 3))).shape == (0, 2)
    assert not layer.dLdW.any() and not layer.dLdb.any()


def test_repr():
    assert repr(Linear(2, 3, rng=0)) == "Linear(2, 3)"


# ## Initialisation

def test_default_init_is_uniform_within_one_over_sqrt_C_in():
    layer = Linear(400, 300, rng=0)
    bound = 1 / np.sqrt(400)
    for arr in (layer.W, layer.b):
        assert np.abs(arr).max() <= bound
    assert np.abs(layer.W).max() > 0.99 * bound
    # a uniform variable on (-r, r) has variance r²/3
    assert abs(layer.W.var() - bound**2 / 3) < 0.02 * bound**2
    assert layer.b.any()


def test_float32_init_stays_within_the_bound():
    layer = Linear(7, 500, rng=1, dtype=np.float32)
    assert np.abs(layer.W).max() <= np.float32(1 / np.sqrt(7))


def test_same_seed_same_weights_and_different_seeds_differ():
    assert np.array_equal(Linear(5, 4, rng=3).W, Linear(5, 4, rng=3).W)
    assert np.array_equal(Linear(5, 4, rng=np.random.default_rng(3)).W, Linear(5, 4, rng=3).W)
    assert not np.array_equal(Linear(5, 4, rng=3).W, Linear(5, 4, rng=4).W)


def test_a_shared_generator_gives_different_layers():
    g = np.random.default_rng(0)
    assert not np.array_equal(Linear(5, 4, rng=g).W, Linear(5, 4, rng=g).W)


def test_package_seed_makes_default_init_reproducible():
    mlpbook.seed(123)
    first = Linear(5, 4)
    mlpbook.seed(123)
    second = Linear(5, 4)
    assert np.array_equal(first.W, second.W) and np.array_equal(first.b, second.b)


def test_init_leaves_numpy_global_state_untouched():
    """Building layers must not shift the np.random.seed sequence homework code relies on."""
    np.random.seed(11785)
    expected = np.random.rand(5)
    np.random.seed(11785)
    Linear(3, 4)
    Linear(3, 4, rng=1)
    Linear(3, 4, weight_init=lambda shape, g: g.standard_normal(shape))
    Linear(3, 4, weight_init="zeros")
    assert np.array_equal(np.random.rand(5), expected)


def test_zeros_option():
    layer = Linear(3, 4, weight_init="zeros", dtype=np.float32)
    assert layer.W.shape == (4, 3) and layer.b.shape == (4, 1)
    assert not layer.W.any() and not layer.b.any()
    assert layer.W.dtype == np.float32


def test_callable_weight_init_receives_shape_and_generator():
    seen = {}

    def init(shape, rng):
        seen["shape"], seen["rng"] = shape, rng
        return np.full(shape, 0.5)

    layer = Linear(3, 4, weight_init=init, rng=9, dtype=np.float32)
    assert seen["shape"] == (4, 3) and isinstance(seen["rng"], np.random.Generator)
    assert np.array_equal(layer.W, np.full((4, 3), 0.5)) and layer.W.dtype == np.float32
    assert not layer.b.any() and layer.b.shape == (4, 1)


def test_callable_weight_init_with_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"Linear: weight_init returned shape \(3, 4\), expected \(4, 3\)"):
        Linear(3, 4, weight_init=lambda shape, rng: np.zeros((3, 4)))


@pytest.mark.parametrize("weight_init", ["ones", 0, "xavier"])
def test_unknown_weight_init_is_refused(weight_init):
    with pytest.raises(ValueError, match="Linear: weight_init"):
        Linear(3, 4, weight_init=weight_init)


@pytest.mark.parametrize("features", [(0, 3), (3, 0), (-1, 2), (2.0, 3), (True, 3), ("2", 3)])
def test_bad_feature_counts_are_refused(features):
    with pytest.raises(ValueError, match="Linear: (in|out)_features must be a positive int"):
        Linear(*features)


def test_numpy_integer_feature_counts_are_accepted():
    assert Linear(np.int64(3), np.int32(2), rng=0).W.shape == (2, 3)


def test_non_floating_dtype_is_refused():
    with pytest.raises(TypeError, match="Linear: dtype must be a floating dtype"):
        Linear(3, 4, dtype=np.int64)


def test_bad_rng_is_refused():
    with pytest.raises(TypeError, match="rng must be"):
        Linear(3, 4, rng="seed")


# ## Bad input: clear errors and no state change

def _state(layer):
    return [getattr(layer, name, None) for name in ("A", "W", "b", "dLdW", "dLdb")]


def _snapshot(layer):
    return [None if v is None else v.copy() for v in _state(layer)]


def _unchanged(layer, snapshot):
    return all((a is None and b is None) or np.array_equal(a, b)
               for a, b in zip(_state(layer), snapshot))


@pytest.fixture
def used_layer():
    layer = Linear(2, 3, rng=0)
    layer.forward(A0)
    layer.backward(np.ones((4, 3)))
    return layer


@pytest.mark.parametrize("bad, message", [
    (np.ones(2), r"Linear\.forward: expected a 2-d array, got shape \(2,\)"),
    (np.ones((4, 2, 1)), r"Linear\.forward: expected a 2-d array, got shape \(4, 2, 1\)"),
    (np.ones((4, 3)), r"Linear\.forward: expected shape \(N, 2\), got \(4, 3\)"),
])
def test_forward_rejects_bad_input_without_changing_state(used_layer, bad, message):
    snapshot = _snapshot(used_layer)
    with pytest.raises(ValueError, match=message):
        used_layer.forward(bad)
    assert _unchanged(used_layer, snapshot)


def test_backward_before_forward_is_refused():
    layer = Linear(2, 3, rng=0)
    snapshot = _snapshot(layer)
    with pytest.raises(RuntimeError, match="Linear.backward called before forward"):
        layer.backward(np.ones((4, 3)))
    assert _unchanged(layer, snapshot)


@pytest.mark.parametrize("shape", [(4, 2), (3, 3), (4,), (4, 3, 1)])
def test_backward_rejects_wrong_dLdZ_shape_without_changing_state(used_layer, shape):
    snapshot = _snapshot(used_layer)
    message = f"Linear.backward: expected dLdZ of shape (4, 3) (the shape of forward's output), got {shape}"
    with pytest.raises(ValueError, match=re.escape(message)):
        used_layer.backward(np.ones(shape))
    assert _unchanged(used_layer, snapshot)


# ## Properties over random shapes

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6))


@settings(max_examples=30, deadline=None)
@given(shapes, st.integers(0, 2**32 - 1))
def test_property_gradient_check(shape, seed):
    N, C_in, C_out = shape
    rng = np.random.default_rng(seed)
    layer = Linear(C_in, C_out, rng=rng)
    errors = check_gradients(layer, rng.standard_normal((N, C_in)), seed=seed)
    assert max(errors.values()) < 1e-7


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(0, 2**32 - 1))
def test_property_shapes_and_formulas(shape, seed):
    N, C_in, C_out = shape
    rng = np.random.default_rng(seed)
    layer = Linear(C_in, C_out, rng=rng)
    A = rng.uniform(-1e3, 1e3, (N, C_in))
    G = rng.standard_normal((N, C_out))
    Z = layer.forward(A)
    assert Z.shape == (N, C_out)
    np.testing.assert_allclose(Z, np.einsum("nk,jk->nj", A, layer.W) + layer.b.ravel(), rtol=1e-12, atol=1e-9)
    dLdA = layer.backward(G)
    assert dLdA.shape == A.shape
    assert layer.dLdW.shape == layer.W.shape and layer.dLdb.shape == layer.b.shape
    np.testing.assert_allclose(layer.dLdb.ravel(), G.sum(axis=0), rtol=1e-12, atol=1e-12)
    # backward is linear in dLdZ
    dLdA2 = layer.backward(2 * G)
    np.testing.assert_allclose(dLdA2, 2 * dLdA, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(shapes, st.integers(0, 2**32 - 1))
def test_property_rows_are_independent(shape, seed):
    """Each output row depends on its own input row only: the batch is a stack of samples."""
    N, C_in, C_out = shape
    rng = np.random.default_rng(seed)
    layer = Linear(C_in, C_out, rng=rng)
    A = rng.standard_normal((N, C_in))
    Z = layer.forward(A)
    for n in range(N):
        np.testing.assert_allclose(layer.forward(A[n:n + 1]), Z[n:n + 1], rtol=1e-12, atol=1e-12)


# ## Parity with PyTorch

def test_forward_and_backward_match_torch_linear():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = Linear(5, 3, rng=1)
    A = rng.standard_normal((7, 5))
    G = rng.standard_normal((7, 3))
    Z = layer.forward(A)
    dLdA = layer.backward(G)

    At = torch.tensor(A, requires_grad=True)
    Wt = torch.tensor(layer.W, requires_grad=True)
    bt = torch.tensor(layer.b.ravel(), requires_grad=True)
    Zt = torch.nn.functional.linear(At, Wt, bt)
    Zt.backward(torch.tensor(G))
    np.testing.assert_allclose(Z, Zt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dLdA, At.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.dLdW, Wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.dLdb.ravel(), bt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_default_init_bound_matches_torch_nn_linear():
    """PyTorch's default nn.Linear init has the same bound 1/√C_in."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    ours = Linear(400, 300, rng=0)
    for t, a in ((ref.weight, ours.W), (ref.bias, ours.b)):
        t_max = t.detach().abs().max().item()
        assert t_max <= bound + 1e-7 and t_max > 0.98 * bound
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.98 * bound
