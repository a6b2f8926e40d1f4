"""Tests of mlpbook.optim.optimizers: update rules against hand-computed trajectories, state
save/restore, dtypes, how parameters are found, and parity with torch.optim."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.nn.linear import Linear
from mlpbook.nn.module import Module
from mlpbook.optim.optimizers import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSProp

# the quadratic L(w) = 1/2 sum(c * w^2), gradient c * w, from w0
C = np.array([0.1, 2.0, 0.5])
W0 = np.array([-7.0, 2.0, 1.0])


class Quadratic(Module):
    """A parameter w with the gradient of L(w) = 1/2 sum(c w^2)."""

    params = {"w": "dLdw"}

    def __init__(self, w0=W0, dtype=np.float64):
        self.w = np.array(w0, dtype=dtype)

    def backward(self):
        self.dLdw = C.astype(self.w.dtype) * self.w


class Pair(Module):
    """Two parameters, like BatchNorm's BW and Bb."""

    params = {"BW": "dLdBW", "Bb": "dLdBb"}

    def __init__(self, rng=0, dtype=np.float64):
        g = np.random.default_rng(rng)
        self.BW = g.standard_normal((1, 4)).astype(dtype)
        self.Bb = g.standard_normal((1, 4)).astype(dtype)


class NoParams(Module):
    """A layer without parameters, like an activation."""


def run(make, steps, dtype=np.float64):
    layer = Quadratic(dtype=dtype)
    opt = make(layer)
    path = [layer.w.copy()]
    for _ in range(steps):
        layer.backward()
        opt.step()
        path.append(layer.w.copy())
    return np.array(path)


# ## Update rules against independent NumPy

def reference(rule, steps, lrs=None, **h):
    """The textbook formulas, written directly (moments corrected explicitly)."""
    w = W0.copy()
    a, b = np.zeros(3), np.zeros(3)
    path = [w.copy()]
    for t in range(1, steps + 1):
        lr = h["lr"] if lrs is None else lrs[t - 1]
        g = C * w
        if rule == "sgd":
            a = h.get("momentum", 0.0) * a + g
            w = w - lr * a
        elif rule == "sgd_form_b":
            a = h["momentum"] * a - lr * g
            w = w + a
        elif rule == "adagrad":
            a = a + g**2
            w = w - lr * g / (np.sqrt(a) + h["eps"])
        elif rule == "rmsprop":
            a = h["decay"] * a + (1 - h["decay"]) * g**2
            w = w - lr * g / (np.sqrt(a) + h["eps"])
        elif rule in ("adam", "adamw"):
            if rule == "adamw":
                w = w - lr * h["weight_decay"] * w
            a = h["beta1"] * a + (1 - h["beta1"]) * g
            b = h["beta2"] * b + (1 - h["beta2"]) * g**2
            m_hat, v_hat = a / (1 - h["beta1"] ** t), b / (1 - h["beta2"] ** t)
            w = w - lr * m_hat / (np.sqrt(v_hat) + h["eps"])
        path.append(w.copy())
    return np.array(path)


ADAM = dict(lr=0.3, beta1=0.9, beta2=0.999, eps=1e-8)
CASES = {
    "sgd": (lambda l: SGD(l, lr=0.5), "sgd", dict(lr=0.5)),
    "momentum": (lambda l: SGD(l, lr=0.1, momentum=0.9), "sgd", dict(lr=0.1, momentum=0.9)),
    "adagrad": (lambda l: AdaGrad(l, lr=1.5, eps=1e-8), "adagrad", dict(lr=1.5, eps=1e-8)),
    "rmsprop": (lambda l: RMSProp(l, lr=0.1, decay=0.9, eps=1e-8), "rmsprop", dict(lr=0.1, decay=0.9, eps=1e-8)),
    "adam": (lambda l: Adam(l, **ADAM), "adam", ADAM),
    "adamw": (lambda l: AdamW(l, **ADAM, weight_decay=0.1), "adamw", dict(ADAM, weight_decay=0.1)),
}


@pytest.mark.parametrize("case", CASES)
def test_trajectory_matches_the_formulas_written_out(case):
    make, rule, h = CASES[case]
    np.testing.assert_allclose(run(make, 25), reference(rule, 25, **h), rtol=1e-12, atol=1e-14)


def test_sgd_first_steps_by_hand():
    """w1 = w0 - lr g0; w2 = w1 - lr (mu g0 + g1)."""
    lr, mu = 0.1, 0.9
    g0 = C * W0
    w1 = W0 - lr * g0
    g1 = C * w1
    w2 = w1 - lr * (mu * g0 + g1)
    np.testing.assert_allclose(run(lambda l: SGD(l, lr=lr, momentum=mu), 2), [W0, w1, w2], rtol=1e-15)


def test_first_steps_of_adaptive_methods_are_lr_per_coordinate():
    """AdaGrad and bias-corrected Adam move every coordinate by lr at step 1; RMSProp by lr/sqrt(1-rho)."""
    step = lambda make: run(make, 1)[1] - W0
    np.testing.assert_allclose(step(lambda l: AdaGrad(l, lr=0.7)), -0.7 * np.sign(W0), rtol=1e-6)
    np.testing.assert_allclose(step(lambda l: Adam(l, lr=0.3)), -0.3 * np.sign(W0), rtol=1e-6)
    np.testing.assert_allclose(step(lambda l: RMSProp(l, lr=0.1, decay=0.99)), -1.0 * np.sign(W0), rtol=1e-6)


def test_adagrad_steps_decay_like_one_over_sqrt_t_for_a_constant_gradient():
    layer = Quadratic(np.zeros(3))
    layer.dLdw = np.array([3.0, -2.0, 0.5])
    opt = AdaGrad(layer, lr=1.0, eps=0.0)
    for t in range(1, 50):
        before = layer.w.copy()
        opt.step()
        np.testing.assert_allclose(np.abs(layer.w - before), np.full(3, 1 / math.sqrt(t)), rtol=1e-12)


def test_momentum_forms_equal_at_constant_lr_and_differ_when_lr_changes():
    form_a = lambda lrs: run_with_lrs(lambda l: SGD(l, lr=lrs[0], momentum=0.9), lrs)
    constant = [0.1] * 30
    np.testing.assert_allclose(form_a(constant), reference("sgd_form_b", 30, lrs=constant, momentum=0.9),
                               rtol=1e-12, atol=1e-14)
    dropped = [0.1] * 10 + [0.01] * 20
    np.testing.assert_allclose(form_a(dropped), reference("sgd", 30, lrs=dropped, momentum=0.9), rtol=1e-12)
    gap = np.abs(form_a(dropped) - reference("sgd_form_b", 30, lrs=dropped, momentum=0.9)).max()
    assert gap > 0.1


def run_with_lrs(make, lrs):
    layer = Quadratic()
    opt = make(layer)
    path = [layer.w.copy()]
    for lr in lrs:
        opt.lr = lr
        layer.backward()
        opt.step()
        path.append(layer.w.copy())
    return np.array(path)


def test_adamw_equals_l2_for_sgd_but_not_for_adam():
    """SGD with lambda*w in the gradient is decoupled decay; for Adam it is not."""
    lam, lr = 0.1, 0.01
    a, b = Quadratic(), Quadratic()
    opt_a, opt_b = SGD(a, lr=lr), SGD(b, lr=lr)
    for _ in range(20):
        a.backward(); a.dLdw = a.dLdw + lam * a.w; opt_a.step()
        b.backward(); b.w *= 1 - lr * lam; opt_b.step()
    np.testing.assert_allclose(a.w, b.w, rtol=1e-13)
    l2, decoupled = Quadratic(), Quadratic()
    opt_l2, opt_w = Adam(l2, lr=lr), AdamW(decoupled, lr=lr, weight_decay=lam)
    for _ in range(20):
        l2.backward(); l2.dLdw = l2.dLdw + lam * l2.w; opt_l2.step()
        decoupled.backward(); opt_w.step()
    assert np.abs(l2.w - decoupled.w).max() > 1e-4


def test_lr_is_read_at_every_step():
    layer = Quadratic()
    opt = SGD(layer, lr=0.1)
    layer.backward(); opt.step()
    opt.lr = np.float64(0.0)
    before = layer.w.copy()
    layer.backward(); opt.step()
    np.testing.assert_array_equal(layer.w, before)


# ## How parameters are found

def test_model_list_and_single_layer_give_the_same_updates():
    class Model(Module):
        def __init__(self):
            self.layers = [Linear(3, 2, rng=0), NoParams(), Linear(2, 2, rng=1)]

    def grads(layers):
        for i, layer in enumerate(layers):
            if hasattr(layer, "W"):
                layer.dLdW = np.full_like(layer.W, 0.5 + i)
                layer.dLdb = np.full_like(layer.b, -1.0 - i)

    model = Model()
    as_list = Model().layers
    singles = Model().layers
    opts = [Adam(model, lr=0.1), Adam(as_list, lr=0.1), Adam(singles[0], lr=0.1), Adam(singles[2], lr=0.1)]
    for _ in range(3):
        grads(model.layers); grads(as_list); grads(singles)
        for opt in opts:
            opt.step()
    for i in (0, 2):
        for attr in ("W", "b"):
            ref = getattr(model.layers[i], attr)
            assert np.array_equal(getattr(as_list[i], attr), ref)
            assert np.array_equal(getattr(singles[i], attr), ref)
    assert [p.name for p in opts[0].params] == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b"]
    assert [p.name for p in opts[1].params] == ["0.W", "0.b", "2.W", "2.b"]
    assert [p.name for p in opts[2].params] == ["W", "b"]


def test_layers_without_parameters_are_skipped_and_batchnorm_style_params_found():
    pair = Pair()
    opt = SGD([NoParams(), pair, NoParams()], lr=0.5)
    assert [p.name for p in opt.params] == ["1.BW", "1.Bb"]
    pair.dLdBW, pair.dLdBb = np.ones((1, 4)), np.ones((1, 4))
    BW, Bb = pair.BW.copy(), pair.Bb.copy()
    opt.step()
    np.testing.assert_array_equal(pair.BW, BW - 0.5)
    np.testing.assert_array_equal(pair.Bb, Bb - 0.5)


@pytest.mark.parametrize("case", CASES)
def test_parameter_without_gradient_is_skipped(case):
    make = CASES[case][0]
    lin = Linear(3, 2, rng=0)
    W, b = lin.W.copy(), lin.b.copy()
    opt = make(lin)
    opt.step()                                   # no backward yet: nothing changes
    assert np.array_equal(lin.W, W) and np.array_equal(lin.b, b) and opt.state == {}
    lin.dLdW = np.ones_like(lin.W)
    opt.step()                                   # only W has a gradient
    assert not np.array_equal(lin.W, W) and np.array_equal(lin.b, b)
    assert set(opt.state) == {"W"}
    lin.dLdb = np.ones_like(lin.b)
    opt.step()
    assert opt.state["W"]["step"] == 2 and opt.state["b"]["step"] == 1


def test_zero_grad_sets_gradients_to_none():
    lin = Linear(3, 2, rng=0)
    lin.dLdW, lin.dLdb = np.ones((2, 3)), np.ones((2, 1))
    opt = SGD(lin, lr=0.1)
    opt.zero_grad()
    assert lin.dLdW is None and lin.dLdb is None
    W = lin.W.copy()
    opt.step()
    assert np.array_equal(lin.W, W)


def test_no_parameters_is_an_error():
    with pytest.raises(ValueError, match="no parameters"):
        SGD([NoParams(), NoParams()])


@pytest.mark.parametrize("case", CASES)
def test_wrong_gradient_shape_raises_before_any_change(case):
    make = CASES[case][0]
    lin = Linear(3, 2, rng=0)
    lin.dLdW, lin.dLdb = np.ones((2, 3)), np.ones((1, 2))   # b is (2, 1)
    W, b = lin.W.copy(), lin.b.copy()
    opt = make(lin)
    with pytest.raises(ValueError, match=r"b has shape \(2, 1\).*dLdb has shape \(1, 2\)"):
        opt.step()
    assert np.array_equal(lin.W, W) and np.array_equal(lin.b, b) and opt.state == {}


# ## dtypes

@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_float32_parameters_and_state_stay_float32(case, grad_dtype):
    make = CASES[case][0]
    lin = Linear(3, 2, rng=0, dtype=np.float32)
    W_id = id(lin.W)
    opt = make(lin)
    opt.lr = np.float64(opt.lr)                  # a float64 scalar must not promote the update
    for _ in range(3):
        lin.dLdW = np.ones((2, 3), grad_dtype)
        lin.dLdb = np.ones((2, 1), grad_dtype)
        opt.step()
    assert lin.W.dtype == np.float32 and lin.b.dtype == np.float32
    assert id(lin.W) == W_id                     # updated in place
    for state in opt.state.values():
        for k, v in state.items():
            if k != "step":
                assert v.dtype == np.float32, k


@pytest.mark.parametrize("case", CASES)
def test_float32_trajectory_is_close_to_float64(case):
    make = CASES[case][0]
    np.testing.assert_allclose(run(make, 20, np.float32), run(make, 20), rtol=1e-4, atol=1e-5)


# ## State: save and restore

def gradients(seed, shapes):
    g = np.random.default_rng(seed)
    return [g.standard_normal(s) for s in shapes]


def train(model, opt, seeds):
    params = model.parameters()
    for seed in seeds:
        for p, g in zip(params, gradients(seed, [p.value.shape for p in params])):
            setattr(p.layer, p.grad_attr, g)
        opt.step()


class Model(Module):
    def __init__(self, seed, dtype=np.float64):
        self.layers = [Linear(4, 3, rng=seed, dtype=dtype), NoParams(), Linear(3, 2, rng=seed + 1, dtype=dtype)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_resumes_training_bitwise(case, dtype):
    make = CASES[case][0]
    model = Model(0, dtype)
    opt = make(model)
    train(model, opt, range(5))
    saved_model, saved_opt = model.state_dict(), opt.state_dict()
    train(model, opt, range(5, 12))

    other = Model(7, dtype)
    other_opt = make(other)
    other_opt.lr = 123.0                          # overwritten by the load
    other.load_state_dict(saved_model)
    other_opt.load_state_dict(saved_opt)
    train(other, other_opt, range(5, 12))
    for a, b in zip(model.parameters(), other.parameters()):
        assert a.value.dtype == b.value.dtype == dtype
        assert np.array_equal(a.value, b.value), a.name


def test_state_dict_is_a_copy():
    model = Model(0)
    opt = Adam(model, lr=0.1)
    train(model, opt, range(3))
    saved = opt.state_dict()
    m = saved["state"]["layers.0.W"]["m"].copy()
    train(model, opt, range(3, 6))
    assert np.array_equal(saved["state"]["layers.0.W"]["m"], m)
    opt.load_state_dict(saved)
    saved["state"]["layers.0.W"]["m"] += 1.0       # the optimizer holds its own copy
    assert np.array_equal(opt.state["layers.0.W"]["m"], m)


def test_resuming_without_state_differs():
    model = Model(0)
    opt = Adam(model, lr=0.01)
    train(model, opt, range(3))
    saved = model.state_dict()
    train(model, opt, range(3, 6))
    cold = Model(0)
    cold.load_state_dict(saved)
    train(cold, Adam(cold, lr=0.01), range(3, 6))
    assert max(np.abs(a.value - b.value).max() for a, b in zip(model.parameters(), cold.parameters())) > 1e-4


def test_load_state_dict_rejects_mismatches_and_keeps_its_state():
    model = Model(0)
    opt = Adam(model, lr=0.1)
    train(model, opt, range(2))
    good = opt.state_dict()
    before = opt.state_dict()

    unknown = opt.state_dict()
    unknown["state"]["layers.9.W"] = unknown["state"]["layers.0.W"]
    with pytest.raises(KeyError, match="layers.9.W"):
        opt.load_state_dict(unknown)

    shape = opt.state_dict()
    shape["state"]["layers.0.W"]["m"] = np.zeros((5, 5))
    shape["hyper"]["lr"] = 7.0
    with pytest.raises(ValueError, match=r"layers.0.W.m has shape \(5, 5\)"):
        opt.load_state_dict(shape)
    assert opt.lr == 0.1                         # hyper-parameters restored after the failure

    with pytest.raises(ValueError, match="hyper-parameters"):
        opt.load_state_dict(SGD(model, lr=0.1, momentum=0.9).state_dict())

    missing = opt.state_dict()
    del missing["state"]["layers.0.W"]["v"]
    with pytest.raises(KeyError, match="'v'"):
        opt.load_state_dict(missing)

    for name, s in before["state"].items():
        assert all(np.array_equal(s[k], opt.state[name][k]) for k in s)
    opt.load_state_dict(good)


def test_sgd_momentum_state_follows_the_loaded_momentum():
    model = Model(0)
    with_momentum = SGD(model, lr=0.1, momentum=0.9)
    train(model, with_momentum, range(2))
    plain = SGD(Model(0), lr=0.1)
    plain.load_state_dict(with_momentum.state_dict())
    assert plain.momentum == 0.9 and plain.slots == ("v",)
    assert np.array_equal(plain.state["layers.0.W"]["v"], with_momentum.state["layers.0.W"]["v"])


def test_repr_names_the_hyperparameters():
    assert repr(AdamW(Linear(2, 2, rng=0), lr=0.5)) == \
        "AdamW(lr=0.5, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.01)"


def test_a_subclass_needs_only_an_update_rule():
    class SignSGD(Optimizer):
        def update(self, W, g, state, lr):
            W -= lr * np.sign(g)

    np.testing.assert_allclose(run(lambda l: SignSGD(l, lr=0.25), 1)[1], W0 - 0.25 * np.sign(W0))


# ## Property-based: one step on random shapes equals the formula

@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 5)), seed=st.integers(0, 2**31 - 1),
       case=st.sampled_from(sorted(CASES)))
def test_two_steps_on_random_arrays_follow_the_formulas(shape, seed, case):
    make, rule, h = CASES[case]
    g = np.random.default_rng(seed)
    W = g.standard_normal(shape)
    grads = [g.standard_normal(shape) for _ in range(2)]
    layer = Quadratic(np.zeros(1))
    layer.w = W.copy()
    opt = make(layer)
    w, a, b = W.copy(), np.zeros(shape), np.zeros(shape)
    for t, grad in enumerate(grads, start=1):
        layer.dLdw = grad
        opt.step()
        lr = h["lr"]
        if rule == "sgd":
            a = h.get("momentum", 0.0) * a + grad
            w = w - lr * a
        elif rule == "adagrad":
            a = a + grad**2
            w = w - lr * grad / (np.sqrt(a) + h["eps"])
        elif rule == "rmsprop":
            a = h["decay"] * a + (1 - h["decay"]) * grad**2
            w = w - lr * grad / (np.sqrt(a) + h["eps"])
        else:
            w = w * (1 - lr * h.get("weight_decay", 0.0))
            a = h["beta1"] * a + (1 - h["beta1"]) * grad
            b = h["beta2"] * b + (1 - h["beta2"]) * grad**2
            w = w - lr * (a / (1 - h["beta1"] ** t)) / (np.sqrt(b / (1 - h["beta2"] ** t)) + h["eps"])
        np.testing.assert_allclose(layer.w, w, rtol=1e-12, atol=1e-12)


# ## Parity with torch.optim

def _torch_case(torch, name):
    o = torch.optim
    return {
        "momentum": (lambda m: SGD(m, lr=0.1, momentum=0.9), lambda p: o.SGD(p, lr=0.1, momentum=0.9)),
        "sgd": (lambda m: SGD(m, lr=0.1), lambda p: o.SGD(p, lr=0.1)),
        "adagrad": (lambda m: AdaGrad(m, lr=0.1, eps=1e-8),
                    lambda p: o.Adagrad(p, lr=0.1, eps=1e-8, initial_accumulator_value=0.0)),
        "rmsprop": (lambda m: RMSProp(m, lr=0.01, decay=0.9, eps=1e-8),
                    lambda p: o.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
        "adam": (lambda m: Adam(m, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-8),
                 lambda p: o.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-8)),
        "adamw": (lambda m: AdamW(m, lr=0.01, weight_decay=0.1),
                  lambda p: o.AdamW(p, lr=0.01, weight_decay=0.1)),
    }[name]


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_parity_with_torch_over_20_steps(name, dtype):
    torch = pytest.importorskip("torch")
    ours, theirs = _torch_case(torch, name)
    model = Model(0, dtype)
    tensors = [torch.tensor(p.value.copy(), requires_grad=True) for p in model.parameters()]
    opt, topt = ours(model), theirs(tensors)
    params = model.parameters()
    for seed in range(20):
        grads = gradients(seed, [p.value.shape for p in params])
        for p, t, g in zip(params, tensors, grads):
            g = g.astype(dtype)
            setattr(p.layer, p.grad_attr, g)
            t.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.value, t.detach().numpy(), **tol, err_msg=p.name)
