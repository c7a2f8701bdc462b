"""Hardening suites: hostile callers, fuzzed requests, audit replay, faults and load (issue 8)."""

__all__: list[str] = []
