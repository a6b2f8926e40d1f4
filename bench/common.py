"""Timing helpers shared by the benchmarks: interleaved repeats, medians, paired ratios.

Other programs share the machine, so a slow moment hits whichever variant happens to run then.
Running the variants in turn within every round (in a rotating order) spreads such moments
over all of them, and a ratio taken inside each round compares two runs made seconds apart.
"""
import statistics
import time
from collections.abc import Callable


def interleaved(variants: dict[str, Callable[[], object]], rounds: int, *, min_rounds: int = 3,
                budget: float | None = None) -> dict[str, list[float]]:
    """Seconds per call of each variant: ``rounds`` rounds, each calling every variant once.

    The order rotates from round to round. With a ``budget`` (seconds), rounds stop once it is
    spent, but never before ``min_rounds``.
    """
    names = list(variants)
    times = {name: [] for name in names}
    start = time.perf_counter()
    for r in range(rounds):
        if budget is not None and r >= min_rounds and time.perf_counter() - start > budget:
            break
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def median(values) -> float:
    return float(statistics.median(values))


def paired_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of time(a) / time(b), each ratio taken within one round."""
    return median([x / y for x, y in zip(times[a], times[b])])


def repeat_median(f: Callable[[], object], repeat: int, number: int = 1) -> float:
    """Median seconds per call of ``f`` over ``repeat`` timings of ``number`` calls each."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            f()
        out.append((time.perf_counter() - t0) / number)
    return median(out)


def interleaved_calls(variants: dict[str, Callable[[], object]], repeat: int, number: int) -> dict[str, list[float]]:
    """Like ``interleaved``, for short calls: each entry times ``number`` calls (seconds per call)."""
    def batch(f):
        def run():
            for _ in range(number):
                f()                    # results are dropped at once, as in a loop that uses them
        return run

    batched = {name: batch(f) for name, f in variants.items()}
    return {name: [t / number for t in ts]
            for name, ts in interleaved(batched, repeat, min_rounds=repeat).items()}
