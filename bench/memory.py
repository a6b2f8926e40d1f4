"""Peak memory of a training step, by tracemalloc (NumPy reports its array buffers to it).

A step is measured inside a traced epoch that follows another traced epoch, so the arrays the
step replaces (last step's gradients, activations) were allocated under tracing and their
release is counted too. The figure is the peak of traced memory during the epoch minus the
traced memory when it started: what a step needs on top of what the model, the optimizer and
the data already hold. PyTorch allocates outside Python's allocator and is not measured.
"""
import tracemalloc

from epoch import FusedEpoch, MlpbookEpoch, SIZES, synthetic_data


def peak_step_memory(make_runner, n_batches: int = 3) -> tuple[int, int]:
    """(peak extra bytes during an epoch of ``n_batches`` steps, bytes still held after it)."""
    runner = make_runner()
    runner.run()                      # optimizer state and caches exist before tracing starts
    tracemalloc.start()
    try:
        runner.run()                  # allocates under tracing what the next epoch replaces
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        runner.run()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, after - before


def step_memory_table(dtype, batch_sizes=(128, 512)) -> dict:
    """Peak extra bytes per step for mlpbook and the hand-fused loop, per batch size."""
    out = {}
    for B in batch_sizes:
        X, y = synthetic_data(3 * B, dtype, seed=B)
        for name, make in (("mlpbook", lambda: MlpbookEpoch(X, y, batch_size=B)),
                           ("fused", lambda: FusedEpoch(X, y, batch_size=B))):
            out[name, B] = peak_step_memory(make)
    return out


def widest_row_bytes(dtype) -> int:
    """Bytes of one row of the widest layer: max(C) × itemsize, the unit of O(B × widest)."""
    import numpy as np
    return max(SIZES) * np.dtype(dtype).itemsize
