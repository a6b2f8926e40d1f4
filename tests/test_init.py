"""Tests of mlpbook.nn.init: fan conventions and the statistics of every initialiser.

Tolerances come from the sample size n: the sample mean of n draws with standard deviation
σ has standard error σ/√n, the sample standard deviation has relative standard error about
1/√(2n) for a normal and 0.45/√n for a uniform (Var(x²) = 4a⁴/45 for U(-a, a)). Every check
allows five standard errors, so a correct initialiser fails with probability below 1e-5 while
a wrong fan (fan_out for fan_in on a 400x250 array: a factor √1.6 in σ) fails by far.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.nn.init import (fans, he_normal, he_uniform, normal, uniform, xavier_normal,
                             xavier_uniform, zeros)
from mlpbook.nn.linear import Linear

SHAPE = (400, 250)  # C_out, C_in: fan_in 250, fan_out 400
N = SHAPE[0] * SHAPE[1]


def check_normal(W, std):
    assert abs(W.mean()) < 5 * std / math.sqrt(N)
    assert abs(W.std() / std - 1) < 5 / math.sqrt(2 * N)


def check_uniform(W, bound):
    std = bound / math.sqrt(3)
    assert np.all(np.abs(W) <= bound)
    assert np.abs(W).max() > bound * (1 - 10 / N)  # P(all draws inside) = (1 - 10/N)^N ≈ e^-10
    assert abs(W.mean()) < 5 * std / math.sqrt(N)
    assert abs(W.std() / std - 1) < 5 * 0.45 / math.sqrt(N)


def test_fans_of_linear_and_convolution_weights():
    assert fans((400, 250)) == (250, 400)
    assert fans((8, 4, 3, 3)) == (36, 72)
    for bad in ((5,), (), (3, 0)):
        with pytest.raises(ValueError, match="C_out, C_in"):
            fans(bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xavier_and_he_statistics(seed):
    fan_in, fan_out = 250, 400
    check_normal(xavier_normal(SHAPE, seed), math.sqrt(2 / (fan_in + fan_out)))
    check_uniform(xavier_uniform(SHAPE, seed), math.sqrt(6 / (fan_in + fan_out)))
    check_normal(he_normal(SHAPE, seed), math.sqrt(2 / fan_in))
    check_uniform(he_uniform(SHAPE, seed), math.sqrt(6 / fan_in))
    check_normal(xavier_normal(SHAPE, seed, gain=5 / 3), 5 / 3 * math.sqrt(2 / (fan_in + fan_out)))
    check_uniform(xavier_uniform(SHAPE, seed, gain=2.0), 2 * math.sqrt(6 / (fan_in + fan_out)))


def test_the_checks_catch_a_wrong_fan():
    with pytest.raises(AssertionError):
        check_normal(he_normal(SHAPE, 0), math.sqrt(2 / SHAPE[0]))  # fan_out instead of fan_in


def test_convolution_shapes_use_the_receptive_field():
    W = he_normal((64, 16, 5, 5), 0)
    n = W.size
    std = math.sqrt(2 / (16 * 25))
    assert abs(W.std() / std - 1) < 5 / math.sqrt(2 * n)


def test_normal_and_uniform_factories():
    check_normal(normal(0.01)(SHAPE, 0), 0.01)
    check_normal(normal(1.0)(SHAPE, 3), 1.0)
    W = normal(0.5, mean=2.0)(SHAPE, 0)
    assert abs(W.mean() - 2) < 5 * 0.5 / math.sqrt(N)
    check_uniform(uniform(0.3)(SHAPE, 0), 0.3)
    assert normal(0.01).__name__ == "normal(std=0.01)"
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            normal(bad)
        with pytest.raises(ValueError):
            uniform(bad)


def test_zeros():
    W = zeros((3, 4))
    assert W.shape == (3, 4) and not W.any()


def test_same_seed_same_weights_and_global_state_untouched():
    np.random.seed(0)
    expected = np.random.rand()
    np.random.seed(0)
    for init in (xavier_normal, xavier_uniform, he_normal, he_uniform, normal(0.1), uniform(0.1)):
        assert np.array_equal(init((5, 7), 11), init((5, 7), np.random.default_rng(11)))
    assert np.random.rand() == expected


@pytest.mark.parametrize("init", [zeros, normal(0.02), uniform(0.1), xavier_normal, xavier_uniform,
                                  he_normal, he_uniform])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_accepts_every_initialiser(init, dtype):
    layer = Linear(6, 3, weight_init=init, rng=0, dtype=dtype)
    assert layer.W.shape == (3, 6) and layer.W.dtype == dtype
    assert layer.b.shape == (3, 1) and not layer.b.any()
    assert layer.forward(np.ones((2, 6), dtype)).dtype == dtype


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=4), st.integers(0, 2**32 - 1))
def test_every_initialiser_returns_its_shape(shape, seed):
    for init in (xavier_normal, xavier_uniform, he_normal, he_uniform, normal(1.0), zeros):
        W = init(tuple(shape), seed)
        assert W.shape == tuple(shape) and W.dtype == np.float64 and np.all(np.isfinite(W))
    fan_in, fan_out = fans(shape)
    assert np.all(np.abs(he_uniform(tuple(shape), seed)) <= math.sqrt(6 / fan_in))
    assert np.all(np.abs(xavier_uniform(tuple(shape), seed)) <= math.sqrt(6 / (fan_in + fan_out)))


def test_fans_and_gains_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    for shape in ((400, 250), (8, 4, 3, 3), (7, 2, 5)):
        assert fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    # kaiming_normal_ (fan_in, relu) has std gain/sqrt(fan_in) with gain sqrt(2): ours
    W = torch.nn.init.kaiming_normal_(torch.empty(SHAPE), nonlinearity="relu").double().numpy()
    check_normal(W, math.sqrt(2 / 250))
    W = torch.nn.init.xavier_uniform_(torch.empty(SHAPE)).double().numpy()
    check_uniform(W, math.sqrt(6 / 650))
