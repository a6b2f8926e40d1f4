"""mlpbook.nn.module: the parameter mechanism, train/eval, state dicts, errors, randomness."""
import numpy as np
import pytest

import mlpbook
from mlpbook.nn.module import (Module, Parameter, as_generator, check_grad_shape, check_input,
                               named_modules, named_parameters)


class Scale(Module):
    params = {"gamma": "dLdgamma"}
    buffers = ("count",)

    def __init__(self, C):
        self.gamma, self.count = np.ones((1, C)), np.zeros(1)


class Chain(Module):
    def __init__(self, *layers):
        self.layers = list(layers)


class Plain:
    """A homework-style layer that does not inherit from Module."""
    params = {"W": "dLdW"}

    def __init__(self):
        self.W = np.zeros((2, 2))


def test_named_parameters_walks_models_lists_and_plain_objects():
    model = Chain(Scale(2), Chain(Scale(3)), Plain())
    assert [p.name for p in named_parameters(model)] == ["layers.0.gamma", "layers.1.layers.0.gamma", "layers.2.W"]
    assert [p.name for p in named_parameters([Scale(1), object(), Plain()])] == ["0.gamma", "2.W"]
    assert [p.name for p in named_parameters(Scale(1))] == ["gamma"]


def test_a_shared_array_is_listed_once():
    a, b = Scale(2), Scale(2)
    b.gamma = a.gamma
    assert len(named_parameters(Chain(a, b))) == 1


def test_parameter_reads_the_latest_gradient():
    layer = Scale(2)
    (p,) = layer.parameters()
    assert p.grad is None
    layer.dLdgamma = np.ones((1, 2))
    assert p.grad is layer.dLdgamma
    layer.dLdgamma = 2 * np.ones((1, 2))
    assert p.grad[0, 0] == 2 and p.value is layer.gamma
    assert isinstance(p, Parameter) and "gamma" in repr(p)


def test_train_and_eval_reach_every_layer():
    model = Chain(Scale(2), Chain(Scale(2)))
    assert model.eval() is model
    assert [m.training for _, m in named_modules(model)] == [False] * 4
    model.train()
    assert all(m.training for _, m in named_modules(model))


def test_state_dict_round_trip_includes_buffers_and_copies():
    model = Chain(Scale(2), Scale(3))
    state = model.state_dict()
    assert set(state) == {"layers.0.gamma", "layers.0.count", "layers.1.gamma", "layers.1.count"}
    state["layers.0.gamma"][:] = 7  # a copy: the model is untouched
    assert model.layers[0].gamma[0, 0] == 1
    model.load_state_dict(state)
    assert model.layers[0].gamma[0, 0] == 7


def test_load_state_dict_rejects_wrong_names_and_shapes_without_changing_anything():
    model = Chain(Scale(2))
    before = model.state_dict()
    with pytest.raises(KeyError, match="missing.*layers.0.count"):
        model.load_state_dict({"layers.0.gamma": np.zeros((1, 2))})
    with pytest.raises(ValueError, match=r"layers.0.gamma has shape \(1, 3\), the model expects \(1, 2\)"):
        model.load_state_dict({**before, "layers.0.gamma": np.zeros((1, 3))})
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_check_input_names_the_layer_and_the_shapes():
    layer = Scale(3)
    with pytest.raises(ValueError, match=r"Scale.forward: expected a 2-d array, got shape \(3,\)"):
        check_input(layer, "forward", np.ones(3), ndim=2, features=3)
    with pytest.raises(ValueError, match=r"Scale.forward: expected shape \(N, 3\), got \(2, 4\)"):
        check_input(layer, "forward", np.ones((2, 4)), ndim=2, features=3)
    assert check_input(layer, "forward", np.ones((2, 3), np.float32), ndim=2).dtype == np.float32
    assert check_input(layer, "forward", np.ones((2, 3), int), ndim=2).dtype == np.float64


def test_check_grad_shape_catches_backward_before_forward_and_wrong_shapes():
    layer = Scale(3)
    with pytest.raises(RuntimeError, match="Scale.backward called before forward"):
        check_grad_shape(layer, "dLdZ", np.ones((2, 3)), None)
    with pytest.raises(ValueError, match=r"expected dLdZ of shape \(2, 3\).*got \(2, 4\)"):
        check_grad_shape(layer, "dLdZ", np.ones((2, 4)), (2, 3))


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="Scale does not define forward"):
        Scale(1)(np.ones((1, 1)))


def test_seed_makes_the_package_generator_reproducible_and_leaves_numpy_global_state_alone():
    global_state = np.random.get_state()[1].copy()
    mlpbook.seed(11)
    first = as_generator().random(4)
    mlpbook.seed(11)
    assert np.array_equal(first, as_generator().random(4))
    assert np.array_equal(as_generator(5).random(3), np.random.default_rng(5).random(3))
    g = np.random.default_rng(0)
    assert as_generator(g) is g
    assert np.array_equal(global_state, np.random.get_state()[1])
    with pytest.raises(TypeError, match="rng must be"):
        as_generator("seed")
