"""Reading an audit file from its end: complete lines newest first, without loading the whole file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["complete_length", "iter_lines_reversed"]

_BLOCK = 1 << 16


def iter_lines_reversed(path: Path) -> Iterator[bytes]:
    """Complete lines of ``path`` (without newline), last line first.

    A trailing partial line (no newline yet: a write in progress or torn by a
    crash) is skipped, so readers never see half an event.
    """
    with Path(path).open("rb") as handle:
        pos = handle.seek(0, os.SEEK_END)
        buf = b""
        seen_newline = False
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            handle.seek(pos)
            buf = handle.read(step) + buf
            lines = buf.split(b"\n")
            buf = lines.pop(0)  # may continue in the previous block
            if not seen_newline:
                if not lines:
                    continue
                lines.pop()  # text after the last newline: partial line or b""
                seen_newline = True
            yield from reversed(lines)
        if seen_newline:
            yield buf


def complete_length(fd: int, size: int) -> int:
    """Length of the prefix of the open file ``fd`` (``size`` bytes) that ends with a newline."""
    pos = size
    while pos > 0:
        start = max(0, pos - _BLOCK)
        chunk = os.pread(fd, pos - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        pos = start
    return 0
