"""Tests of mlpbook.train: the loop learns, is reproducible, guards against NaN, switches
train/eval mode, stops early with the best weights, and checkpoints atomically and exactly."""
import io
import os

import numpy as np
import pytest

from mlpbook.data import load_digits
from mlpbook.models.mlp import Sequential
from mlpbook.nn.activation import ReLU
from mlpbook.nn.linear import Linear
from mlpbook.nn.module import Module, named_modules, named_parameters
from mlpbook.train import (DivergenceError, History, Trainer, _labels, _predictions, evaluate,
                           fit, load_checkpoint, save_checkpoint)


# ---------------------------------------------------------------- small stand-ins

class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(A) against integer labels (a stand-in for nn.loss)."""

    def forward(self, A, y):
        Z = A - A.max(axis=1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        self.P, self.y = np.exp(logp), y
        return np.float64(-logp[np.arange(len(y)), y].mean())

    def backward(self):
        G = self.P.copy()
        G[np.arange(len(self.y)), self.y] -= 1
        return G / len(self.y)


class MomentumSGD:
    """v = μv + g; W -= lr·v, with optimizer state to save (a stand-in for mlpbook.optim)."""

    def __init__(self, model, lr=0.1, momentum=0.9):
        self.params, self.lr, self.momentum = named_parameters(model), lr, momentum
        self.v = {p.name: np.zeros_like(p.value) for p in self.params}

    def step(self):
        for p in self.params:
            self.v[p.name] = self.momentum * self.v[p.name] + p.grad
            p.value[...] -= self.lr * self.v[p.name]

    def state_dict(self):
        return {"lr": self.lr, "momentum": self.momentum, "v": {k: v.copy() for k, v in self.v.items()}}

    def load_state_dict(self, state):
        self.lr, self.momentum = state["lr"], state["momentum"]
        self.v = {k: np.array(v) for k, v in state["v"].items()}


class PlainSGD:
    """No state_dict at all: only lr and step()."""

    def __init__(self, model, lr):
        self.params, self.lr = named_parameters(model), lr

    def step(self):
        for p in self.params:
            p.value[...] -= self.lr * p.grad


class FlagRecorder(Module):
    """Identity that records the training flag it sees at every forward."""

    def __init__(self):
        self.seen = []

    def forward(self, A):
        self.seen.append(self.training)
        return A

    def backward(self, dLdA):
        return dLdA


class Net(Sequential):
    def __init__(self, sizes=(2, 16, 3), seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b, rng=rng, dtype=dtype))
            if i < len(sizes) - 2:
                layers += [ReLU(), FlagRecorder()]
        super().__init__(*layers)


class HomeworkNet:
    """Homework style: .layers, forward, backward, and nothing else (no Module, no train/eval)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.layers = [Linear(2, 8, rng=rng), ReLU(), FlagRecorder(), Linear(8, 3, rng=rng)]

    def forward(self, A):
        for layer in self.layers:
            A = layer.forward(A)
        return A

    def backward(self, dLdZ):
        for layer in reversed(self.layers):
            dLdZ = layer.backward(dLdZ)
        return dLdZ


def blobs(n=90, seed=0, spread=0.3):
    """Three well separated Gaussian blobs in the plane."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 3.0], [-3.0, -2.0], [3.0, -2.0]])
    y = np.arange(n) % 3
    return centres[y] + spread * rng.standard_normal((n, 2)), y


def data(seed=0):
    X, y = blobs(120, seed)
    Xv, yv = blobs(60, seed + 100)
    return {"X_train": X, "y_train": y, "X_val": Xv, "y_val": yv}


def params(model):
    return {p.name: p.value.copy() for p in named_parameters(model)}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- predictions

def test_predictions_by_argmax_or_by_the_sign_of_a_single_logit():
    assert _predictions(np.array([[0.1, 0.4, 0.5], [0.8, 0.1, 0.1]])).tolist() == [2, 0]
    assert _predictions(np.array([[2.0], [-1.0], [0.5]])).tolist() == [1, 0, 1]
    assert _labels(np.eye(3)[[2, 0]]).tolist() == [2, 0]


# ---------------------------------------------------------------- learning

def test_a_tiny_problem_is_learned_to_near_zero_loss():
    model = Net()
    h = fit(model, SoftmaxCrossEntropy(), MomentumSGD(model, lr=0.05), data(), epochs=30,
            batch_size=16, rng=0)
    assert h.train_loss[-1] < 0.01 and h.val_loss[-1] < 0.01
    assert h.train_acc[-1] == 1.0 and h.val_acc[-1] == 1.0
    assert h.train_loss[0] > 10 * h.train_loss[-1]
    assert h.epoch == list(range(1, 31)) and len(h.step_loss) == 30 * 8


def test_learns_real_digits():
    ds = load_digits()
    model = Net((64, 32, 10), seed=0)
    h = fit(model, SoftmaxCrossEntropy(), MomentumSGD(model, lr=0.05), ds, epochs=5, batch_size=32, rng=0)
    assert h.val_acc[-1] > 0.9


def test_same_seed_gives_identical_history_and_weights():
    runs = []
    for _ in range(2):
        model = Net(seed=1)
        h = fit(model, SoftmaxCrossEntropy(), MomentumSGD(model, lr=0.05), data(), epochs=4,
                batch_size=10, rng=7)
        runs.append((h, params(model)))
    assert runs[0][0] == runs[1][0] and same(runs[0][1], runs[1][1])
    model = Net(seed=1)
    h = fit(model, SoftmaxCrossEntropy(), MomentumSGD(model, lr=0.05), data(), epochs=4, batch_size=10, rng=8)
    assert h.step_loss != runs[0][0].step_loss  # the shuffling seed matters


def test_float32_training_stays_float32():
    model = Net(dtype=np.float32)
    d = {k: (v.astype(np.float32) if k.startswith("X") else v) for k, v in data().items()}
    fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), d, epochs=2, batch_size=16, rng=0)
    assert all(p.value.dtype == np.float32 for p in named_parameters(model))


# ---------------------------------------------------------------- train / eval mode

@pytest.mark.parametrize("make", [Net, HomeworkNet])
def test_training_mode_during_steps_and_eval_mode_during_evaluation(make):
    model = make()
    recorder = next(m for _, m in named_modules(model) if isinstance(m, FlagRecorder))
    trainer = Trainer(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), batch_size=40, rng=0)
    trainer.fit(data(), epochs=1)
    # 3 training steps (120 / 40) in training mode, then one evaluation batch in eval mode
    assert recorder.seen == [True, True, True, False]
    recorder.training = True
    evaluate(model, SoftmaxCrossEntropy(), *blobs(10))
    assert recorder.seen[-1] is False and recorder.training is True  # flag restored


def test_eval_train_reevaluates_the_training_set():
    model = Net()
    trainer = Trainer(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), batch_size=16, rng=0, eval_train=True)
    h = trainer.fit(data(), epochs=2)
    d = data()
    loss, acc = evaluate(model, SoftmaxCrossEntropy(), d["X_train"], d["y_train"])
    assert h.train_loss[-1] == loss and h.train_acc[-1] == acc


# ---------------------------------------------------------------- NaN guard

def test_nan_in_the_data_stops_training_naming_epoch_and_step():
    d = data()
    d["X_train"] = d["X_train"].copy()
    d["X_train"][45, 1] = np.nan  # sample 45 lies in batch 5 (samples 40..49) without shuffling
    model = Net()
    trainer = Trainer(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), batch_size=10, shuffle=False)
    with pytest.raises(DivergenceError, match=r"epoch 1, step 5 of 12") as err:
        trainer.fit(d, epochs=3)
    assert (err.value.epoch, err.value.step) == (1, 5) and isinstance(err.value, FloatingPointError)
    assert trainer.step == 4 and len(trainer.history.step_loss) == 4
    assert all(np.all(np.isfinite(p.value)) for p in named_parameters(model))  # no NaN update


def test_nan_is_caught_even_when_the_loss_refuses_nan_input():
    from mlpbook.nn.loss import CrossEntropyLoss  # raises its own ValueError for NaN scores
    d = data()
    d["X_train"] = d["X_train"].copy()
    d["X_train"][45, 0] = np.nan  # (inf would warn in matmul: inf * 0)
    model = Net()
    trainer = Trainer(model, CrossEntropyLoss(), PlainSGD(model, 0.1), batch_size=10, shuffle=False)
    with pytest.raises(DivergenceError, match=r"output contains nan at epoch 1, step 5 of 12"):
        trainer.fit(d, epochs=1)


def test_evaluate_reports_nan_for_a_diverged_model():
    model = Net()
    model.layers[0].W[0, 0] = np.nan
    loss, acc = evaluate(model, SoftmaxCrossEntropy(), *blobs(10))
    assert np.isnan(loss) and np.isnan(acc)
    trainer = Trainer(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), batch_size=200)
    with pytest.raises(DivergenceError, match="output contains nan at epoch 1, step 1 of 1"):
        trainer.fit(data(), epochs=1)


class NaNOnCall(SoftmaxCrossEntropy):
    def __init__(self, bad_call):
        self.calls, self.bad_call = 0, bad_call

    def forward(self, A, y):
        self.calls += 1
        value = super().forward(A, y)
        return np.float64(np.inf) if self.calls == self.bad_call else value


def test_divergence_in_a_later_epoch_names_that_epoch():
    model = Net()
    # epoch 1: 4 steps + 1 validation batch = 5 calls; epoch 2, step 3 is call 8
    trainer = Trainer(model, NaNOnCall(8), PlainSGD(model, 0.1), batch_size=30, rng=0)
    with pytest.raises(DivergenceError, match=r"inf at epoch 2, step 3 of 4 \(step 7 overall\)"):
        trainer.fit(data(), epochs=3)
    assert trainer.history.epoch == [1]


def test_nan_validation_loss_is_reported():
    model = Net()
    trainer = Trainer(model, NaNOnCall(5), PlainSGD(model, 0.1), batch_size=30, rng=0)
    with pytest.raises(DivergenceError, match="validation loss is inf after epoch 1"):
        trainer.fit(data(), epochs=2)


# ---------------------------------------------------------------- early stopping

def test_early_stopping_restores_the_best_weights():
    d = data()
    d["y_val"] = (d["y_val"] + 1) % 3  # validation labels that disagree with training: val loss rises
    model = Net()
    trainer = Trainer(model, SoftmaxCrossEntropy(), MomentumSGD(model, lr=0.05), batch_size=16,
                      rng=0, patience=3)
    h = trainer.fit(d, epochs=50)
    best = int(np.argmin(h.val_loss)) + 1
    assert h.stopped_early and h.best_epoch == best and h.epoch[-1] == best + 3
    loss, _ = evaluate(model, SoftmaxCrossEntropy(), d["X_val"], d["y_val"])
    assert loss == h.val_loss[best - 1]  # the model holds the best epoch's weights
    assert loss < h.val_loss[-1]


def test_best_epoch_by_accuracy_and_no_restore_without_patience():
    model = Net()
    h = fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), data(), epochs=3, batch_size=16,
            rng=0, monitor="val_acc")
    assert h.best_epoch == int(np.argmax(h.val_acc)) + 1 and not h.stopped_early
    with pytest.raises(ValueError, match="needs validation data"):
        fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), blobs(), epochs=1, patience=2)
    with pytest.raises(ValueError, match="monitor"):
        Trainer(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), monitor="loss")


# ---------------------------------------------------------------- schedules and progress

class Halve:
    def __init__(self, optimizer):
        self.optimizer, self.count = optimizer, 0

    def step(self):
        self.count += 1
        self.optimizer.lr /= 2

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


@pytest.mark.parametrize("interval, per_epoch", [("epoch", 1), ("step", 4)])
def test_scheduler_steps_per_epoch_or_per_step(interval, per_epoch):
    model = Net()
    opt = PlainSGD(model, 0.8)
    h = fit(model, SoftmaxCrossEntropy(), opt, data(), epochs=3, batch_size=30, rng=0,
            scheduler=Halve(opt), scheduler_interval=interval)
    assert h.lr == [0.8, 0.8 / 2 ** per_epoch, 0.8 / 4 ** per_epoch]
    assert opt.lr == 0.8 / 8 ** per_epoch


def test_progress_lines_and_bar():
    model = Net()
    out = io.StringIO()
    fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), data(), epochs=2, batch_size=30,
        rng=0, progress=True, stream=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch   1  train loss") and "val loss" in lines[0]
    out = io.StringIO()
    fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), data(), epochs=1, batch_size=30,
        rng=0, progress="bar", stream=out)
    assert "\repoch 1 [" in out.getvalue() and "4/4" in out.getvalue()
    out = io.StringIO()
    fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), data(), epochs=1, batch_size=30, rng=0, stream=out)
    assert out.getvalue() == ""  # silent by default


def test_data_as_tuple_dict_or_dataset():
    d = data()
    for given in ((d["X_train"], d["y_train"]), d, (d["X_train"], d["y_train"], d["X_val"], d["y_val"])):
        model = Net()
        h = fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), given, epochs=1, rng=0)
        assert np.isfinite(h.train_loss[0])
        assert np.isnan(h.val_loss[0]) == (len(given) == 2)  # no validation data: NaN
    model = Net()
    with pytest.raises(ValueError, match="do not match"):
        fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), (d["X_train"], d["y_train"][:5]), epochs=1)
    with pytest.raises(ValueError, match="X_train and y_train"):
        fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), {"X_train": d["X_train"]}, epochs=1)


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_is_exact_with_optimizer_state(tmp_path):
    model = Net()
    opt = MomentumSGD(model, lr=0.05)
    fit(model, SoftmaxCrossEntropy(), opt, data(), epochs=2, batch_size=16, rng=0)
    path = save_checkpoint(tmp_path / "ckpt.npz", model, opt)
    other, other_opt = Net(seed=5), MomentumSGD(Net(seed=5), lr=1.0, momentum=0.0)
    other_opt.params = named_parameters(other)
    load_checkpoint(path, other, other_opt)
    assert same(params(model), params(other))
    assert other_opt.lr == 0.05 and other_opt.momentum == 0.9
    assert same(opt.v, other_opt.v) and opt.v.keys() == other_opt.v.keys()


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    def trainer(seed_model, checkpoint=None, rng=0):
        model = Net(seed=seed_model)
        opt = MomentumSGD(model, lr=0.05)
        return Trainer(model, SoftmaxCrossEntropy(), opt, batch_size=16, rng=rng, scheduler=Halve(opt),
                       patience=10, checkpoint=checkpoint)

    straight = trainer(0)
    straight.fit(data(), epochs=4)
    first = trainer(0, checkpoint=tmp_path / "run.npz")
    first.fit(data(), epochs=2)
    resumed = trainer(9, rng=123).load(tmp_path / "run.npz")  # other weights, other RNG: all restored
    assert resumed.epoch == 2 and resumed.scheduler.count == 2
    resumed.fit(data(), epochs=2)
    assert same(params(straight.model), params(resumed.model))
    assert straight.history == resumed.history and straight.step == resumed.step == 32


def test_an_interrupted_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    model = Net()
    path = save_checkpoint(tmp_path / "ckpt.npz", model)
    before = path.read_bytes()
    for layer in model.layers:
        if isinstance(layer, Linear):
            layer.W += 1.0
    calls = {"n": 0}
    real_write = np.lib.format.write_array

    def crash_on_third_array(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", crash_on_third_array)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, model)
    assert calls["n"] == 3  # the writer did get half-way
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind
    monkeypatch.undo()
    restored = Net(seed=3)
    load_checkpoint(path, restored)
    assert same(params(restored), params(Net()))


def test_divergence_leaves_a_consistent_history():
    model = Net()
    trainer = Trainer(model, NaNOnCall(8), PlainSGD(model, 0.1), batch_size=30, rng=0)
    with pytest.raises(DivergenceError):
        trainer.fit(data(), epochs=3)
    lengths = {k: len(v) for k, v in trainer.history.as_arrays().items() if k != "step_loss"}
    assert set(lengths.values()) == {1}, lengths


def test_history_equality_treats_missing_validation_as_equal():
    runs = []
    for _ in range(2):
        model = Net()
        runs.append(fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), blobs(), epochs=2, rng=0))
    assert np.isnan(runs[0].val_loss).all() and runs[0] == runs[1]
    runs[1].train_loss[0] += 1e-12
    assert runs[0] != runs[1]


def test_checkpoint_has_ordinary_file_permissions(tmp_path):
    path = save_checkpoint(tmp_path / "p.npz", Net())
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_checkpoint_write_goes_through_fsync_and_replace(tmp_path, monkeypatch):
    import mlpbook.train as train
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(train.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(train.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    save_checkpoint(tmp_path / "c.npz", Net())
    assert calls[:2] == ["fsync", "replace"]


def test_loading_checks_names_and_shapes_before_changing_anything(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", Net(sizes=(2, 16, 3)))
    wider = Net(sizes=(2, 17, 3), seed=4)
    before = params(wider)
    with pytest.raises(ValueError, match=r"c\.npz: layers\.0\.W has shape \(16, 2\), Net expects \(17, 2\)"):
        load_checkpoint(path, wider)
    assert same(params(wider), before)
    with pytest.raises(ValueError, match=r"missing \['layers\.6\.W', 'layers\.6\.b'\]"):
        load_checkpoint(path, Net(sizes=(2, 16, 16, 3)))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.npz: not a readable mlpbook checkpoint"):
        load_checkpoint(junk, Net())
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz", Net())


def test_homework_style_model_checkpoint_and_plain_optimizer(tmp_path):
    model = HomeworkNet()
    opt = PlainSGD(model, 0.1)
    h = fit(model, SoftmaxCrossEntropy(), opt, data(), epochs=2, batch_size=16, rng=0)
    assert np.isfinite(h.val_loss).all()
    save_checkpoint(tmp_path / "hw.npz", model, opt)
    other = HomeworkNet(seed=2)
    other_opt = PlainSGD(other, 0.5)
    load_checkpoint(tmp_path / "hw.npz", other, other_opt)
    assert same(params(model), params(other)) and other_opt.lr == 0.1


def test_checkpoint_rejects_unsavable_state(tmp_path):
    with pytest.raises(TypeError, match="cannot save a object"):
        save_checkpoint(tmp_path / "x.npz", Net(), extra={"thing": object()})
    assert not (tmp_path / "x.npz").exists()


def test_history_arrays_and_plot():
    model = Net()
    h = fit(model, SoftmaxCrossEntropy(), PlainSGD(model, 0.1), data(), epochs=3, batch_size=30, rng=0)
    arrays = h.as_arrays()
    assert arrays["epoch"].tolist() == [1, 2, 3] and arrays["step_loss"].shape == (12,)
    import matplotlib
    matplotlib.use("Agg")
    axes = h.plot()
    assert len(axes) == 2 and len(axes[0].lines) == 3  # train, validation, best epoch
    import matplotlib.pyplot as plt
    plt.close("all")
    assert History().as_arrays()["train_loss"].shape == (0,)


# ---------------------------------------------------------------- with the book's own parts

def test_resume_with_the_books_mlp_adam_and_schedule_is_exact(tmp_path):
    from mlpbook.models.mlp import MLP
    from mlpbook.nn.loss import CrossEntropyLoss
    from mlpbook.optim.lr_scheduler import CosineAnnealingLR
    from mlpbook.optim.optimizers import Adam

    ds = load_digits(dtype=np.float32)

    def trainer(seed, checkpoint=None):
        model = MLP([64, 32, 10], "relu", rng=seed, dtype=np.float32)
        opt = Adam(model, lr=0.01)
        return Trainer(model, CrossEntropyLoss(), opt, batch_size=64, rng=seed,
                       scheduler=CosineAnnealingLR(opt, T_max=4), checkpoint=checkpoint)

    straight = trainer(0)
    straight.fit(ds, epochs=4)
    trainer(0, checkpoint=tmp_path / "adam.npz").fit(ds, epochs=2)
    resumed = trainer(1).load(tmp_path / "adam.npz")
    assert resumed.optimizer.state.keys() == straight.optimizer.state.keys()
    resumed.fit(ds, epochs=2)
    assert same(params(straight.model), params(resumed.model))
    assert straight.history == resumed.history and straight.history.val_acc[-1] > 0.9
    assert straight.optimizer.lr == resumed.optimizer.lr


def test_fit_leaves_the_model_in_evaluation_mode():
    """After fit, predictions are deterministic: Dropout is off (the next epoch turns it back on)."""
    from mlpbook.models.mlp import MLP
    from mlpbook.nn.loss import CrossEntropyLoss
    from mlpbook.optim.optimizers import SGD
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    model = MLP([3, 8, 2], dropout=0.5, rng=0)
    fit(model, CrossEntropyLoss(), SGD(model, lr=0.1), (X, y), epochs=1, batch_size=8, rng=0)
    assert not any(layer.training for _, layer in named_modules(model))
    assert np.array_equal(model.forward(X), model.forward(X))


def test_training_skips_the_gradient_with_respect_to_the_data_and_restores_the_flag():
    """The first Linear layer computes no dL/dX during an epoch; afterwards it does again."""
    from mlpbook.models.mlp import MLP
    from mlpbook.nn.loss import CrossEntropyLoss
    from mlpbook.optim.optimizers import SGD
    seen = []
    model = MLP([3, 8, 2], rng=0)
    first = model.layers[0]
    original = first.backward

    def spy(dLdZ):
        seen.append(first.needs_input_grad)
        return original(dLdZ)

    first.backward = spy
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.integers(0, 2, 16)
    fit(model, CrossEntropyLoss(), SGD(model, lr=0.1), (X, y), epochs=2, batch_size=8, rng=0)
    assert seen == [False] * 4 and first.needs_input_grad is True
