"""The live policy set: loaded at start, swapped atomically on change.

A new set replaces the live one only if it compiles against its schema and its
own policy tests pass; otherwise the live set keeps serving and the error (with
file and line) is logged. Readers take ``holder.current`` once per decision, so
no request is ever decided by a half-loaded set.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from openshell_authz import Authorizer, AuthzError, run_policy_tests

__all__ = ["PolicyHolder"]

log = logging.getLogger("openshell.policies")


def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix in (".cedar", ".cedarschema", ".yaml", ".yml"):
            stat = path.stat()
            digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    return digest.hexdigest()


class PolicyHolder:
    def __init__(self, directory: Path, *, on_reload: Callable[[bool], None] | None = None) -> None:
        self.directory = Path(directory)
        self._on_reload = on_reload or (lambda ok: None)
        self.current: Authorizer = self._load()  # a bad set at start is fatal: raise
        self._seen = _fingerprint(self.directory)
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load(self) -> Authorizer:
        authorizer = Authorizer.from_directory(self.directory)
        if (self.directory / "tests").is_dir():
            # The same cases `openshell-authz test` runs; a set whose own tests fail is refused.
            run_policy_tests(self.directory, authorizer).raise_if_failed()
        return authorizer

    def reload_now(self) -> bool:
        """Try to load the directory; swap on success. Returns whether the set changed."""
        try:
            fresh = self._load()
        except AuthzError as exc:
            self.last_error = str(exc)
            log.error("policy reload refused, keeping policy set %s: %s", self.current.policy_hash[:12], exc)
            self._on_reload(False)
            return False
        self.last_error = ""
        changed = fresh.policy_hash != self.current.policy_hash
        self.current = fresh  # one reference assignment: atomic for readers
        if changed:
            log.info("policy set %s is live", fresh.policy_hash[:12])
        self._on_reload(True)
        return changed

    def watch(self, interval: float) -> None:
        if interval <= 0 or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    seen = _fingerprint(self.directory)
                except OSError:
                    continue
                if seen != self._seen:
                    self._seen = seen
                    self.reload_now()

        self._thread = threading.Thread(target=loop, name="policy-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
