"""mlpbook.gradcheck: numerical gradients, the relative error, and the layer checker."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mlpbook.gradcheck import GradientCheckError, check_gradients, numerical_gradient, rel_error
from mlpbook.nn.module import Module, check_grad_shape, check_input


class ScaleShift(Module):
    """Z = A * gamma + beta, with a correct backward (and a switch to break it)."""

    params = {"gamma": "dLdgamma", "beta": "dLdbeta"}

    def __init__(self, C, rng, bug=None):
        self.gamma, self.beta = rng.standard_normal((1, C)), rng.standard_normal((1, C))
        self.bug, self.A = bug, None

    def forward(self, A):
        self.A = check_input(self, "forward", A, ndim=2, features=self.gamma.shape[1])
        return self.A * self.gamma + self.beta

    def backward(self, dLdZ):
        dLdZ = check_grad_shape(self, "dLdZ", dLdZ, None if self.A is None else self.A.shape)
        self.dLdgamma = np.sum(dLdZ * self.A, axis=0, keepdims=True)
        self.dLdbeta = dLdZ[:1] if self.bug == "beta" else np.sum(dLdZ, axis=0, keepdims=True)
        dLdA = dLdZ * self.gamma
        return 2 * dLdA if self.bug == "input" else dLdA


class SquaredNorm:
    """A loss-like object: forward returns a scalar, backward takes no argument."""

    def forward(self, A):
        self.A = A
        return np.float64(np.sum(A**2))

    def backward(self):
        return 2 * self.A


def test_numerical_gradient_of_a_sum_of_squares_matches_2x():
    for point, expected in (([3.0, 4.0], [6, 8]), ([0.0, 2.0], [0, 4]), ([3.0, 0.0], [6, 0])):
        x = np.array(point)
        np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(v**2), x), expected, atol=1e-8)


@given(st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)))
@settings(max_examples=25, deadline=None)
def test_numerical_gradient_handles_any_shape_and_restores_x(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape)
    before = x.copy()
    g = numerical_gradient(lambda v: np.sum(np.sin(v)), x)
    assert g.shape == x.shape
    np.testing.assert_allclose(g, np.cos(x), rtol=1e-8, atol=1e-9)
    assert np.array_equal(x, before)


def test_numerical_gradient_refuses_integer_arrays():
    with pytest.raises(TypeError, match="int64.*cannot hold x \\+ h"):
        numerical_gradient(lambda v: np.sum(v**2), np.array([3, 4]))


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0])
    calls = []

    def f(v):
        calls.append(1)
        if len(calls) == 2:
            raise ZeroDivisionError
        return v.sum()

    with pytest.raises(ZeroDivisionError):
        numerical_gradient(f, x)
    assert x.tolist() == [1.0, 2.0]


def test_numerical_gradient_is_second_order_accurate():
    """Halving h divides the central difference's error by about four."""
    x = np.array([1.0])
    errors = [abs(numerical_gradient(lambda v: np.exp(v).sum(), x, h)[0] - np.e) for h in (1e-2, 5e-3)]
    assert 3.5 < errors[0] / errors[1] < 4.5


def test_rel_error_properties():
    a = np.array([1.0, -2.0, 3.0])
    assert rel_error(a, a) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(a, np.zeros(3)) == 1.0
    assert rel_error(a, -a) == 1.0
    assert rel_error(a, a * (1 + 1e-9)) < 1e-9
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(a, a[:2])


def test_check_gradients_passes_a_correct_layer_and_reports_every_array():
    rng = np.random.default_rng(0)
    layer = ScaleShift(3, rng)
    errors = check_gradients(layer, rng.standard_normal((5, 3)))
    assert set(errors) == {"input", "gamma", "beta"}
    assert max(errors.values()) < 1e-9


@pytest.mark.parametrize("bug, name", [("beta", "beta"), ("input", "input")])
def test_check_gradients_catches_a_wrong_backward(bug, name):
    rng = np.random.default_rng(0)
    with pytest.raises(GradientCheckError, match=f"ScaleShift backward is wrong:\\s+{name}: relative error") as err:
        check_gradients(ScaleShift(3, rng, bug=bug), rng.standard_normal((5, 3)))
    assert "worst entry" in str(err.value) and "central differences give" in str(err.value)


def test_check_gradients_leaves_input_and_parameters_unchanged():
    rng = np.random.default_rng(1)
    layer, x = ScaleShift(2, rng), rng.standard_normal((4, 2))
    before = [x.copy(), layer.gamma.copy(), layer.beta.copy()]
    check_gradients(layer, x)
    for a, b in zip(before, [x, layer.gamma, layer.beta]):
        assert np.array_equal(a, b)


def test_check_gradients_handles_losses_with_a_scalar_forward():
    errors = check_gradients(SquaredNorm(), np.random.default_rng(2).standard_normal((3, 4)))
    assert errors["input"] < 1e-9


def test_check_gradients_finds_parameters_inside_a_model():
    rng = np.random.default_rng(3)

    class Two(Module):
        def __init__(self):
            self.layers = [ScaleShift(3, rng), ScaleShift(3, rng)]

        def forward(self, A):
            return self.layers[1].forward(self.layers[0].forward(A))

        def backward(self, dLdZ):
            return self.layers[0].backward(self.layers[1].backward(dLdZ))

    errors = check_gradients(Two(), rng.standard_normal((4, 3)))
    assert set(errors) == {"input", "layers.0.gamma", "layers.0.beta", "layers.1.gamma", "layers.1.beta"}
    assert max(errors.values()) < 1e-9


def test_check_gradients_refuses_low_precision_input():
    with pytest.raises(TypeError, match="float64"):
        check_gradients(SquaredNorm(), np.ones((2, 2), dtype=np.float32))


class ShiftThenCenter(ScaleShift):
    """beta cannot change the output (each feature's batch mean is subtracted): dL/dbeta = 0."""

    def forward(self, A):
        Z = super().forward(A)
        return Z - Z.mean(axis=0, keepdims=True)

    def backward(self, dLdZ):
        return super().backward(dLdZ - dLdZ.mean(axis=0, keepdims=True))


def test_a_parameter_whose_true_gradient_is_zero_passes():
    rng = np.random.default_rng(4)
    layer = ShiftThenCenter(3, rng)
    errors = check_gradients(layer, rng.standard_normal((6, 3)))
    assert np.abs(layer.dLdbeta).max() < 1e-12 and errors["beta"] < 1e-7


def test_a_wrong_small_gradient_is_still_caught():
    """The noise floor is tiny: a gradient of 1e-6 where the truth is 0 fails."""
    rng = np.random.default_rng(5)

    class Wrong(ShiftThenCenter):
        def backward(self, dLdZ):
            dLdA = super().backward(dLdZ)
            self.dLdbeta = self.dLdbeta + 1e-6
            return dLdA

    with pytest.raises(GradientCheckError, match="beta"):
        check_gradients(Wrong(3, rng), rng.standard_normal((6, 3)))
