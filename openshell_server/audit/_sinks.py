"""Audit sinks: where the gateway's audit events go (chained JSONL file, stdout, memory).

Every sink raises :class:`AuditWriteError` when an event cannot be recorded;
the gateway then fails the mutating call without committing it. Nothing is
dropped silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TextIO

from openshell_authz._audit_chain import GENESIS_HASH, chain_files, encode_line, line_hash, rotated_path
from openshell_server.audit._ocsf import to_ocsf
from openshell_server.audit._record import AuditRecord
from openshell_server.audit._tail import complete_length, iter_lines_reversed

__all__ = [
    "DEFAULT_MAX_BYTES",
    "AuditSink",
    "AuditWriteError",
    "JsonlChainSink",
    "MemorySink",
    "StdoutSink",
    "open_sink",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class AuditWriteError(Exception):
    """An audit event could not be recorded durably; the audited call must fail."""


class AuditSink(Protocol):
    """Destination of audit events. ``emit`` returns only once the event is recorded."""

    def emit(self, record: AuditRecord) -> None: ...

    def close(self) -> None: ...


class JsonlChainSink:
    """Append-only, hash-chained JSONL file with size rotation (see :mod:`openshell_authz._audit_chain`).

    Thread-safe, and safe for several processes sharing one file: each append
    holds an exclusive ``flock`` on the hidden ``.<name>.lock`` beside it and re-reads the chain head
    if another writer moved it. Each event is fsync'd before ``emit`` returns.
    On open (and whenever the file changed under it) a torn last line left by a
    crash is truncated away, and the chain resumes from the last complete line.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"audit max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd = -1
        self._lock_fd = -1
        self._size = -1  # bytes this writer last saw in the active file; -1 forces a resync
        self._prev = GENESIS_HASH
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path.with_name(f".{self.path.name}.lock"), _OPEN_FLAGS, 0o600)
            self._fd = os.open(self.path, _OPEN_FLAGS, 0o600)
            with self._flocked():
                self._resync()
        except OSError as exc:
            self._close_fds()
            raise AuditWriteError(f"cannot open audit log {self.path}: {exc.strerror or exc}") from exc

    def files(self) -> list[Path]:
        """The chain's files, oldest first (for verification and queries)."""
        return chain_files(self.path)

    def emit(self, record: AuditRecord) -> None:
        event = to_ocsf(record)
        with self._lock:
            if self._closed:
                raise AuditWriteError(f"audit log {self.path} is closed")
            try:
                with self._flocked():
                    self._append(event)
            except OSError as exc:
                raise AuditWriteError(f"audit write to {self.path} failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._close_fds()

    @contextlib.contextmanager
    def _flocked(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _append(self, event: dict[str, Any]) -> None:
        self._follow_rotation()
        size = os.fstat(self._fd).st_size
        if size != self._size:  # first write, another process wrote, or a failed write
            size = self._resync()
        line = encode_line(event, self._prev) + b"\n"
        if size and size + len(line) > self.max_bytes:
            self._rotate()
            size = 0
        try:
            written = 0
            while written < len(line):
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)
        except OSError:
            # Leave no half-recorded event behind: the call fails, so its event must not stay.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            self._size = -1
            raise
        self._size = size + len(line)
        self._prev = line_hash(line[:-1])

    def _follow_rotation(self) -> None:
        """Reopen the active path if another process rotated (or someone removed) the file we hold."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        held = os.fstat(self._fd)
        if current is None or (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
            fd = os.open(self.path, _OPEN_FLAGS, 0o600)
            os.close(self._fd)
            self._fd = fd
            self._size = -1

    def _resync(self) -> int:
        """Drop a torn last line, then load the chain head; returns the active file's size."""
        size = os.fstat(self._fd).st_size
        good = complete_length(self._fd, size)
        if good < size:
            log.warning(
                "audit log %s: removing a torn last line (%d bytes) left by an interrupted write",
                self.path, size - good,
            )  # fmt: skip
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        self._prev = GENESIS_HASH
        for path in reversed(chain_files(self.path)):
            last = next(iter_lines_reversed(path), None)
            if last is not None:
                self._prev = line_hash(last)
                break
        self._size = good
        return good

    def _rotate(self) -> None:
        # Highest number first, so no rename overwrites a file not yet moved.
        for path in chain_files(self.path):
            if path != self.path:
                number = int(path.name.rsplit(".", 1)[1])
                os.replace(path, rotated_path(self.path, number + 1))
        os.replace(self.path, rotated_path(self.path, 1))
        fd = os.open(self.path, _OPEN_FLAGS, 0o600)
        os.close(self._fd)
        self._fd = fd
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # make the renames durable before events land in the new file
        finally:
            os.close(dir_fd)

    def _close_fds(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1


class StdoutSink:
    """Chained JSON lines on standard output (``-``), for container log collectors.

    The chain starts afresh (64 zeros) each time the process starts.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self._prev = GENESIS_HASH
        self._closed = False

    def emit(self, record: AuditRecord) -> None:
        event = to_ocsf(record)
        with self._lock:
            if self._closed:
                raise AuditWriteError("audit stdout sink is closed")
            line = encode_line(event, self._prev)
            try:
                self._stream.write(line.decode("ascii") + "\n")
                self._stream.flush()
            except (OSError, ValueError) as exc:  # ValueError: write to a closed stream
                raise AuditWriteError(f"audit write to standard output failed: {exc}") from exc
            self._prev = line_hash(line)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            with contextlib.suppress(OSError, ValueError):
                self._stream.flush()


class MemorySink:
    """Keeps records and their OCSF events in memory, for tests; ``failing = True`` makes emit fail."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self.events: list[dict[str, Any]] = []
        self.failing = False
        self._lock = threading.Lock()

    def emit(self, record: AuditRecord) -> None:
        event = to_ocsf(record)
        with self._lock:
            if self.failing:
                raise AuditWriteError("audit sink is failing (MemorySink.failing is set)")
            self.records.append(record)
            self.events.append(event)

    def close(self) -> None:
        """Nothing to release."""


def open_sink(spec: str, data_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> AuditSink:
    """The sink named by the gateway's audit setting.

    ``""`` -> ``<data_dir>/audit/audit.jsonl``; ``"-"`` -> standard output;
    anything else is a file path (``~`` expanded, relative to the working directory).
    """
    if spec == "-":
        return StdoutSink()
    path = Path(spec).expanduser() if spec else Path(data_dir) / "audit" / "audit.jsonl"
    return JsonlChainSink(path, max_bytes)
