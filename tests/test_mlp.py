"""mlpbook.models.mlp: the homework's MLP0, MLP1, MLP4, Sequential and the general MLP."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlpbook.gradcheck import GradientCheckError, check_gradients, numerical_gradient, rel_error
from mlpbook.models.mlp import (ACTIVATIONS, MLP, MLP0, MLP1, MLP4, Sequential, count_parameters,
                                make_activation)
from mlpbook.nn.activation import GELU, Identity, ReLU, Sigmoid, Tanh
from mlpbook.nn.batchnorm import BatchNorm1d
from mlpbook.nn.dropout import Dropout
from mlpbook.nn.linear import Linear

HOMEWORK = {MLP0: [(2, 3)], MLP1: [(2, 3), (3, 2)], MLP4: [(2, 4), (4, 8), (8, 8), (8, 4), (4, 2)]}


# ## helpers

class FixedMasks(Sequential):
    """Reseeds NumPy's global generator before every forward, so Dropout (rng=None) repeats its masks."""

    def __init__(self, model, mask_seed=0):
        super().__init__(model)
        self.mask_seed = mask_seed

    def forward(self, x):
        np.random.seed(self.mask_seed)
        return super().forward(x)


def _inner(model):
    return model.layers[0] if isinstance(model, FixedMasks) else model


def check_model(model, x, tol=1e-7):
    """check_gradients on a whole model (biases before BatchNorm, whose true gradient is 0,
    pass through the check's noise floor)."""
    return check_gradients(model, x, tol=tol)


def relu_margin(model, x):
    """Smallest |input| of any ReLU for input x (central differences need it away from 0)."""
    X, smallest = x, np.inf
    for layer in _inner(model).layers:
        if isinstance(layer, ReLU):
            smallest = min(smallest, float(np.abs(X).min()))
        X = layer.forward(X)
    return smallest


def formula(sizes, batchnorm=False):
    P = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    return P + (2 * sum(sizes[1:-1]) if batchnorm else 0)


# ## the homework's models

@pytest.mark.parametrize("cls", list(HOMEWORK))
def test_homework_layers_are_linear_at_even_and_relu_at_odd_positions(cls):
    model = cls()
    assert len(model.layers) == 2 * len(HOMEWORK[cls])
    for i, (c_in, c_out) in enumerate(HOMEWORK[cls]):
        linear, act = model.layers[2 * i], model.layers[2 * i + 1]
        assert type(linear) is Linear and type(act) is ReLU
        assert linear.W.shape == (c_out, c_in) and linear.b.shape == (c_out, 1)


@pytest.mark.parametrize("cls", list(HOMEWORK))
def test_homework_constructor_takes_debug_first_and_defaults_to_false(cls):
    assert cls().debug is False
    assert cls(True).debug is True
    assert cls(debug=True).debug is True


@pytest.mark.parametrize("cls", list(HOMEWORK))
def test_homework_models_are_modules_with_parameters_state_and_modes(cls):
    model = cls(rng=0)
    assert len(model.parameters()) == 2 * len(HOMEWORK[cls])
    assert model.eval() is model and all(not l.training for l in model.layers)
    model.train()
    assert all(l.training for l in model.layers)
    assert set(model.state_dict()) == {f"layers.{2 * i}.{n}" for i in range(len(HOMEWORK[cls]))
                                       for n in ("W", "b")}


def test_mlp0_worked_example_by_hand():
    m = MLP0(debug=True)
    m.layers[0].W = np.array([[1.0, -1.0], [0.5, 0.5], [-1.0, 0.0]])
    m.layers[0].b = np.array([[0.0], [1.0], [0.5]])
    A1 = m.forward(np.array([[1.0, 2.0]]))
    dLdA0 = m.backward(np.ones((1, 3)))
    assert np.array_equal(m.Z0, [[-1.0, 2.5, -0.5]]) and np.array_equal(A1, [[0.0, 2.5, 0.0]])
    assert m.A1 is A1
    assert np.array_equal(m.dLdZ0, [[0.0, 1.0, 0.0]]) and np.array_equal(dLdA0, [[0.5, 0.5]])
    assert m.dLdA0 is dLdA0
    assert np.array_equal(m.layers[0].dLdW, [[0, 0], [1, 2], [0, 0]])
    assert np.array_equal(m.layers[0].dLdb, [[0], [1], [0]])


def test_mlp0_debug_attributes_and_shapes():
    m = MLP0(debug=True, rng=1)
    m.forward(np.random.default_rng(0).standard_normal((5, 2)))
    m.backward(np.ones((5, 3)))
    shapes = {k: getattr(m, k).shape for k in ("Z0", "A1", "dLdZ0", "dLdA0")}
    assert shapes == {"Z0": (5, 3), "A1": (5, 3), "dLdZ0": (5, 3), "dLdA0": (5, 2)}


def test_mlp1_debug_attributes_and_shapes():
    m = MLP1(debug=True, rng=1)
    x = np.random.default_rng(0).standard_normal((5, 2))
    out = m.forward(x)
    back = m.backward(np.ones_like(out))
    expected = {"Z0": (5, 3), "A1": (5, 3), "Z1": (5, 2), "A2": (5, 2),
                "dLdZ1": (5, 2), "dLdA1": (5, 3), "dLdZ0": (5, 3), "dLdA0": (5, 2)}
    assert {k: getattr(m, k).shape for k in expected} == expected
    assert m.A2 is out and m.dLdA0 is back
    # the intermediates are the layers' own outputs
    assert np.array_equal(m.A1, np.maximum(m.Z0, 0))
    assert np.array_equal(m.Z1, m.A1 @ m.layers[2].W.T + m.layers[2].b.T)


def test_mlp4_debug_lists_hold_every_intermediate():
    m = MLP4(debug=True, rng=2)
    x = np.random.default_rng(0).standard_normal((5, 2))
    out = m.forward(x)
    g = np.random.default_rng(1).standard_normal(out.shape)
    back = m.backward(g)
    assert len(m.A) == len(m.dLdA) == 11
    assert [a.shape[1] for a in m.A] == [2, 4, 4, 8, 8, 8, 8, 4, 4, 2, 2]
    assert all(a.shape == d.shape for a, d in zip(m.A, m.dLdA))
    assert np.array_equal(m.A[0], x) and m.A[-1] is out
    assert m.dLdA[-1] is g or np.array_equal(m.dLdA[-1], g)
    assert m.dLdA[0] is back


@pytest.mark.parametrize("cls", list(HOMEWORK))
def test_no_debug_attributes_without_debug(cls):
    m = cls(rng=0)
    m.backward(np.ones_like(m.forward(np.ones((3, 2)))))
    for name in ("Z0", "A1", "dLdZ0", "dLdA0"):
        assert not hasattr(m, name)
    assert not isinstance(getattr(m, "A", None), list)


@pytest.mark.parametrize("cls,seed", [(MLP0, 10), (MLP1, 11), (MLP4, 12), (MLP4, 13)])
def test_homework_models_pass_a_whole_model_gradient_check(cls, seed):
    model = cls(rng=seed)
    x = np.random.default_rng(seed).standard_normal((6, 2))
    assert relu_margin(model, x) > 1e-4
    errors = check_model(model, x)
    assert max(errors.values()) < 1e-7
    assert set(errors) == {"input"} | {p.name for p in model.parameters()}
    assert all(np.any(p.grad != 0) for p in model.parameters())


def test_a_backward_that_skips_the_activations_fails_the_check():
    class Skips(MLP4):
        def backward(self, dLdA):
            for layer in reversed(self.layers):
                if isinstance(layer, Linear):
                    dLdA = layer.backward(dLdA)
            return dLdA

    with pytest.raises(GradientCheckError):
        check_gradients(Skips(rng=12), np.random.default_rng(3).standard_normal((6, 2)))


@pytest.mark.parametrize("cls", list(HOMEWORK))
def test_homework_models_equal_the_general_mlp_with_an_output_relu(cls):
    sizes = [c for c, _ in HOMEWORK[cls]] + [HOMEWORK[cls][-1][1]]
    hw, gen = cls(rng=1), MLP(sizes, "relu", output_activation="relu", rng=2)
    assert [type(l) for l in gen.layers] == [type(l) for l in hw.layers]
    gen.load_state_dict(hw.state_dict())
    x = np.random.default_rng(4).standard_normal((7, 2))
    assert np.array_equal(gen.forward(x), hw.forward(x))
    g = np.random.default_rng(5).standard_normal((7, sizes[-1]))
    assert np.array_equal(gen.backward(g), hw.backward(g))
    for p, q in zip(gen.parameters(), hw.parameters()):
        assert p.name == q.name and np.array_equal(p.grad, q.grad)


# ## the general model

CONFIGS = [
    dict(sizes=[3, 5, 2]),
    dict(sizes=[3, 4]),
    dict(sizes=[3, 6, 5, 4, 2], activation="tanh"),
    dict(sizes=[3, 5, 5, 2], activation="sigmoid"),
    dict(sizes=[3, 5, 4, 2], activation="gelu"),
    dict(sizes=[3, 5, 4, 2], activation=Tanh),
    dict(sizes=[3, 5, 4, 2], activation="identity"),
    dict(sizes=[3, 5, 4, 2], activation="tanh", output_activation="softmax"),
    dict(sizes=[3, 5, 4, 2], batchnorm=True),
    dict(sizes=[3, 5, 4, 4, 2], activation="tanh", batchnorm=True),
    dict(sizes=[3, 6, 5, 2], dropout=0.5),
    dict(sizes=[3, 6, 5, 2], activation="gelu", batchnorm=True, dropout=0.3),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: str(c))
def test_general_mlp_passes_a_whole_model_gradient_check(config):
    x = np.random.default_rng(6).standard_normal((8, 3))
    for attempt in range(5):  # a new draw if a ReLU input lands next to the kink
        model = MLP(**config, rng=100 + attempt)
        if config.get("dropout"):
            model.layers = [l if not isinstance(l, Dropout) else Dropout(l.p) for l in model.layers]
            model = FixedMasks(model)
        if relu_margin(model, x) > 1e-4:
            break
    errors = check_model(model, x)
    assert max(errors.values()) < 1e-7
    assert all(np.any(p.grad != 0) for p in model.parameters())


def test_general_mlp_with_batchnorm_in_evaluation_mode_passes_the_plain_check():
    model = MLP([3, 5, 4, 2], "tanh", batchnorm=True, rng=3)
    x = np.random.default_rng(7).standard_normal((8, 3))
    model.forward(x)  # running statistics away from 0 and 1
    model.eval()
    errors = check_gradients(model, x)
    assert max(errors.values()) < 1e-7 and "layers.0.b" in errors


def test_sequential_with_dropout_p0_passes_the_plain_check():
    rng = np.random.default_rng(8)
    model = Sequential(Linear(3, 5, rng=rng), Tanh(), Dropout(0.0), Linear(5, 2, rng=rng))
    assert max(check_gradients(model, rng.standard_normal((6, 3))).values()) < 1e-7


def test_bias_before_batchnorm_cannot_change_the_output_in_training():
    model = MLP([3, 5, 2], "tanh", batchnorm=True, rng=9)
    x = np.random.default_rng(9).standard_normal((8, 3))
    out = model.forward(x)
    model.backward(np.ones_like(out))
    assert np.abs(model.layers[0].dLdb).max() < 1e-12
    model.layers[0].b += 3.0
    np.testing.assert_allclose(model.forward(x), out, rtol=0, atol=1e-12)
    # the plain relative error of two round-off noises is about 1; the check's floor passes it
    numeric = numerical_gradient(lambda _: np.sum(model.forward(x)), model.layers[0].b)
    model.forward(x)
    model.backward(np.ones_like(out))
    assert rel_error(model.layers[0].dLdb, numeric) > 0.5
    assert check_gradients(model, x)["layers.0.b"] < 1e-7


def test_layer_order_linear_batchnorm_activation_dropout_then_linear():
    m = MLP([2, 4, 3, 5], "gelu", batchnorm=True, dropout=0.2, output_activation="sigmoid", rng=0)
    assert [type(l) for l in m.layers] == [Linear, BatchNorm1d, GELU, Dropout] * 2 + [Linear, Sigmoid]
    assert [l.W.shape for l in m.layers if isinstance(l, Linear)] == [(4, 2), (3, 4), (5, 3)]
    assert [l.num_features for l in m.layers if isinstance(l, BatchNorm1d)] == [4, 3]
    assert all(l.p == 0.2 for l in m.layers if isinstance(l, Dropout))
    assert m.sizes == (2, 4, 3, 5)
    assert [type(l) for l in MLP([2, 3]).layers] == [Linear]


@pytest.mark.parametrize("name,cls", sorted(ACTIVATIONS.items()))
def test_activation_names_and_classes_give_new_objects(name, cls):
    m = MLP([2, 3, 3, 1], name, rng=0)
    acts = [l for l in m.layers if type(l) is cls]
    assert len(acts) == 2 and acts[0] is not acts[1]
    assert type(make_activation(name.upper())) is cls and type(make_activation(cls)) is cls


def test_activation_errors():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLP([2, 3, 1], "swish")
    with pytest.raises(TypeError, match="not an object"):
        MLP([2, 3, 3, 1], ReLU())
    with pytest.raises(TypeError):
        make_activation(3)


@pytest.mark.parametrize("sizes", [[], [3], [3, 0, 2], [3, 2.5, 2], [3, -1], (True, 2)])
def test_bad_sizes_are_refused(sizes):
    with pytest.raises(ValueError, match="MLP: sizes"):
        MLP(sizes)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_dropout_is_refused(p):
    with pytest.raises(ValueError, match="MLP: dropout"):
        MLP([2, 3, 1], dropout=p)


def test_general_debug_lists():
    m = MLP([3, 4, 2], "tanh", batchnorm=True, debug=True, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 3))
    out = m.forward(x)
    m.backward(np.ones_like(out))
    assert len(m.A) == len(m.dLdA) == len(m.layers) + 1 == 5
    assert [a.shape for a in m.A] == [(5, 3), (5, 4), (5, 4), (5, 4), (5, 2)]
    assert all(a.shape == d.shape for a, d in zip(m.A, m.dLdA))


def test_backward_does_not_modify_its_argument():
    for model in (MLP4(rng=0), MLP0(rng=0), MLP1(rng=0), MLP([2, 4, 3], "tanh", batchnorm=True, rng=0)):
        out = model.forward(np.random.default_rng(1).standard_normal((4, 2)))
        g = np.random.default_rng(2).standard_normal(out.shape)
        g0 = g.copy()
        model.backward(g)
        assert np.array_equal(g, g0)


# ## dtype, modes, state

@pytest.mark.parametrize("make", [
    lambda: MLP0(rng=0, dtype=np.float32), lambda: MLP1(rng=0, dtype=np.float32),
    lambda: MLP4(rng=0, dtype=np.float32),
    lambda: MLP([2, 5, 4, 3], "gelu", batchnorm=True, dropout=0.2, rng=0, dtype=np.float32),
    lambda: MLP([2, 5, 3], "sigmoid", output_activation="softmax", rng=0, dtype=np.float32),
])
def test_float32_is_preserved_through_forward_and_backward(make):
    model = make()
    assert all(p.value.dtype == np.float32 for p in model.parameters())
    x = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    out = model.forward(x)
    assert out.dtype == np.float32
    dx = model.backward(np.ones_like(out))
    assert dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_float32_input_to_a_float64_model_gives_float32():
    out = MLP4(rng=0).forward(np.ones((3, 2), np.float32))
    assert out.dtype == np.float32


def test_integer_input_is_accepted_as_float64():
    assert MLP4(rng=0).forward(np.ones((3, 2), dtype=int)).dtype == np.float64


def test_train_and_eval_reach_batchnorm_and_dropout():
    model = MLP([2, 8, 8, 2], batchnorm=True, dropout=0.5, rng=7)
    x = np.random.default_rng(7).standard_normal((16, 2))
    model.train()
    a, b = model.forward(x), model.forward(x)
    assert not np.array_equal(a, b)
    assert all(l.mask is not None for l in model.layers if isinstance(l, Dropout))
    model.eval()
    assert all(not l.training for l in model.layers) and not model.training
    before = model.state_dict()
    e1 = model.forward(x)
    assert np.array_equal(e1, model.forward(x))
    assert all(l.mask is None for l in model.layers if isinstance(l, Dropout))
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # running stats untouched
    # eval forward is the affine map with running statistics and no dropout
    X = x
    for l in model.layers:
        if isinstance(l, BatchNorm1d):
            X = (X - l.running_M) / np.sqrt(l.running_V + l.eps) * l.BW + l.Bb
        elif not isinstance(l, Dropout):
            X = l.forward(X)
    np.testing.assert_allclose(e1, X, rtol=1e-12, atol=1e-12)
    model.train()
    assert all(l.training for l in model.layers)


def test_state_dict_round_trip():
    model = MLP([3, 6, 4, 2], "tanh", batchnorm=True, rng=1)
    x = np.random.default_rng(2).standard_normal((10, 3))
    model.forward(x)  # running statistics change
    state = model.state_dict()
    assert {"layers.1.running_M", "layers.1.running_V", "layers.1.BW", "layers.0.W"} <= set(state)
    model.eval()
    out = model.forward(x)
    other = MLP([3, 6, 4, 2], "tanh", batchnorm=True, rng=99).eval()
    assert not np.allclose(other.forward(x), out)
    other.load_state_dict(state)
    assert np.array_equal(other.forward(x), out)
    with pytest.raises(ValueError, match="layers.0.W"):
        other.load_state_dict({**state, "layers.0.W": np.ones((7, 3))})


def test_rng_makes_models_reproducible_and_leaves_numpy_global_state_alone():
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a, b = MLP([3, 5, 2], rng=4), MLP([3, 5, 2], rng=4)
    MLP4(), MLP0(), MLP1(), MLP([2, 4, 2], batchnorm=True)
    assert np.array_equal(state, np.random.get_state()[1])
    assert all(np.array_equal(p.value, q.value) for p, q in zip(a.parameters(), b.parameters()))
    assert not np.array_equal(MLP4(rng=1).layers[0].W, MLP4(rng=2).layers[0].W)


def test_dropout_masks_follow_the_model_rng_or_numpy_global_state():
    x = np.ones((4, 6))
    m1, m2 = MLP([6, 8, 2], dropout=0.5, rng=3), MLP([6, 8, 2], dropout=0.5, rng=3)
    assert np.array_equal(m1.forward(x), m2.forward(x))
    g1, g2 = MLP([6, 8, 2], dropout=0.5, rng=3), MLP([6, 8, 2], dropout=0.5, rng=3)
    for m in (g1, g2):
        m.layers[2].rng = None  # homework style: masks from np.random
    np.random.seed(0)
    a = g1.forward(x)
    np.random.seed(0)
    assert np.array_equal(a, g2.forward(x))


# ## errors

@pytest.mark.parametrize("make,name", [(MLP0, "MLP0"), (MLP1, "MLP1"), (MLP4, "MLP4"),
                                       (lambda: MLP([2, 3, 1]), "MLP")])
def test_wrong_feature_count_names_the_model_and_shapes_and_changes_nothing(make, name):
    model = make()
    x = np.ones((4, 2))
    model.forward(x)
    cached = model.layers[0].A
    with pytest.raises(ValueError, match=rf"{name}\.forward: expected shape \(N, 2\), got \(5, 3\)"):
        model.forward(np.ones((5, 3)))
    with pytest.raises(ValueError, match=rf"{name}\.forward: expected a 2-d array, got shape \(2,\)"):
        model.forward(np.ones(2))
    assert model.layers[0].A is cached


@pytest.mark.parametrize("make,name", [(MLP0, "MLP0"), (MLP1, "MLP1"), (MLP4, "MLP4"),
                                       (lambda: MLP([2, 3, 1]), "MLP")])
def test_backward_errors_name_the_model(make, name):
    model = make()
    with pytest.raises(RuntimeError, match=rf"{name}\.backward called before forward"):
        model.backward(np.ones((4, 1)))
    out = model.forward(np.ones((4, 2)))
    with pytest.raises(ValueError, match=rf"{name}\.backward: expected .* of shape \(4, {out.shape[1]}\).*got \(4, 7\)"):
        model.backward(np.ones((4, 7)))


def test_sequential_names_the_layer_that_does_not_fit():
    model = Sequential(Linear(2, 3, rng=0), ReLU(), Linear(4, 1, rng=0))
    with pytest.raises(ValueError, match=r"Sequential\.forward: layers\.2 Linear\(4, 1\) rejected an input of shape \(5, 3\)"):
        model.forward(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"Sequential\.forward: expected shape \(N, 2\)"):
        model.forward(np.ones((5, 4)))


def test_sequential_container_protocol():
    layers = [Linear(2, 3, rng=0), Tanh(), Linear(3, 1, rng=0)]
    model = Sequential(*layers)
    assert len(model) == 3 and model[1] is layers[1] and model.layers == layers
    assert "(1): Tanh()" in repr(model) and "(0): Linear(2, 3)" in repr(model)
    assert Sequential(Tanh(), Identity()).forward(np.zeros((2, 5))).shape == (2, 5)


# ## counting

def test_parameter_counts():
    assert [count_parameters(m()) for m in (MLP0, MLP1, MLP4)] == [9, 17, 170]
    assert count_parameters(MLP([784, 100, 10])) == 79_510
    assert count_parameters(MLP([784, 50, 100, 10])) == 45_360
    assert count_parameters(MLP([3072, 120, 120, 120, 120, 10], batchnorm=True)) == 414_490


# ## property-based

@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=5), n=st.integers(4, 7),
       activation=st.sampled_from(["tanh", "sigmoid", "gelu", "identity"]),
       batchnorm=st.booleans(), seed=st.integers(0, 2**16))
def test_random_architectures_have_the_right_shapes_counts_and_gradients(sizes, n, activation,
                                                                         batchnorm, seed):
    if batchnorm and activation == "identity":
        activation = "tanh"  # Bb of a BatchNorm followed by affine maps only into another one is dead too
    if batchnorm:
        # BatchNorm(Z W_kᵀ) does not change when a row of W_k is scaled, so dL/dW_k is orthogonal
        # to W_k row by row: zero in truth when C_{k-1} = 1, and noise cannot pass a relative check
        sizes = [max(c, 2) for c in sizes[:-1]] + sizes[-1:]
    model = MLP(sizes, activation, batchnorm=batchnorm, rng=seed, debug=True)
    assert count_parameters(model) == formula(sizes, batchnorm)
    x = np.random.default_rng(seed).standard_normal((n, sizes[0]))
    out = model.forward(x)
    assert out.shape == (n, sizes[-1])
    assert model.backward(np.ones_like(out)).shape == x.shape
    assert all(a.shape == d.shape for a, d in zip(model.A, model.dLdA))
    model.debug = False
    # a feature with a tiny batch variance makes BatchNorm so steep that central differences
    # with h = 1e-5 are no longer accurate to 1e-7; such draws test the check, not the model
    assume(all(l.V.min() > 0.05 for l in model.layers if isinstance(l, BatchNorm1d)))
    # n >= 4: BatchNorm over 2 samples outputs ±1 whatever its input, and the gradients of
    # everything before it are then zero in truth (a relative error of noise against noise)
    assert max(check_model(model, x).values()) < 1e-7


# ## parity with PyTorch

def _torch_twin(model, torch):
    """An equivalent torch.nn.Sequential with the same weights (float64)."""
    nn = torch.nn
    acts = {ReLU: nn.ReLU, Tanh: nn.Tanh, Sigmoid: nn.Sigmoid, GELU: nn.GELU, Identity: nn.Identity}
    mods = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            t = nn.Linear(layer.in_features, layer.out_features).double()
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(layer.W))
                t.bias.copy_(torch.from_numpy(layer.b.ravel()))
        elif isinstance(layer, BatchNorm1d):
            t = nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=1 - layer.alpha).double()
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(layer.BW.ravel()))
                t.bias.copy_(torch.from_numpy(layer.Bb.ravel()))
        elif isinstance(layer, Dropout):
            assert layer.p == 0
            t = nn.Dropout(0.0)
        else:
            t = acts[type(layer)]()
        mods.append(t)
    return nn.Sequential(*mods)


@pytest.mark.parametrize("make", [
    lambda: MLP4(rng=0),
    lambda: MLP1(rng=0),
    lambda: MLP([5, 7, 6, 3], "gelu", rng=1),
    lambda: MLP([5, 7, 6, 3], "tanh", batchnorm=True, rng=2),
    lambda: MLP([5, 8, 8, 8, 4], "sigmoid", batchnorm=True, rng=3),
    lambda: Sequential(Linear(5, 4, rng=4), ReLU(), Dropout(0.0), Linear(4, 2, rng=4)),
], ids=["MLP4", "MLP1", "gelu", "tanh+bn", "sigmoid+bn", "dropout0"])
def test_parity_with_torch_sequential(make):
    torch = pytest.importorskip("torch")
    model = make()
    twin = _torch_twin(model, torch).train()
    C_in = model.layers[0].in_features
    x = np.random.default_rng(5).standard_normal((9, C_in))
    out = model.forward(x)
    g = np.random.default_rng(6).standard_normal(out.shape)
    dx = model.backward(g)

    xt = torch.from_numpy(x).requires_grad_(True)
    yt = twin(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    ours = [p.grad.reshape(-1) for p in model.parameters()]
    theirs = [p.grad.numpy().reshape(-1) for p in twin.parameters()]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    bns = [(l, t) for l, t in zip(model.layers, twin) if isinstance(l, BatchNorm1d)]
    for ours_bn, torch_bn in bns:  # the running mean agrees; the variance is biased here, unbiased in torch
        np.testing.assert_allclose(ours_bn.running_M.ravel(), torch_bn.running_mean.numpy(), rtol=1e-10)
