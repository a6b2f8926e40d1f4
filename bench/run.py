"""mlpbook benchmarks: ``make bench`` (or ``.venv/bin/python bench/run.py [--quick]``).

Prints one Markdown table and saves it, with a header describing the machine, under
bench/results/ (ignored by git). Not a test: nothing here fails on speed. What it measures:

* one training epoch of a 784-256-128-10 ReLU MLP (60,000 synthetic MNIST-sized samples,
  batch 128, SGD with momentum, softmax cross-entropy on integer labels), built from mlpbook
  (model, loss, optimizer, Trainer), as a hand-fused NumPy loop, in PyTorch on the CPU (when
  installed), and as its matrix products alone, in float32 and float64; the variants run in
  turn within every round and the table gives medians and within-round ratios;
* the matrix-multiply throughput this implies, and each epoch as a multiple of that limit;
* the peak extra memory of a training step (tracemalloc), and how it grows with the batch;
* time per sample against the batch size, where Python's per-step cost shows;
* Softmax backward (O(N·C) vs per-sample Jacobians), BatchNorm backward (compact vs long),
  and backprop vs central differences.

Options: ``--quick`` (a small version, about a minute), ``--threads N`` (BLAS and PyTorch
threads, default 2), ``--rounds R``, ``--budget S`` (seconds for the epoch rounds).
"""
import argparse
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a small version (6,000 samples, fewer repeats)")
    p.add_argument("--threads", type=int, default=2, help="threads for BLAS and PyTorch (default 2)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds of epochs (default 5; quick 3)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds after which no new round of epochs starts (at least 3 rounds run)")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    return p.parse_args(argv)


ARGS = parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)          # before NumPy loads its BLAS
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import kernels  # noqa: E402
import memory  # noqa: E402
from common import interleaved, median, paired_ratio  # noqa: E402
from epoch import (FusedEpoch, MatmulOnlyEpoch, MlpbookEpoch, SIZES, TorchEpoch,  # noqa: E402
                   check_same_update, matmul_flops, synthetic_data, torch_available)

DTYPES = (np.float32, np.float64)


# ----------------------------------------------------------------------------- formatting
def ms(seconds):
    v = seconds * 1e3
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.3f}"


def us(seconds):
    v = seconds * 1e6
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def x(ratio):
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:,.0f}×"


def kib(n):
    return f"{n / 1024:,.0f} KiB"


# ----------------------------------------------------------------------------- sections
def epoch_rows(N, rounds, budget, threads, have_torch):
    """Epoch times per dtype, interleaved; returns {dtype: dict of results}."""
    out = {}
    for dtype in DTYPES:
        small_X, small_y = synthetic_data(2048, dtype, seed=9)
        check = [MlpbookEpoch(small_X, small_y), FusedEpoch(small_X, small_y)]
        if have_torch:
            check.append(TorchEpoch(small_X, small_y, threads=threads))
        same = check_same_update(check, dtype)
        for r in check:                                   # warm-up: BLAS threads, torch, caches
            r.run()
        X, y = synthetic_data(N, dtype)
        variants = {"mlpbook": MlpbookEpoch(X, y), "fused": FusedEpoch(X, y), "matmul": MatmulOnlyEpoch(X, y)}
        if have_torch:
            variants["torch"] = TorchEpoch(X, y, threads=threads)
        times = interleaved({k: v.run for k, v in variants.items()}, rounds, budget=budget)
        res = {"times": times, "same": same, "N": N, "rounds": len(times["fused"])}
        res["median"] = {k: median(v) for k, v in times.items()}
        res["ratio"] = {f"{a}/{b}": paired_ratio(times, a, b)
                        for a in variants for b in variants if a != b}
        res["gflops"] = matmul_flops(N) / res["median"]["matmul"] / 1e9
        out[dtype] = res
        print(f"  epochs {np.dtype(dtype).name}: {res['rounds']} rounds, "
              + ", ".join(f"{k} {ms(v)} ms" for k, v in res["median"].items()), file=sys.stderr)
    return out


def sweep_rows(batch_sizes, steps, rounds, threads, have_torch, dtype=np.float32):
    """Seconds per sample at each batch size: mlpbook as shipped, hand-fused, PyTorch."""
    out = {}
    for B in batch_sizes:
        n = B * steps(B)
        X, y = synthetic_data(n, dtype, seed=B)
        variants = {"mlpbook": MlpbookEpoch(X, y, batch_size=B), "fused": FusedEpoch(X, y, batch_size=B)}
        if have_torch:
            variants["torch"] = TorchEpoch(X, y, batch_size=B, threads=threads)
        for v in variants.values():
            v.run()
        times = interleaved({k: v.run for k, v in variants.items()}, rounds, min_rounds=rounds)
        out[B] = ({k: median(t) / n for k, t in times.items()}, paired_ratio(times, "mlpbook", "fused"))
    return out


def build_table(ep, mem, sweep, kern, threads, have_torch):
    rows = []

    def row(label, f32="", f64=""):
        rows.append((label, f32, f64))

    def both(label, f):
        row(label, *(f(d) for d in DTYPES))

    N = ep[np.float32]["N"]
    row(f"**One epoch: {N:,} samples × 784, batch 128, 784-256-128-10 ReLU, SGD momentum**")
    both("mlpbook: MLP + CrossEntropyLoss + SGD + Trainer (ms)", lambda d: ms(ep[d]["median"]["mlpbook"]))
    both("hand-fused NumPy loop (ms)", lambda d: ms(ep[d]["median"]["fused"]))
    if have_torch:
        both(f"PyTorch CPU, {threads} thread{'s' * (threads > 1)} (ms)", lambda d: ms(ep[d]["median"]["torch"]))
    both("the matrix products alone: the practical limit (ms)", lambda d: ms(ep[d]["median"]["matmul"]))
    both("mlpbook ÷ hand-fused", lambda d: x(ep[d]["ratio"]["mlpbook/fused"]))
    if have_torch:
        both("mlpbook ÷ PyTorch", lambda d: x(ep[d]["ratio"]["mlpbook/torch"]))
    for k, label in (("mlpbook", "mlpbook"), ("fused", "hand-fused"), ("torch", "PyTorch")):
        if k == "torch" and not have_torch:
            continue
        both(f"{label} ÷ the matmul limit", lambda d, k=k: x(ep[d]["ratio"][f"{k}/matmul"]))
    flops = matmul_flops(1)
    both(f"matmul throughput at the MLP's shapes (GFLOP/s; {flops / 1e6:.2f} MFLOP per sample)",
         lambda d: f"{ep[d]['gflops']:.1f}")
    n = kern["square_n"]
    both(f"matmul throughput, {n} × {n} × {n} (GFLOP/s)", lambda d: f"{kern['square'][d]:.1f}")
    row("float64 ÷ float32, mlpbook epoch", "", x(median([a / b for a, b in zip(
        ep[np.float64]["times"]["mlpbook"], ep[np.float32]["times"]["mlpbook"])])))
    both("same update as mlpbook after 3 steps? largest relative difference: fused"
         + (" / PyTorch" if have_torch else ""), lambda d: " / ".join(f"{v:.0e}" for v in ep[d]["same"]))
    both("rounds (each variant once per round)", lambda d: str(ep[d]["rounds"]))

    Bs = sorted({B for _, B in next(iter(mem.values()))})
    B0 = 128 if 128 in Bs else Bs[0]
    row(f"**Extra memory of one training step (tracemalloc peak), batch {B0}**")
    for k, label in (("mlpbook", "mlpbook"), ("fused", "hand-fused")):
        both(f"{label}: peak", lambda d, k=k: kib(mem[d][k, B0][0]))
    both("for scale: B × widest layer (784) × itemsize", lambda d: kib(B0 * memory.widest_row_bytes(d)))
    P = sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))
    both(f"for scale: the parameters, P = {P:,} numbers", lambda d: kib(P * np.dtype(d).itemsize))
    if len(Bs) > 2:
        Ba, Bb = Bs[-2], Bs[-1]
        for k, label in (("mlpbook", "mlpbook"), ("fused", "hand-fused")):
            both(f"{label}: growth per extra sample, batch {Ba} → {Bb} (× B × widest row)",
                 lambda d, k=k: f"{(mem[d][k, Bb][0] - mem[d][k, Ba][0]) / (Bb - Ba) / memory.widest_row_bytes(d):.2f}")
    both("mlpbook: still held after the epoch", lambda d: kib(mem[d]["mlpbook", B0][1]))

    row("**Time per sample against batch size, float32 (µs): mlpbook Trainer as shipped / hand-fused"
        + (" / PyTorch" if have_torch else "") + "**")
    for B, (t, r) in sweep.items():
        cells = [us(t["mlpbook"]), us(t["fused"])] + ([us(t["torch"])] if have_torch else [])
        row(f"batch {B}", " / ".join(cells) + f" (mlpbook ÷ fused {x(r)})", "")

    row("**Single operations (medians of interleaved repeats)**")
    for (N_, C_), res in kern["softmax"].items():
        both(f"Softmax backward, N={N_}, C={C_}: O(N·C) form (µs)", lambda d, res=res: us(res[d][0]))
        both(f"Softmax backward, N={N_}, C={C_}: per-sample Jacobian loop ÷ O(N·C)", lambda d, res=res: x(res[d][2]))
    for (N_, C_), res in kern["batchnorm"].items():
        both(f"BatchNorm1d backward, N={N_}, C={C_}: compact form (µs)", lambda d, res=res: us(res[d][0]))
        both(f"BatchNorm1d backward, N={N_}, C={C_}: long form ÷ compact", lambda d, res=res: x(res[d][2]))
    tb, tn, r, P_, err = kern["gradcheck"]
    label = f"{'-'.join(map(str, kern['gradcheck_sizes']))} net, N=32, P={P_}"
    row(f"gradient of a {label}: backprop (µs)", "—", us(tb))
    row(f"gradient of a {label}: central differences ÷ backprop (rel. error {err:.0e})", "—", x(r))
    return rows


def render(rows):
    lines = ["| measurement | float32 | float64 |", "|---|--:|--:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def header(threads, have_torch, started, load0, seconds):
    import scipy  # noqa: F401
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    torch_v = __import__("torch").__version__ if have_torch else "not installed"
    load1 = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"mlpbook benchmarks, {started:%Y-%m-%d %H:%M}{' (quick)' if ARGS.quick else ''}: "
            f"{cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, NumPy {np.__version__} "
            f"({blas.get('name')} {blas.get('version')}), PyTorch {torch_v}; {threads} BLAS/PyTorch "
            f"thread{'s' * (threads > 1)}; load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end; "
            f"{seconds:.0f} s in all.")


def main():
    started, t0 = datetime.now(), time.perf_counter()
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    quick, threads = ARGS.quick, ARGS.threads
    have_torch = torch_available()
    rounds = ARGS.rounds or (3 if quick else 5)
    budget = ARGS.budget if ARGS.budget is not None else (60 if quick else 360)
    N = 6000 if quick else 60000

    busy = load0[0] - (os.cpu_count() or 1) + threads
    if busy > 0.5:
        print(f"warning: load average {load0[0]:.1f} on {os.cpu_count()} CPUs: other programs compete for "
              f"the {threads} thread(s) asked for; multi-threaded BLAS and PyTorch slow down erratically "
              f"when their threads wait for each other (try --threads 1)", file=sys.stderr)
    print("epochs ...", file=sys.stderr)
    ep = epoch_rows(N, rounds, budget, threads, have_torch)
    print("memory ...", file=sys.stderr)
    mem = {d: memory.step_memory_table(d, (128, 1024, 2048)) for d in DTYPES}
    print("batch sizes ...", file=sys.stderr)
    sizes = (1, 32, 128) if quick else (1, 8, 32, 128, 512)
    steps = (lambda B: 30) if quick else (lambda B: max(40, min(200, 20000 // B)))
    sweep = sweep_rows(sizes, steps, 3 if quick else 5, threads, have_torch)
    print("single operations ...", file=sys.stderr)
    rep = 5 if quick else 9
    kern = {"softmax": {}, "batchnorm": {}, "square": {}}
    for shape in ((128, 10),) if quick else ((128, 10), (128, 1000)):
        kern["softmax"][shape] = {d: kernels.softmax_backward(*shape, d, rep) for d in DTYPES}
    for shape in ((128, 256),):
        kern["batchnorm"][shape] = {d: kernels.batchnorm_backward(*shape, d, rep) for d in DTYPES}
    kern["gradcheck_sizes"] = (20, 16, 5)
    kern["gradcheck"] = kernels.backprop_vs_numerical(kern["gradcheck_sizes"], 32, 3 if quick else 5)
    kern["square_n"] = 512 if quick else 1024
    kern["square"] = {d: kernels.square_gflops(kern["square_n"], d, 3 if quick else 5) for d in DTYPES}

    rows = build_table(ep, mem, sweep, kern, threads, have_torch)
    text = header(threads, have_torch, started, load0, time.perf_counter() - t0) + "\n\n" + render(rows) + "\n"
    print(text)
    if not ARGS.no_save:
        out = HERE / "results" / f"{started:%Y%m%d-%H%M%S}{'-quick' if quick else ''}.md"
        out.parent.mkdir(exist_ok=True)
        out.write_text(text)
        print(f"saved {out.relative_to(HERE.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
