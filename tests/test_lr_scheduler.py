"""Tests of mlpbook.optim.lr_scheduler: values at chosen steps, the step convention, state
save/restore, and parity with torch.optim.lr_scheduler where the definitions agree."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpbook.nn.linear import Linear
from mlpbook.optim.lr_scheduler import CosineAnnealingLR, ExponentialLR, LinearWarmup, LRScheduler, StepLR
from mlpbook.optim.optimizers import SGD, Adam


class Holder:
    """Anything with an ``lr`` attribute, like an optimizer written for the homework."""

    def __init__(self, lr=0.1):
        self.lr = lr


def used(schedule, steps):
    """The lr that each of `steps` optimizer updates uses, stepping after each one."""
    lrs = []
    for _ in range(steps):
        lrs.append(schedule.optimizer.lr)
        schedule.step()
    return lrs


# ## Values at chosen steps, computed by hand

def test_step_lr_values():
    s = StepLR(Holder(0.5), step_size=3, gamma=0.1)
    lrs = used(s, 10)
    assert lrs[:3] == [0.5] * 3
    np.testing.assert_allclose(lrs[3:6], [0.05] * 3, rtol=1e-15)
    np.testing.assert_allclose(lrs[6:9], [0.005] * 3, rtol=1e-15)
    np.testing.assert_allclose(lrs[9], 0.0005, rtol=1e-15)


def test_exponential_lr_values():
    lrs = used(ExponentialLR(Holder(0.2), gamma=0.5), 5)
    np.testing.assert_allclose(lrs, [0.2, 0.1, 0.05, 0.025, 0.0125], rtol=1e-15)


def test_cosine_values_and_hold_after_t_max():
    s = CosineAnnealingLR(Holder(1.0), T_max=4, eta_min=0.2)
    lrs = used(s, 8)
    expected = [0.2 + 0.8 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)] + [0.2] * 3
    np.testing.assert_allclose(lrs, expected, rtol=1e-15)
    assert lrs[0] == 1.0 and lrs[2] == pytest.approx(0.6) and lrs[4] == pytest.approx(0.2)


def test_linear_warmup_values_alone_and_before_a_decay():
    lrs = used(LinearWarmup(Holder(0.4), warmup_steps=4), 6)
    np.testing.assert_allclose(lrs, [0.1, 0.2, 0.3, 0.4, 0.4, 0.4], rtol=1e-15)
    opt = Holder(0.4)
    lrs = used(LinearWarmup(opt, 4, after=ExponentialLR(opt, gamma=0.5)), 7)
    np.testing.assert_allclose(lrs, [0.1, 0.2, 0.3, 0.4, 0.4, 0.2, 0.1], rtol=1e-15)


def test_warmup_ends_at_the_peak_of_the_schedule_after_it():
    opt = Holder(0.3)
    w = LinearWarmup(opt, 10, after=CosineAnnealingLR(opt, T_max=20))
    assert w.lr_at(9) == w.lr_at(10) == 0.3 and w.lr_at(0) == pytest.approx(0.03)


@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, 7, 0.5), lambda o: ExponentialLR(o, 0.97), lambda o: CosineAnnealingLR(o, 25, 0.01),
    lambda o: LinearWarmup(o, 5, after=CosineAnnealingLR(o, 20))])
def test_lr_at_is_what_step_hands_the_optimizer(make):
    s = make(Holder(0.1))
    lrs = used(s, 40)
    assert lrs == [s.lr_at(t) for t in range(40)]
    assert s.t == 40 and s.lr == s.lr_at(40) == s.optimizer.lr


def test_building_a_schedule_sets_the_first_lr():
    opt = Holder(1.0)
    LinearWarmup(opt, 4)
    assert opt.lr == 0.25


# ## Convention: drives the package's optimizers, which read lr at every step

def test_schedule_drives_sgd():
    lin = Linear(2, 1, weight_init="zeros")
    opt = SGD(lin, lr=1.0)
    schedule = StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        lin.dLdW, lin.dLdb = np.ones((1, 2)), np.ones((1, 1))
        opt.step()
        schedule.step()
    np.testing.assert_allclose(lin.W, -(1 + 0.5 + 0.25) * np.ones((1, 2)))


# ## State

@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, 3, 0.5), lambda o: ExponentialLR(o, 0.9), lambda o: CosineAnnealingLR(o, 12),
    lambda o: LinearWarmup(o, 4, after=CosineAnnealingLR(o, 10, eta_min=0.001))])
def test_state_dict_resumes_the_same_curve(make):
    s = make(Holder(0.1))
    used(s, 5)
    saved = s.state_dict()
    rest = used(s, 10)
    fresh = make(Holder(7.0))                      # another base lr, overwritten by the load
    fresh.load_state_dict(saved)
    assert fresh.optimizer.lr == rest[0]
    assert used(fresh, 10) == rest


def test_optimizer_and_schedule_resume_training_bitwise():
    def grads(lin, k):
        g = np.random.default_rng(k)
        lin.dLdW, lin.dLdb = g.standard_normal((2, 3)), g.standard_normal((2, 1))

    def run(lin, opt, schedule, ks):
        for k in ks:
            grads(lin, k)
            opt.step()
            schedule.step()

    def make(seed):
        lin = Linear(3, 2, rng=seed)
        opt = Adam(lin, lr=0.01)
        return lin, opt, LinearWarmup(opt, 3, after=CosineAnnealingLR(opt, T_max=10))

    lin, opt, schedule = make(0)
    run(lin, opt, schedule, range(4))
    saved = lin.state_dict(), opt.state_dict(), schedule.state_dict()
    run(lin, opt, schedule, range(4, 12))
    lin2, opt2, schedule2 = make(1)
    lin2.load_state_dict(saved[0]); opt2.load_state_dict(saved[1]); schedule2.load_state_dict(saved[2])
    run(lin2, opt2, schedule2, range(4, 12))
    assert np.array_equal(lin.W, lin2.W) and np.array_equal(lin.b, lin2.b)
    assert opt.lr == opt2.lr


# ## Bad arguments

@pytest.mark.parametrize("make, message", [
    (lambda o: StepLR(o, 0), "StepLR: step_size"),
    (lambda o: StepLR(o, 2.5), "StepLR: step_size"),
    (lambda o: StepLR(o, 2, gamma=0.0), "StepLR: gamma"),
    (lambda o: ExponentialLR(o, -0.5), "ExponentialLR: gamma"),
    (lambda o: CosineAnnealingLR(o, 0), "CosineAnnealingLR: T_max"),
    (lambda o: LinearWarmup(o, 0), "LinearWarmup: warmup_steps"),
    (lambda o: LinearWarmup(o, 3, after=StepLR(Holder(), 2)), "same optimizer"),
])
def test_bad_arguments_raise_and_leave_lr_alone(make, message):
    opt = Holder(0.1)
    with pytest.raises(ValueError, match=message):
        make(opt)
    assert opt.lr == 0.1


def test_optimizer_without_lr_is_refused():
    with pytest.raises(TypeError, match="no `lr`"):
        StepLR(object(), 2)


def test_the_base_class_needs_lr_at():
    with pytest.raises(NotImplementedError):
        LRScheduler(Holder())


# ## Properties

@settings(max_examples=40, deadline=None)
@given(base=st.floats(1e-4, 1.0), T=st.integers(1, 200), frac=st.floats(0.0, 0.9), W=st.integers(1, 50))
def test_cosine_stays_between_eta_min_and_base_and_never_rises(base, T, frac, W):
    opt = Holder(base)
    eta_min = frac * base
    cos = CosineAnnealingLR(opt, T, eta_min)
    lrs = np.array([cos.lr_at(t) for t in range(T + 5)])
    assert np.all(lrs <= base * (1 + 1e-12)) and np.all(lrs >= eta_min * (1 - 1e-12))
    assert np.all(np.diff(lrs) <= 1e-15)
    warm = LinearWarmup(opt, W, after=cos)
    ramp = np.array([warm.lr_at(t) for t in range(W + 1)])
    assert np.all(np.diff(ramp) >= -1e-15) and ramp[W - 1] == ramp[W] == base


# ## Parity with torch.optim.lr_scheduler

def _torch_lrs(torch, make, steps, lr=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return lrs


@pytest.mark.parametrize("name", ["step", "exponential", "cosine", "warmup", "warmup+cosine"])
def test_parity_with_torch(name):
    torch = pytest.importorskip("torch")
    L = torch.optim.lr_scheduler
    W, T = 5, 40
    cases = {
        "step": (lambda o: StepLR(o, 7, 0.5), lambda o: L.StepLR(o, 7, 0.5)),
        "exponential": (lambda o: ExponentialLR(o, 0.93), lambda o: L.ExponentialLR(o, 0.93)),
        "cosine": (lambda o: CosineAnnealingLR(o, T, 0.001), lambda o: L.CosineAnnealingLR(o, T, 0.001)),
        "warmup": (lambda o: LinearWarmup(o, W),
                   lambda o: L.LinearLR(o, start_factor=1 / W, end_factor=1.0, total_iters=W - 1)),
        "warmup+cosine": (
            lambda o: LinearWarmup(o, W, after=CosineAnnealingLR(o, T - W)),
            lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=1 / W, total_iters=W - 1),
                                         L.CosineAnnealingLR(o, T - W)], milestones=[W])),
    }
    ours, theirs = cases[name]
    expected = _torch_lrs(torch, theirs, T + 1)      # t = 0 .. T, where the definitions agree
    np.testing.assert_allclose(used(ours(Holder(0.1)), T + 1), expected, rtol=1e-12, atol=1e-15)


def test_cosine_differs_from_torch_only_beyond_t_max():
    torch = pytest.importorskip("torch")
    T = 10
    theirs = _torch_lrs(torch, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T), 2 * T)
    ours = used(CosineAnnealingLR(Holder(0.1), T), 2 * T)
    np.testing.assert_allclose(ours[:T + 1], theirs[:T + 1], rtol=1e-12, atol=1e-15)
    assert ours[T + 1:] == [0.0] * (T - 1) and theirs[-1] > 0.05   # PyTorch climbs back up
