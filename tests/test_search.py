"""Tests of mlpbook.search: log-uniform sampling, random search (configurations drawn up front
from the seed, diverged trials scored NaN, columns returned) and ranking of the trials."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.search import log_uniform, random_search, top_trials
from mlpbook.train import DivergenceError

# ---------------------------------------------------------------- log_uniform


@settings(max_examples=40, deadline=None)
@given(st.floats(-12, 6), st.floats(0, 8), st.integers(0, 2**32 - 1))
def test_log_uniform_stays_in_range(log_low, width, seed):
    """Every draw lies in [low, high], for ranges from 1e-12 up to 1e14, also of width zero."""
    low, high = 10.0 ** log_low, 10.0 ** (log_low + width)
    x = log_uniform(low, high, size=500, rng=seed)
    assert x.shape == (500,) and x.dtype == np.float64
    assert np.all((x >= low) & (x <= high))


def test_log_uniform_gives_every_decade_the_same_share():
    x = log_uniform(1e-5, 1e1, size=600_000, rng=1)
    shares = np.histogram(np.log10(x), bins=np.arange(-5, 2))[0] / x.size
    np.testing.assert_allclose(shares, 1 / 6, atol=0.003)


def test_log_uniform_probability_of_an_interval_is_the_log_ratio():
    """P(c <= x <= d) = log(d / c) / log(high / low)."""
    x = log_uniform(2e-3, 0.5, size=400_000, rng=2)
    c, d = 1e-2, 4e-2
    expected = np.log(d / c) / np.log(0.5 / 2e-3)
    assert abs(np.mean((x >= c) & (x <= d)) - expected) < 0.003


def test_log_uniform_single_draw_and_shapes():
    x = log_uniform(1e-3, 1.0, rng=0)
    assert np.ndim(x) == 0 and 1e-3 <= x <= 1.0
    assert log_uniform(1e-3, 1.0, size=(2, 3), rng=0).shape == (2, 3)


def test_log_uniform_is_reproducible_and_leaves_global_state_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = log_uniform(1e-4, 1.0, size=10, rng=7)
    b = log_uniform(1e-4, 1.0, size=10, rng=np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert np.array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.5), (1e-3, np.inf), (np.nan, 1.0)])
def test_log_uniform_rejects_bad_ranges(low, high):
    with pytest.raises(ValueError, match="log_uniform"):
        log_uniform(low, high, size=3, rng=0)


# ---------------------------------------------------------------- random_search


def quadratic(a, b):
    return -(np.log10(a) + 2) ** 2 - (np.log10(b) - 1) ** 2


def test_random_search_returns_columns_in_trial_order():
    calls = []

    def objective(lr, width):
        calls.append((lr, width))
        return lr * width

    space = {"lr": (1e-4, 1e-1), "width": lambda n, rng: rng.choice([16, 32, 64], n)}
    res = random_search(objective, space, 12, rng=0)
    assert set(res) == {"lr", "width", "score"}
    assert all(v.shape == (12,) for v in res.values()) and res["score"].dtype == np.float64
    assert calls == list(zip(res["lr"].tolist(), res["width"].tolist()))
    np.testing.assert_allclose(res["score"], res["lr"] * res["width"])
    assert set(res["width"].tolist()) <= {16, 32, 64}
    assert np.all((res["lr"] >= 1e-4) & (res["lr"] <= 1e-1))


def test_objective_receives_python_scalars():
    seen = []
    random_search(lambda a, k: seen.append((type(a), type(k))) or 0.0,
                  {"a": (1e-2, 1.0), "k": lambda n, rng: rng.integers(1, 5, n)}, 3, rng=0)
    assert seen == [(float, int)] * 3


def test_configurations_depend_only_on_the_seed():
    """The objective's own use of randomness cannot change which configurations are tried."""
    space = {"a": (1e-4, 1.0), "b": (1e-1, 1e3)}
    quiet = random_search(quadratic, space, 20, rng=5)
    gen = np.random.default_rng(5)

    def greedy(a, b):
        gen.standard_normal(1000)  # an objective drawing from the very generator of the search
        return quadratic(a, b)

    noisy = random_search(greedy, space, 20, rng=gen)
    for name in space:
        assert np.array_equal(quiet[name], noisy[name])


def test_random_search_finds_the_optimum_of_a_smooth_function():
    res = random_search(quadratic, {"a": (1e-4, 1.0), "b": (1e-1, 1e3)}, 300, rng=0)
    best = top_trials(res, k=1)
    assert abs(np.log10(best["a"][0]) + 2) < 0.2 and abs(np.log10(best["b"][0]) - 1) < 0.2


def test_a_diverged_trial_scores_nan_and_the_search_goes_on():
    def objective(lr):
        if lr > 0.1:
            raise DivergenceError("the loss is nan", 1, 1)
        return 1.0 - lr

    res = random_search(objective, {"lr": (1e-3, 1.0)}, 40, rng=0)
    assert np.array_equal(np.isnan(res["score"]), res["lr"] > 0.1)
    assert 0 < np.isnan(res["score"]).sum() < 40


def test_other_exceptions_propagate():
    def objective(lr):
        raise KeyError("a bug in the objective")

    with pytest.raises(KeyError):
        random_search(objective, {"lr": (1e-3, 1.0)}, 3, rng=0)


def test_catch_can_be_widened():
    res = random_search(lambda lr: 1 / 0, {"lr": (1e-3, 1.0)}, 3, rng=0, catch=(ZeroDivisionError,))
    assert np.all(np.isnan(res["score"]))


@pytest.mark.parametrize("n_trials", [0, -1, 2.5, True, "3"])
def test_bad_n_trials(n_trials):
    with pytest.raises(ValueError, match="n_trials"):
        random_search(quadratic, {"a": (1e-3, 1.0), "b": (1.0, 2.0)}, n_trials, rng=0)


def test_bad_spaces():
    with pytest.raises(ValueError, match="space"):
        random_search(lambda: 0.0, {}, 3, rng=0)
    with pytest.raises(ValueError, match="score"):
        random_search(lambda score: 0.0, {"score": (1e-3, 1.0)}, 3, rng=0)
    with pytest.raises(TypeError, match="'lr'"):
        random_search(lambda lr: 0.0, {"lr": 0.1}, 3, rng=0)
    with pytest.raises(ValueError, match="'lr'.*shape"):
        random_search(lambda lr: 0.0, {"lr": lambda n, rng: rng.uniform(size=n + 1)}, 3, rng=0)


# ---------------------------------------------------------------- top_trials


def test_top_trials_sorts_best_first_with_nan_last():
    res = {"lr": np.array([1.0, 2.0, 3.0, 4.0, 5.0]), "score": np.array([0.5, np.nan, 0.9, 0.1, 0.9])}
    top = top_trials(res, k=5)
    assert top["lr"].tolist() == [3.0, 5.0, 1.0, 4.0, 2.0]  # ties keep the trial order
    assert np.isnan(top["score"][-1])
    assert top_trials(res, k=2)["lr"].tolist() == [3.0, 5.0]
    assert res["lr"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # the input is unchanged
