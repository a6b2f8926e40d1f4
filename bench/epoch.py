"""One training epoch of the same 784-256-128-10 ReLU MLP, three ways.

* ``MlpbookEpoch``: mlpbook's MLP, CrossEntropyLoss, SGD (momentum) and Trainer, as a reader
  would write it.
* ``FusedEpoch``: the same computation written inline in NumPy, with preallocated buffers and
  in-place updates; the honest fast baseline for "NumPy and Python, no framework".
* ``TorchEpoch``: the same model in PyTorch on the CPU (only when torch is importable).

Every runner has ``run()`` (one epoch over the whole data set) and a ``step_check`` that lets
``check_same_update`` confirm that all three compute the same update from the same weights.
"""
import numpy as np

SIZES = (784, 256, 128, 10)


def synthetic_data(n: int, dtype, seed: int = 0):
    """n MNIST-sized samples: pixels uniform in [0, 1), labels uniform in 0..9."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, SIZES[0]), dtype=np.float32).astype(dtype, copy=False)
    y = rng.integers(0, SIZES[-1], n)
    return X, y


def initial_weights(dtype, seed: int = 1):
    """W_k of shape (C_out, C_in) and b_k of shape (C_out,), PyTorch's default uniform init."""
    rng = np.random.default_rng(seed)
    out = []
    for c_in, c_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(c_in)
        out.append((rng.uniform(-bound, bound, (c_out, c_in)).astype(dtype),
                    rng.uniform(-bound, bound, c_out).astype(dtype)))
    return out


def matmul_flops(n: int, sizes=SIZES, skip_first_dLdA: bool = True) -> int:
    """FLOPs of the matrix products of one forward + backward pass over n samples.

    Per Linear: forward Z = A Wᵀ (2 n C_in C_out), backward dLdW = dLdZᵀ A and dLdA = dLdZ W
    (2 n C_in C_out each); the first layer's dLdA is not needed for training.
    """
    per_sample = 0
    for k, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        products = 2 if (k == 0 and skip_first_dLdA) else 3
        per_sample += products * 2 * c_in * c_out
    return n * per_sample


# ----------------------------------------------------------------------------- mlpbook
class MlpbookEpoch:
    """mlpbook's model, loss, optimizer and training loop."""

    def __init__(self, X, y, batch_size=128, lr=0.01, momentum=0.9, seed=0):
        from mlpbook.models.mlp import MLP
        from mlpbook.nn.loss import CrossEntropyLoss
        from mlpbook.optim.optimizers import SGD
        from mlpbook.train import Trainer

        self.X, self.y = X, y
        self.model = MLP(SIZES, "relu", dtype=X.dtype, rng=seed)
        # what the Trainer does during an epoch, so that step() below is the Trainer's step too
        self.model.layers[0].needs_input_grad = False
        self.loss = CrossEntropyLoss()
        self.optimizer = SGD(self.model, lr=lr, momentum=momentum)
        self.trainer = Trainer(self.model, self.loss, self.optimizer, batch_size=batch_size, rng=seed)

    def set_weights(self, weights):
        linears = [l for l in self.model.layers if hasattr(l, "W")]
        for layer, (W, b) in zip(linears, weights):
            layer.W[...] = W
            layer.b[...] = b[:, None]

    def weights(self):
        linears = [l for l in self.model.layers if hasattr(l, "W")]
        return [(l.W.copy(), l.b[:, 0].copy()) for l in linears]

    def step(self, Xb, yb) -> float:
        """One training step on one batch, exactly as the Trainer does it."""
        value = self.loss.forward(self.model.forward(Xb), yb)
        self.model.backward(self.loss.backward())
        self.optimizer.step()
        return float(value)

    def run(self):
        return self.trainer.fit((self.X, self.y), epochs=1).train_loss[-1]


# ----------------------------------------------------------------------------- hand-fused NumPy
class FusedEpoch:
    """The same model and update, inline: preallocated buffers, in-place elementwise work.

    Layout as in mlpbook: W (C_out, C_in), so Z = A @ W.T; BLAS reads transposed operands
    at no cost, so the layout does not matter for speed.
    """

    def __init__(self, X, y, batch_size=128, lr=0.01, momentum=0.9, seed=0):
        self.X, self.y, self.B, self.lr, self.mu = X, y, batch_size, lr, momentum
        self.rng = np.random.default_rng(seed)
        self.params = [(W.copy(), b.copy()) for W, b in initial_weights(X.dtype)]
        self.velocity = [(np.zeros_like(W), np.zeros_like(b)) for W, b in self.params]
        self.grads = [(np.empty_like(W), np.empty_like(b)) for W, b in self.params]
        self.scratch = [(np.empty_like(W), np.empty_like(b)) for W, b in self.params]
        dt, B = X.dtype, batch_size
        self.xb = np.empty((B, SIZES[0]), dt)
        self.Z = [np.empty((B, c), dt) for c in SIZES[1:]]      # pre-activations, then activations
        self.dA = [np.empty((B, c), dt) for c in SIZES[1:-1]]   # gradients w.r.t. hidden outputs
        self.mask = [np.empty((B, c), bool) for c in SIZES[1:-1]]

    def set_weights(self, weights):
        for (W, b), (W0, b0) in zip(self.params, weights):
            W[...], b[...] = W0, b0

    def weights(self):
        return [(W.copy(), b.copy()) for W, b in self.params]

    def step(self, xb, yb) -> float:
        """Forward, softmax cross-entropy, backward and momentum update on one batch (n, 784)."""
        n = len(xb)
        (W1, b1), (W2, b2), (W3, b3) = self.params
        Z1, Z2, Z3 = (z[:n] for z in self.Z)
        # forward: Z = A Wᵀ + b, ReLU in place (the pre-activation is not needed again)
        np.matmul(xb, W1.T, out=Z1); Z1 += b1; np.maximum(Z1, 0, out=Z1)
        np.matmul(Z1, W2.T, out=Z2); Z2 += b2; np.maximum(Z2, 0, out=Z2)
        np.matmul(Z2, W3.T, out=Z3); Z3 += b3
        # loss by log-sum-exp; Z3 becomes softmax - onehot, divided by n: dL/dZ3
        Z3 -= Z3.max(axis=1, keepdims=True)
        rows = np.arange(n)
        picked = Z3[rows, yb]
        np.exp(Z3, out=Z3)
        sums = Z3.sum(axis=1, keepdims=True)
        loss = float(np.log(sums).sum(dtype=np.float64) - picked.sum(dtype=np.float64)) / n
        Z3 /= sums
        Z3[rows, yb] -= 1
        Z3 *= 1 / n
        # backward
        (g1, gb1), (g2, gb2), (g3, gb3) = self.grads
        dA2, dA1 = self.dA[1][:n], self.dA[0][:n]
        m2, m1 = self.mask[1][:n], self.mask[0][:n]
        np.matmul(Z3.T, Z2, out=g3); np.sum(Z3, axis=0, out=gb3)
        np.matmul(Z3, W3, out=dA2); np.greater(Z2, 0, out=m2); dA2 *= m2
        np.matmul(dA2.T, Z1, out=g2); np.sum(dA2, axis=0, out=gb2)
        np.matmul(dA2, W2, out=dA1); np.greater(Z1, 0, out=m1); dA1 *= m1
        np.matmul(dA1.T, xb, out=g1); np.sum(dA1, axis=0, out=gb1)
        # SGD with momentum: v = mu v + g; W -= lr v
        for (W, b), (vW, vb), (gW, gb), (sW, sb) in zip(self.params, self.velocity, self.grads, self.scratch):
            for P, v, g, s in ((W, vW, gW, sW), (b, vb, gb, sb)):
                v *= self.mu
                v += g
                np.multiply(v, self.lr, out=s)
                P -= s
        return loss

    def run(self):
        X, y, B = self.X, self.y, self.B
        order = self.rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), B):
            idx = order[start:start + B]
            xb = np.take(X, idx, axis=0, out=self.xb[:len(idx)], mode="clip")  # "raise" would buffer
            total += self.step(xb, y[idx]) * len(idx)
        return total / len(X)


# ----------------------------------------------------------------------------- the matrix products alone
class MatmulOnlyEpoch:
    """Only the matrix products of an epoch (no bias, activation, loss, update or shuffling).

    Per batch: Z = A Wᵀ for the three layers, dLdW = dLdZᵀ A for the three layers and
    dLdA = dLdZ W for the last two, into preallocated arrays. Its time is what the epoch's
    products need on this machine at these shapes: the practical lower limit of an epoch.
    """

    def __init__(self, X, y, batch_size=128, seed=0):
        self.X, self.B = X, batch_size
        dt, B = X.dtype, batch_size
        self.W = [W for W, _ in initial_weights(dt)]
        self.gW = [np.empty_like(W) for W in self.W]
        self.Z = [np.empty((B, c), dt) for c in SIZES[1:]]
        self.dA = [np.empty((B, c), dt) for c in SIZES[1:-1]]

    def step(self, xb):
        n = len(xb)
        (W1, W2, W3), (g1, g2, g3) = self.W, self.gW
        Z1, Z2, Z3 = (z[:n] for z in self.Z)
        dA1, dA2 = (d[:n] for d in self.dA)
        np.matmul(xb, W1.T, out=Z1); np.matmul(Z1, W2.T, out=Z2); np.matmul(Z2, W3.T, out=Z3)
        np.matmul(Z3.T, Z2, out=g3); np.matmul(Z3, W3, out=dA2)
        np.matmul(dA2.T, Z1, out=g2); np.matmul(dA2, W2, out=dA1)
        np.matmul(dA1.T, xb, out=g1)

    def run(self):
        for start in range(0, len(self.X), self.B):
            self.step(self.X[start:start + self.B])


# ----------------------------------------------------------------------------- PyTorch
def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class TorchEpoch:
    """The same model in PyTorch on the CPU: nn.Sequential, F.cross_entropy, optim.SGD."""

    def __init__(self, X, y, batch_size=128, lr=0.01, momentum=0.9, seed=0, threads=2):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        dt = torch.float32 if X.dtype == np.float32 else torch.float64
        torch.manual_seed(seed)
        layers = []
        for c_in, c_out in zip(SIZES[:-1], SIZES[1:]):
            layers += [torch.nn.Linear(c_in, c_out, dtype=dt), torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers[:-1])
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        self.B = batch_size
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum)
        self.generator = torch.Generator().manual_seed(seed)

    def _linears(self):
        return [m for m in self.model if isinstance(m, self.torch.nn.Linear)]

    def set_weights(self, weights):
        with self.torch.no_grad():
            for layer, (W, b) in zip(self._linears(), weights):
                layer.weight.copy_(self.torch.from_numpy(W))
                layer.bias.copy_(self.torch.from_numpy(b))

    def weights(self):
        return [(l.weight.detach().numpy().copy(), l.bias.detach().numpy().copy()) for l in self._linears()]

    def step(self, xb, yb) -> float:
        F = self.torch.nn.functional
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(xb), yb)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def run(self):
        torch, B = self.torch, self.B
        order = torch.randperm(len(self.X), generator=self.generator)
        total = 0.0
        for start in range(0, len(self.X), B):
            idx = order[start:start + B]
            total += self.step(self.X[idx], self.y[idx]) * len(idx)
        return total / len(self.X)

    def step_numpy(self, xb, yb):
        return self.step(self.torch.from_numpy(xb), self.torch.from_numpy(yb.astype(np.int64)))


def check_same_update(runners, dtype, steps=3, n=128, seed=5) -> list[float]:
    """For each runner after the first: the largest relative difference of its update from the first's.

    All runners start from the same weights and see the same batches; the first runner is the
    reference. Per runner: max over parameters of ‖W - W_ref‖ / ‖W_ref - W_0‖ (relative to the
    change the steps made, so it measures the update, not the weights).
    """
    X, y = synthetic_data(n * steps, dtype, seed)
    w0 = initial_weights(dtype)
    results = []
    for r in runners:
        r.set_weights(w0)
        for s in range(steps):
            xb, yb = X[s * n:(s + 1) * n].copy(), y[s * n:(s + 1) * n].copy()
            (r.step_numpy if hasattr(r, "step_numpy") else r.step)(xb, yb)
        results.append(r.weights())
    out = []
    for other in results[1:]:
        worst = 0.0
        for (Wr, br), (Wo, bo), (W0, b0) in zip(results[0], other, w0):
            for a, b, c in ((Wr, Wo, W0), (br, bo, b0)):
                change = np.linalg.norm((a - c).astype(np.float64))
                worst = max(worst, float(np.linalg.norm((a - b).astype(np.float64)) / change))
        out.append(worst)
    return out
