"""A bounded, thread-safe cache of verified tokens, as the Kubernetes apiserver keeps.

Verifying a JWT signature costs tens of microseconds; a gateway sees the same bearer token
on call after call. Entries are keyed by the SHA-256 of the token (the token itself is
never stored), evicted least-recently-used beyond ``max_entries``, and expire at the
token's ``exp`` or ``ttl_s`` after they were cached, whichever is first, so a key removed
from a JWKS or a retired signing key stops being honoured within ``ttl_s``.
Only successful verifications are cached.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ._identity import Identity

__all__ = ["TokenCache"]


class TokenCache:
    """LRU map ``sha256(token) -> Identity`` with per-entry expiry."""

    def __init__(
        self, max_entries: int = 10_000, ttl_s: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries < 0:
            raise ValueError("token cache size must not be negative")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Identity]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key_for(token: str) -> bytes:
        # surrogatepass: any str hashes; such a token is then refused by the parser.
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> Identity | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: bytes, identity: Identity) -> None:
        if identity.expires_at is None or self.max_entries == 0:
            return
        now = self._clock()
        valid_until = min(identity.expires_at, now + self.ttl_s)
        if valid_until <= now:
            return
        with self._lock:
            self._entries[key] = (valid_until, identity)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def evict_principal(self, principal_id: str) -> int:
        """Drop every entry for ``principal_id`` (e.g. a deleted service account); return how many."""
        with self._lock:
            stale = [k for k, (_, ident) in self._entries.items() if ident.principal_id == principal_id]
            for key in stale:
                del self._entries[key]
        return len(stale)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
