"""Single operations: Softmax and BatchNorm backward in two forms, backprop vs central
differences, and the machine's matrix-multiply throughput.

Each function checks that its two forms give the same numbers before it times them, and
returns medians of interleaved repeats.
"""
import numpy as np

from common import interleaved_calls, median, paired_ratio
from epoch import SIZES


# ----------------------------------------------------------------------------- Softmax
def softmax_backward_jacobian(A, dLdA):
    """Source 000's form: for each sample, the C × C Jacobian diag(a) - a aᵀ, then a product."""
    dLdZ = np.empty_like(dLdA)
    for i in range(A.shape[0]):
        a = A[i]
        J = np.diag(a) - np.outer(a, a)
        dLdZ[i] = dLdA[i] @ J
    return dLdZ


def softmax_backward(N, C, dtype, repeat):
    """Seconds of mlpbook's O(N·C) Softmax.backward and of the Jacobian loop, and their ratio."""
    from mlpbook.nn.activation import Softmax
    rng = np.random.default_rng(C)
    layer = Softmax()
    A = layer.forward(rng.standard_normal((N, C)).astype(dtype))
    G = rng.standard_normal((N, C)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(softmax_backward_jacobian(A, G), layer.backward(G), rtol=tol, atol=tol)
    number = max(1, int(2000 / C))
    t = interleaved_calls({"fast": lambda: layer.backward(G),
                           "jacobian": lambda: softmax_backward_jacobian(A, G)}, repeat, number)
    return median(t["fast"]), median(t["jacobian"]), paired_ratio(t, "jacobian", "fast")


# ----------------------------------------------------------------------------- BatchNorm
def batchnorm_backward_long(dLdBZ, Z, M, V, gamma, eps):
    """The long form of chapter 14: through dL/dẐ, dL/dσ², dL/dμ to dL/dZ (and dLdBW, dLdBb)."""
    N = Z.shape[0]
    dLdBb = dLdBZ.sum(axis=0, keepdims=True)
    NZ = (Z - M) / np.sqrt(V + eps)
    dLdBW = (dLdBZ * NZ).sum(axis=0, keepdims=True)
    dLdNZ = dLdBZ * gamma
    dLdV = (dLdNZ * (Z - M) * -0.5 * (V + eps) ** -1.5).sum(axis=0, keepdims=True)
    dLdM = (-dLdNZ / np.sqrt(V + eps)).sum(axis=0, keepdims=True) \
        + dLdV * (-2 * (Z - M)).mean(axis=0, keepdims=True)
    dLdZ = dLdNZ / np.sqrt(V + eps) + dLdV * 2 * (Z - M) / N + dLdM / N
    return dLdZ, dLdBW, dLdBb


def batchnorm_backward(N, C, dtype, repeat):
    """Seconds of BatchNorm1d.backward (compact form) and of the long form, and their ratio."""
    from mlpbook.nn.batchnorm import BatchNorm1d
    rng = np.random.default_rng(N + C)
    layer = BatchNorm1d(C, dtype=dtype)
    layer.BW[...] = rng.uniform(0.5, 1.5, (1, C))
    Z = rng.normal(2.0, 3.0, (N, C)).astype(dtype)
    layer.forward(Z)
    G = rng.standard_normal((N, C)).astype(dtype)
    gamma = layer.BW.astype(dtype)
    long = batchnorm_backward_long(G, Z, layer.M, layer.V, gamma, layer.eps)
    compact = layer.backward(G)
    tol = 2e-3 if dtype == np.float32 else 1e-10
    for a, b in zip(long, (compact, layer.dLdBW, layer.dLdBb)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(a).max())
    t = interleaved_calls({"compact": lambda: layer.backward(G),
                           "long": lambda: batchnorm_backward_long(G, Z, layer.M, layer.V, gamma, layer.eps)},
                          repeat, 20)
    return median(t["compact"]), median(t["long"]), paired_ratio(t, "long", "compact")


# ----------------------------------------------------------------------------- backprop vs numerical
def backprop_vs_numerical(sizes=(20, 16, 5), N=32, repeat=5):
    """Seconds of one backward pass and of central differences over all P parameters (float64)."""
    from mlpbook.gradcheck import numerical_gradient, rel_error
    from mlpbook.models.mlp import MLP
    from mlpbook.nn.loss import CrossEntropyLoss
    from mlpbook.nn.module import named_parameters

    rng = np.random.default_rng(0)
    model, loss = MLP(sizes, "relu", rng=1), CrossEntropyLoss()
    X, y = rng.standard_normal((N, sizes[0])), rng.integers(0, sizes[-1], N)
    params = named_parameters(model)

    def backprop():
        loss.forward(model.forward(X), y)
        model.backward(loss.backward())
        return [p.grad.copy() for p in params]

    def numerical():
        f = lambda _: loss.forward(model.forward(X), y)  # noqa: E731
        return [numerical_gradient(f, p.value) for p in params]

    error = max(rel_error(a, b) for a, b in zip(backprop(), numerical()))
    assert error < 1e-6, error
    t = interleaved_calls({"backprop": backprop, "numerical": numerical}, repeat, 1)
    P = sum(p.value.size for p in params)
    return median(t["backprop"]), median(t["numerical"]), paired_ratio(t, "numerical", "backprop"), P, error


# ----------------------------------------------------------------------------- matmul throughput
def step_products(B, dtype, rng=None):
    """The eight products of one training step at batch B: a list of (A, B_matrix, out)."""
    rng = np.random.default_rng(0) if rng is None else rng
    r = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    prods = []
    for k, (c_in, c_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        A, W, G = r(B, c_in), r(c_out, c_in), r(B, c_out)
        prods.append((A, W.T, np.empty((B, c_out), dtype)))          # forward Z = A Wᵀ
        prods.append((G.T, A, np.empty((c_out, c_in), dtype)))       # dLdW = dLdZᵀ A
        if k > 0:
            prods.append((G, W, np.empty((B, c_in), dtype)))          # dLdA = dLdZ W
    return prods


def gflops(a, b, out, repeat=7, number=20) -> float:
    """Measured GFLOP/s of out = a @ b (2·m·k·n FLOPs per product)."""
    flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
    t = median(interleaved_calls({"mm": lambda: np.matmul(a, b, out=out)}, repeat, number)["mm"])
    return flops / t / 1e9


def square_gflops(n, dtype, repeat=5) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    return gflops(a, b, np.empty((n, n), dtype), repeat, 2)
