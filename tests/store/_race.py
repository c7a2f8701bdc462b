"""Run one callable from many threads released at the same instant, collecting outcomes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["race"]

T = TypeVar("T")


def race(fn: Callable[[int], T], n: int) -> list[T | BaseException]:
    """Call ``fn(i)`` for i in range(n) on n threads started together; exceptions are returned, not raised."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T | BaseException:
        barrier.wait()
        try:
            return fn(i)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the caller asserts on
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))
