"""A per-call hook that runs inside every write transaction, just before it commits.

The gateway uses it to write the audit event of a mutating call *before* the
mutation commits: if the audit write fails, the hook raises and the transaction
rolls back, so no change is ever committed without its audit event.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["before_commit", "run_before_commit"]

_HOOK: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("store_before_commit", default=None)


@contextmanager
def before_commit(hook: Callable[[], None]) -> Iterator[None]:
    """Run ``hook`` before each write transaction of this context commits (raising aborts it)."""
    token = _HOOK.set(hook)
    try:
        yield
    finally:
        _HOOK.reset(token)


def run_before_commit() -> None:
    hook = _HOOK.get()
    if hook is not None:
        hook()
