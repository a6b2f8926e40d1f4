"""Tests of mlpbook.regularization: the L2 penalty, its gradient, and WithL2Penalty."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.gradcheck import check_gradients
from mlpbook.models.mlp import MLP
from mlpbook.nn.loss import CrossEntropyLoss
from mlpbook.nn.module import Module, named_parameters
from mlpbook.optim.optimizers import SGD, Adam
from mlpbook.regularization import WithL2Penalty, add_l2_grad, l2_penalty


class Weights(Module):
    """Bare parameters whose gradients a test sets by hand."""
    params = {"w": "dLdw", "u": "dLdu"}

    def __init__(self, w, u, dtype=np.float64):
        self.w, self.u = np.array(w, dtype=dtype), np.array(u, dtype=dtype)
        self.dLdw = self.dLdu = None


class PenalizedLoss(Module):
    def __init__(self, model, weight_decay):
        self.model, self.loss, self.weight_decay = model, CrossEntropyLoss(), weight_decay
        self.layers = [model]

    def forward(self, X, y):
        return self.loss.forward(self.model.forward(X), y) + l2_penalty(self.model, self.weight_decay)

    def backward(self):
        dLdX = self.model.backward(self.loss.backward())
        add_l2_grad(self.model, self.weight_decay)
        return dLdX


# ## The penalty and its gradient

def test_penalty_is_half_lambda_times_the_sum_of_squares():
    layer = Weights([[1.0, -2.0]], [3.0])
    assert l2_penalty(layer, 0.1) == pytest.approx(0.05 * (1 + 4 + 9), rel=1e-15)
    assert isinstance(l2_penalty(layer, 0.1), np.float64)
    assert l2_penalty(layer, 0.0) == 0.0


def test_penalized_loss_passes_the_gradient_check():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    errors = check_gradients(PenalizedLoss(MLP([4, 5, 3], rng=1), 0.7), X, y)
    assert max(errors.values()) < 1e-8


def test_add_l2_grad_adds_lambda_theta_and_skips_missing_gradients():
    layer = Weights([1.0, -2.0], [4.0])
    layer.dLdw = np.array([0.5, 0.5])
    add_l2_grad(layer, 0.1)
    np.testing.assert_allclose(layer.dLdw, [0.6, 0.3], rtol=1e-15)
    assert layer.dLdu is None


def test_add_l2_grad_replaces_the_array_and_keeps_the_dtype():
    layer = Weights([1.0, -2.0], [4.0], dtype=np.float32)
    handed_out = np.ones(2, dtype=np.float32)
    layer.dLdw = handed_out
    add_l2_grad(layer, 0.5)
    assert np.array_equal(handed_out, [1.0, 1.0])  # the old array is untouched
    assert layer.dLdw.dtype == np.float32
    np.testing.assert_allclose(layer.dLdw, [1.5, 0.0])


def test_a_list_of_parameters_selects_what_is_penalised():
    layer = Weights([1.0, 1.0], [10.0])
    only_w = [p for p in named_parameters(layer) if p.attr == "w"]
    assert l2_penalty(only_w, 1.0) == pytest.approx(1.0)
    layer.dLdw, layer.dLdu = np.zeros(2), np.zeros(1)
    add_l2_grad(only_w, 1.0)
    assert np.array_equal(layer.dLdw, [1.0, 1.0]) and np.array_equal(layer.dLdu, [0.0])


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", None])
def test_weight_decay_must_be_a_finite_nonnegative_number(bad):
    layer = Weights([1.0], [1.0])
    for call in (lambda: l2_penalty(layer, bad), lambda: add_l2_grad(layer, bad),
                 lambda: WithL2Penalty(SGD(layer, lr=0.1), bad)):
        with pytest.raises(ValueError, match="weight_decay"):
            call()


def test_gradient_of_the_wrong_shape_is_reported():
    layer = Weights([1.0, 2.0], [1.0])
    layer.dLdw = np.zeros(3)
    with pytest.raises(ValueError, match=r"add_l2_grad: w has shape \(2,\).*\(3,\)"):
        add_l2_grad(layer, 0.1)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 5), lam=st.floats(0, 10), seed=st.integers(0, 1000))
def test_add_l2_grad_is_g_plus_lambda_w(rows, cols, lam, seed):
    rng = np.random.default_rng(seed)
    layer = Weights(rng.standard_normal((rows, cols)), rng.standard_normal(cols))
    g = rng.standard_normal((rows, cols))
    layer.dLdw = g.copy()
    add_l2_grad(layer, lam)
    np.testing.assert_allclose(layer.dLdw, g + lam * layer.w, rtol=1e-14, atol=1e-14)
    expected = 0.5 * lam * (np.sum(layer.w**2) + np.sum(layer.u**2))
    assert l2_penalty(layer, lam) == pytest.approx(expected, rel=1e-12, abs=1e-300)


# ## WithL2Penalty

def test_with_plain_sgd_the_penalty_is_a_decay():
    """W - lr (g + λW) = (1 - lr λ) W - lr g, step after step."""
    rng = np.random.default_rng(0)
    layer = Weights(rng.standard_normal(4), rng.standard_normal(2))
    expected_w, lr, lam = layer.w.copy(), 0.1, 0.05
    opt = WithL2Penalty(SGD(layer, lr=lr), lam)
    for _ in range(20):
        g = rng.standard_normal(4)
        layer.dLdw, layer.dLdu = g.copy(), np.zeros(2)
        opt.step()
        expected_w = (1 - lr * lam) * expected_w - lr * g
    np.testing.assert_allclose(layer.w, expected_w, rtol=1e-13)


def test_penalty_method_and_lr_are_forwarded():
    layer = Weights([3.0], [4.0])
    opt = WithL2Penalty(SGD(layer, lr=0.1), 0.2)
    assert opt.penalty() == pytest.approx(0.1 * 25)
    opt.lr = 0.01
    assert opt.optimizer.lr == 0.01 and opt.lr == 0.01
    assert "WithL2Penalty" in repr(opt)


def test_zero_grad_is_forwarded_and_a_step_after_it_changes_nothing():
    layer = Weights([1.0, -2.0], [3.0])
    opt = WithL2Penalty(SGD(layer, lr=0.1), 0.5)
    layer.dLdw, layer.dLdu = np.ones(2), np.ones(1)
    opt.zero_grad()
    assert layer.dLdw is None and layer.dLdu is None
    opt.step()  # no gradient: neither the penalty nor the optimizer touches the weights
    assert np.array_equal(layer.w, [1.0, -2.0]) and np.array_equal(layer.u, [3.0])


def test_state_dict_round_trip():
    layer = Weights([1.0, 2.0], [3.0])
    opt = WithL2Penalty(Adam(layer, lr=0.1), 0.3)
    layer.dLdw, layer.dLdu = np.ones(2), np.ones(1)
    opt.step()
    saved = opt.state_dict()
    other = WithL2Penalty(Adam(layer, lr=0.5), 0.0)
    other.load_state_dict(saved)
    assert other.weight_decay == 0.3 and other.lr == 0.1
    np.testing.assert_array_equal(other.optimizer.state["w"]["m"], opt.optimizer.state["w"]["m"])


def test_an_optimizer_without_params_needs_them_given():
    class Bare:
        lr = 0.1

        def step(self):
            pass

    layer = Weights([1.0], [1.0])
    with pytest.raises(TypeError, match="params"):
        WithL2Penalty(Bare(), 0.1)
    opt = WithL2Penalty(Bare(), 0.1, params=layer)
    layer.dLdw, layer.dLdu = np.zeros(1), np.zeros(1)
    opt.step()
    assert layer.dLdw[0] == pytest.approx(0.1)


def test_trainer_accepts_the_wrapper():
    from mlpbook.train import Trainer
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    model = MLP([4, 8, 3], rng=0)
    before = np.sqrt(sum(np.sum(p.value**2) for p in named_parameters(model)))
    history = Trainer(model, CrossEntropyLoss(), WithL2Penalty(SGD(model, lr=0.1), 5.0),
                      batch_size=8, rng=0).fit((X, y), epochs=3)
    after = np.sqrt(sum(np.sum(p.value**2) for p in named_parameters(model)))
    assert len(history.train_loss) == 3 and after < before  # a strong penalty shrinks the weights


# ## Parity with PyTorch, whose SGD and Adam take weight_decay as an L2 penalty

@pytest.mark.parametrize("make", ["sgd", "sgd_momentum", "adam"])
def test_matches_torch_weight_decay(make):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w0, lam, lr = rng.standard_normal((3, 2)), 0.3, 0.05
    grads = rng.standard_normal((10, 3, 2))

    layer = Weights(w0, [0.0])
    inner = {"sgd": lambda: SGD(layer, lr=lr), "sgd_momentum": lambda: SGD(layer, lr=lr, momentum=0.9),
             "adam": lambda: Adam(layer, lr=lr)}[make]()
    ours = WithL2Penalty(inner, lam, params=[p for p in named_parameters(layer) if p.attr == "w"])

    wt = torch.tensor(w0, requires_grad=True)
    theirs = {"sgd": lambda: torch.optim.SGD([wt], lr=lr, weight_decay=lam),
              "sgd_momentum": lambda: torch.optim.SGD([wt], lr=lr, momentum=0.9, weight_decay=lam),
              "adam": lambda: torch.optim.Adam([wt], lr=lr, weight_decay=lam)}[make]()
    for g in grads:
        layer.dLdw = g.copy()
        ours.step()
        wt.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(layer.w, wt.detach().numpy(), rtol=1e-12, atol=1e-14)
