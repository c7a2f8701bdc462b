"""Splits Cedar policy text into statements with their line numbers.

cedarpy's parse and validation errors carry no source location, so the loader
parses and validates statement by statement and reports the line where the
failing statement starts. Only comments and string literals need care here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Statement", "split_statements"]


@dataclass(frozen=True, slots=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first non-blank, non-comment character


def split_statements(source: str) -> list[Statement]:
    """Split ``source`` at top-level ``;``; a trailing fragment without ``;`` is kept."""
    statements: list[Statement] = []
    buf: list[str] = []
    start_line = 0
    line = 1
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == "/" and i + 1 < n and source[i + 1] == "/":  # comment to end of line
            end = source.find("\n", i)
            end = n if end == -1 else end
            buf.append(source[i:end])
            i = end
            continue
        if ch == '"':  # string literal with backslash escapes
            j = i + 1
            while j < n and source[j] != '"':
                if source[j] == "\\":
                    j += 1
                if j < n and source[j] == "\n":
                    line += 1
                j += 1
            if not start_line:
                start_line = line
            buf.append(source[i : j + 1])
            i = j + 1
            continue
        if ch == "\n":
            line += 1
        elif not ch.isspace() and not start_line:
            start_line = line
        buf.append(ch)
        if ch == ";":
            statements.append(Statement("".join(buf), start_line or line))
            buf, start_line = [], 0
        i += 1
    rest = "".join(buf)
    if start_line:
        statements.append(Statement(rest, start_line))
    return statements
