"""The tamper-evident audit log format: hash-chained JSON lines, and its verifier.

Shared by the gateway's writer (``openshell_server.audit``) and by
``openshell-authz audit verify``. Standard library only: the library must not
pull in gRPC or a database.

Line format (one JSON object per line, UTF-8, ``\\n``-terminated)::

    {"hash":"<H>","prev_hash":"<P>", ...event fields...}

* ``prev_hash`` (P) is the SHA-256 hex of the previous line's exact bytes,
  without its newline. The first line of a brand-new chain carries 64 zeros.
* ``hash`` (H) is the SHA-256 hex of the same line with the leading
  ``"hash":"<H>",`` member removed (i.e. of ``{"prev_hash":"<P>",...}``).
  ``prev_hash`` alone cannot say *which* of two neighbouring lines was edited,
  and cannot protect the newest line at all; the per-line digest pins an edit to
  the line that was changed. Neither is a secret: an attacker who rewrites a
  line *and every line after it* is only caught by an external anchor, so ship
  the log (or ``ChainReport.last_hash``) somewhere else as well.

Rotation scheme (logrotate style): the active file is ``audit.jsonl``; when it
is full it is renamed ``audit.jsonl.1`` after ``.1`` -> ``.2`` and so on, so a
higher number is older and :func:`chain_files` returns ``..., audit.jsonl.2,
audit.jsonl.1, audit.jsonl``. Nothing is ever deleted by the writer. The chain
runs across files: the first line of a new file carries the hash of the last
line of the previous one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GENESIS_HASH",
    "ChainReport",
    "chain_files",
    "encode_line",
    "iter_events",
    "line_hash",
    "rotated_path",
    "verify_chain",
]

GENESIS_HASH = "0" * 64

_HEX64 = rb"[0-9a-f]{64}"
# The writer always emits "hash" then "prev_hash" first, so the verifier can
# read both from fixed positions and hash exact bytes without re-serialising.
_HEADER = re.compile(rb'\{"hash":"(' + _HEX64 + rb')","prev_hash":"(' + _HEX64 + rb')"[,}]')
_HASH_MEMBER_LEN = len(b'"hash":"",') + 64


def line_hash(line: bytes) -> str:
    """SHA-256 hex of one line's exact bytes (without its newline): the next line's ``prev_hash``."""
    return hashlib.sha256(line).hexdigest()


def encode_line(event: Mapping[str, object], prev_hash: str) -> bytes:
    """Serialise ``event`` as one chained line (no trailing newline)."""
    if "hash" in event or "prev_hash" in event:
        raise ValueError("audit event must not carry 'hash' or 'prev_hash'; the chain adds them")
    body = json.dumps(
        {"prev_hash": prev_hash, **event}, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")
    return b'{"hash":"' + hashlib.sha256(body).hexdigest().encode("ascii") + b'",' + body[1:]


def rotated_path(path: Path, n: int) -> Path:
    """The name of the ``n``-th rotated file of active file ``path`` (1 = newest rotated)."""
    return path.with_name(f"{path.name}.{n}")


def chain_files(path: Path) -> list[Path]:
    """Files of the chain whose active file is ``path``, oldest first (``.N`` ... ``.1``, ``path``).

    Missing numbers (a crash between two renames of a rotation) are tolerated;
    ``path`` is included only if it exists. Returns ``[]`` when nothing exists.
    """
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)")
    numbered: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for child in path.parent.iterdir():
            match = pattern.fullmatch(child.name)
            if match and child.is_file():
                numbered.append((int(match.group(1)), child))
    files = [p for _, p in sorted(numbered, reverse=True)]
    if path.exists():
        files.append(path)
    return files


@dataclass(frozen=True)
class ChainReport:
    """Outcome of :func:`verify_chain`. ``first_bad_line`` is 1-based within ``first_bad_file``."""

    ok: bool
    lines_checked: int
    first_bad_file: Path | None = None
    first_bad_line: int | None = None
    reason: str = ""
    last_hash: str = GENESIS_HASH  # hash of the last good line: an anchor to keep elsewhere


def _check_line(raw: bytes, expected_prev: str | None) -> str:
    """Why ``raw`` (one line, newline included) is not a valid chain link, or "" if it is."""
    if not raw.endswith(b"\n"):
        return "line is incomplete (no trailing newline): a torn write; the gateway truncates it on restart"
    line = raw[:-1]
    header = _HEADER.match(line)
    if header is None:
        return 'line does not start with {"hash":"<64 hex>","prev_hash":"<64 hex>"'
    if hashlib.sha256(b"{" + line[_HASH_MEMBER_LEN + 1 :]).hexdigest().encode("ascii") != header.group(1):
        return "line content does not match its own hash: the line was altered"
    try:
        obj = json.loads(line)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        return f"line is not valid JSON: {exc}"
    prev = header.group(2).decode("ascii")
    if not isinstance(obj, dict) or obj.get("hash") != header.group(1).decode() or obj.get("prev_hash") != prev:
        return "line repeats 'hash' or 'prev_hash' with a different value"
    if expected_prev is not None and prev != expected_prev:
        if expected_prev == GENESIS_HASH:
            return "first line does not start a new chain (prev_hash is not 64 zeros): older files missing?"
        return "prev_hash does not match the previous line: a line was removed, inserted or altered"
    return ""


def verify_chain(paths: Sequence[Path], *, start_hash: str | None = GENESIS_HASH) -> ChainReport:
    """Check every line of ``paths`` (oldest first, as from :func:`chain_files`) as one chain.

    ``start_hash`` is what the very first line's ``prev_hash`` must be: 64 zeros
    for a complete log, a previously recorded ``last_hash`` when older files
    were shipped away, or ``None`` to accept whatever the first line claims.
    Stops at the first broken line.
    """
    if not paths:
        return ChainReport(ok=False, lines_checked=0, reason="no audit files to verify")
    expected = start_hash
    checked = 0
    for path in paths:
        try:
            with Path(path).open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    reason = _check_line(raw, expected)
                    if reason:
                        return ChainReport(False, checked, Path(path), number, reason, expected or "")
                    expected = line_hash(raw[:-1])
                    checked += 1
        except OSError as exc:
            reason = f"cannot read: {exc.strerror or exc}"
            return ChainReport(False, checked, Path(path), None, reason, expected or "")
    return ChainReport(ok=True, lines_checked=checked, last_hash=expected or GENESIS_HASH)


def iter_events(paths: Sequence[Path]) -> Iterator[dict[str, object]]:
    """Parsed events of ``paths`` in order (oldest first), chain fields included.

    For readers such as policy-diff replay; it does not verify (use
    :func:`verify_chain`), skips a torn trailing line and raises ``ValueError``
    on a line that is not JSON.
    """
    for path in paths:
        with Path(path).open("rb") as handle:
            for raw in handle:
                if raw.endswith(b"\n") and raw.strip():
                    obj = json.loads(raw)
                    if isinstance(obj, dict):
                        yield obj
