"""Tests of mlpbook.nn.dropout: inverted dropout, its backward pass, train/eval, randomness."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.gradcheck import GradientCheckError, check_gradients
from mlpbook.models.mlp import Sequential
from mlpbook.nn.dropout import Dropout
from mlpbook.nn.linear import Linear


class FixedMask(Dropout):
    """Dropout whose generator is re-seeded before every forward: the same mask on every call."""

    def __init__(self, p, seed=0):
        super().__init__(p)
        self.seed = seed

    def forward(self, x, train=None):
        self.rng = np.random.default_rng(self.seed)
        return super().forward(x, train)


class GivenMask:
    """A stand-in generator whose binomial draw returns a given 0/1 array (for torch parity)."""

    def __init__(self, mask):
        self.mask = mask

    def binomial(self, n, p, size):
        assert n == 1 and tuple(size) == self.mask.shape
        return self.mask




def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ## Forward and backward

@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_backward_with_fixed_mask_matches_central_differences(p):
    errors = check_gradients(FixedMask(p), randn(6, 9))
    assert errors["input"] < 1e-9


def test_backward_without_rescaling_fails_the_gradient_check():
    """The homework's delta * mask: relative error exactly p / (2 - p)."""

    class HomeworkBackward(FixedMask):
        def backward(self, delta):
            return delta * self.mask

    with pytest.raises(GradientCheckError, match="HomeworkBackward"):
        check_gradients(HomeworkBackward(0.5), randn(4, 5))
    error = check_gradients(HomeworkBackward(0.25), randn(4, 5), tol=1.0)["input"]
    assert np.isclose(error, 0.25 / 1.75, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       p=st.floats(0.0, 0.95), seed=st.integers(0, 2**32 - 1))
def test_forward_zeroes_or_rescales_and_backward_uses_the_same_mask(shape, p, seed):
    x, delta = randn(*shape, seed=seed % 1000), randn(*shape, seed=seed % 1000 + 1)
    layer = Dropout(p, rng=seed)
    y = layer.forward(x, train=True)
    assert y.shape == x.shape and layer.mask.shape == x.shape
    assert set(np.unique(layer.mask)) <= {0.0, 1.0}
    np.testing.assert_allclose(y, np.where(layer.mask == 1, x / (1 - p), 0.0), rtol=1e-15)
    np.testing.assert_allclose(layer.backward(delta), delta * layer.mask / (1 - p), rtol=1e-15)


def test_p_zero_keeps_everything():
    x = randn(3, 4)
    layer = Dropout(0.0, rng=0)
    assert np.array_equal(layer.forward(x, train=True), x) and np.all(layer.mask == 1)


# ## Statistics, with tolerances from the binomial distribution

@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_kept_fraction_is_one_minus_p(p):
    n = 200_000
    layer = Dropout(p, rng=123)
    layer.forward(np.ones((n // 100, 100)), train=True)
    kept = layer.mask.sum()
    sd = np.sqrt(n * p * (1 - p))  # standard deviation of a Binomial(n, 1 - p) count
    assert abs(kept - n * (1 - p)) < 5 * sd


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mean_of_the_output_is_preserved(p):
    """E[Y] = X; the mean of Y over n entries has sd sqrt(p/(1-p) * sum(X²)) / n."""
    x = randn(2000, 100, seed=4) + 0.5
    y = Dropout(p, rng=7).forward(x, train=True)
    sd = np.sqrt(p / (1 - p) * np.sum(x**2)) / x.size
    assert abs(y.mean() - x.mean()) < 5 * sd


# ## Train and eval

def test_eval_is_the_identity_and_backward_passes_the_gradient_through():
    x, delta = randn(4, 6), randn(4, 6, seed=1)
    layer = Dropout(0.5, rng=0).eval()
    y = layer.forward(x)
    assert np.array_equal(y, x) and layer.mask is None
    assert np.array_equal(layer.backward(delta), delta)
    assert np.array_equal(Dropout(0.5).forward(x, train=False), x)


def test_explicit_train_argument_wins_over_the_flag():
    x = np.ones((50, 50))
    layer = Dropout(0.5, rng=0).eval()
    assert np.any(layer.forward(x, train=True) == 0)
    layer.train()
    assert np.array_equal(layer.forward(x, train=False), x)


def test_model_train_and_eval_reach_the_dropout_layer():
    x = randn(8, 5)
    model = Sequential(Linear(5, 30, rng=0), Dropout(0.5, rng=1), Linear(30, 2, rng=2))
    model.eval()
    assert not model.layers[1].training
    first = model.forward(x)
    assert np.array_equal(first, model.forward(x))
    assert np.array_equal(model.layers[1].forward(x), x)
    model.train()
    assert model.layers[1].training
    assert not np.array_equal(model.forward(x), model.forward(x))


def test_default_is_training_mode():
    assert Dropout(0.5).training
    assert np.any(Dropout(0.5, rng=0).forward(np.ones((20, 20))) == 0)


# ## Randomness

def test_global_seed_reproduces_the_homework_masks():
    """The homework draws np.random.binomial(1, 1 - p, x.shape) after np.random.seed."""
    x = randn(5, 7)
    np.random.seed(11785)
    expected_mask = np.random.binomial(1, 1 - 0.3, x.shape)
    expected = x * expected_mask * 1 / (1 - 0.3)
    np.random.seed(11785)
    layer = Dropout(0.3)
    y = layer.forward(x, train=True)
    assert np.array_equal(layer.mask, expected_mask)
    assert np.array_equal(y, expected)


def test_explicit_rng_is_independent_of_the_global_state():
    x = np.ones((10, 10))
    np.random.seed(0)
    a = Dropout(0.5, rng=42).forward(x, train=True)
    state = np.random.get_state()[1].copy()
    np.random.seed(1)
    b = Dropout(0.5, rng=42).forward(x, train=True)
    assert np.array_equal(a, b)
    np.random.seed(0)
    Dropout(0.5, rng=np.random.default_rng(3)).forward(x, train=True)
    assert np.array_equal(state, np.random.get_state()[1])


def test_an_int_seed_is_used_once_so_masks_change_between_calls():
    layer = Dropout(0.5, rng=42)
    x = np.ones((10, 10))
    assert not np.array_equal(layer.forward(x), layer.forward(x))


def test_a_generator_is_shared_not_copied():
    gen = np.random.default_rng(9)
    layer = Dropout(0.5, rng=gen)
    assert layer.rng is gen


# ## Dtypes and bad input

def test_float32_is_preserved():
    x = randn(4, 5).astype(np.float32)
    layer = Dropout(0.3, rng=0)
    y = layer.forward(x, train=True)
    assert y.dtype == layer.mask.dtype == np.float32
    assert layer.backward(np.ones_like(x)).dtype == np.float32
    np.testing.assert_allclose(y, np.where(layer.mask == 1, x / np.float32(0.7), 0), rtol=1e-6)


def test_integer_input_becomes_float64():
    assert Dropout(0.5, rng=0).forward(np.ones((3, 3), dtype=int)).dtype == np.float64


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_p_outside_zero_one_is_refused(p):
    with pytest.raises(ValueError, match=r"Dropout.*\[0, 1\)"):
        Dropout(p)


def test_backward_before_forward_names_the_layer():
    with pytest.raises(RuntimeError, match="Dropout.backward called before forward"):
        Dropout(0.5).backward(np.ones((2, 3)))


def test_delta_of_the_wrong_shape_names_the_layer_and_shapes_and_changes_nothing():
    layer = Dropout(0.5, rng=0)
    layer.forward(np.ones((2, 3)))
    mask = layer.mask.copy()
    with pytest.raises(ValueError, match=r"Dropout\.backward.*\(2, 3\).*\(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    assert np.array_equal(layer.mask, mask)


def test_backward_does_not_modify_its_argument():
    layer = Dropout(0.5, rng=0)
    layer.forward(np.ones((4, 4)))
    delta = randn(4, 4)
    before = delta.copy()
    layer.backward(delta)
    assert np.array_equal(delta, before)


# ## Parity with PyTorch

@pytest.mark.parametrize("p", [0.2, 0.5])
def test_forward_and_backward_match_torch_given_the_same_mask(p):
    torch = pytest.importorskip("torch")
    x = randn(16, 32) + 3.0  # no zero inputs, so the mask can be read off torch's output
    delta = randn(16, 32, seed=1)
    torch.manual_seed(0)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.dropout(xt, p=p, training=True)
    yt.backward(torch.tensor(delta))
    mask = (yt.detach().numpy() != 0).astype(np.float64)

    layer = Dropout(p)
    layer.rng = GivenMask(mask)
    y = layer.forward(x, train=True)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.backward(delta), xt.grad.numpy(), rtol=1e-12)


def test_eval_matches_torch():
    torch = pytest.importorskip("torch")
    x = randn(3, 4)
    module = torch.nn.Dropout(0.5).eval()
    np.testing.assert_array_equal(Dropout(0.5).eval().forward(x), module(torch.tensor(x)).numpy())
