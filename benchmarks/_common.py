"""What every benchmark script shares: the repository on sys.path, timing, percentiles, tables.

Each script prints its figures as one table (``print_table``) so ``run_all.py`` and the
smoke test can rely on one format: a ``== title ==`` line, a header row, a rule, rows.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/ holds the fake OIDC issuer, PostgreSQL helpers, the Polar twin

__all__ = ["REPO", "interleaved", "percentile", "print_table", "summary_us"]


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary_us(samples_ns: Sequence[int]) -> tuple[float, float]:
    """(median, p99) in microseconds."""
    return statistics.median(samples_ns) / 1000, percentile(samples_ns, 0.99) / 1000


def interleaved(
    contenders: dict[str, Callable[[int], object]], n: int, *, block: int = 100, warmup: int = 200
) -> dict[str, list[int]]:
    """Time ``fn(i)`` for every contender in alternating blocks, so a load swing on a shared
    machine hits all of them alike; returns nanosecond samples per contender."""
    for fn in contenders.values():
        for i in range(warmup):
            fn(i)
    samples: dict[str, list[int]] = {name: [] for name in contenders}
    clock = time.perf_counter_ns
    done = 0
    while done < n:
        size = min(block, n - done)
        for name, fn in contenders.items():
            out = samples[name]
            for i in range(done, done + size):
                t0 = clock()
                fn(i)
                out.append(clock() - t0)
        done += size
    return samples


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]], note: str = "") -> None:
    """One fixed-format table: ``== title ==``, header, rule, rows, then ``note: ...`` if given."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(header)]
    print(f"\n== {title} ==")
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    print("  ".join("-" * w for w in widths))
    for row in text:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    if note:
        print(f"note: {note}")
    sys.stdout.flush()
