"""A fake OIDC issuer for tests: a real JWKS endpoint on 127.0.0.1 and tokens signed by its keys.

Reusable from any test suite::

    from tests.authn.oidc_fixture import FakeIssuer

    with FakeIssuer(audience="openshell") as idp:
        token = idp.issue("alice", roles=["platform_admin"])
        env = {"OPENSHELL_OIDC_ISSUERS": json.dumps([idp.config_entry()])}

The server answers ``GET /jwks.json`` (and ``/.well-known/openid-configuration``) from a
thread; :meth:`FakeIssuer.stop` makes the endpoint refuse connections (JWKS down) and
:meth:`FakeIssuer.start` brings it back on the same port.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = ["FakeClock", "FakeIssuer", "fake_issuer", "generate_key"]

_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@cache
def _cached_key(alg: str, index: int) -> Any:
    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"FakeIssuer does not support algorithm {alg}")


_counter = iter(range(1_000_000))
_counter_lock = threading.Lock()


def generate_key(alg: str = "RS256") -> Any:
    """A fresh private key for ``alg`` (from a small per-process pool; RSA keygen is slow)."""
    with _counter_lock:
        index = next(_counter)
    return _cached_key(alg, index % 8)


def _public_jwk(private: Any, alg: str, kid: str) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    jwk = json.loads(algorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


class FakeClock:
    """A settable clock (``clock()`` returns ``now``) to pass as ``clock=`` to the authn classes."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeIssuer:
    """An OIDC issuer with a live JWKS endpoint on a loopback port."""

    def __init__(
        self,
        *,
        audience: str = "openshell",
        alg: str = "RS256",
        issuer: str | None = None,
        roles_claim: str = "openshell_roles",
    ) -> None:
        self.audience = audience
        self.alg = alg
        self.roles_claim = roles_claim
        self._keys: dict[str, tuple[Any, str]] = {}  # kid -> (private key, alg)
        self._published: list[str] = []
        self.active_kid = self.add_key(alg)
        self.jwks_requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.start()
        self.issuer = issuer or self.url

    # ------------------------------------------------------------------ server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks.json"

    def start(self) -> None:
        """Start (or restart, on the same port) the JWKS endpoint."""
        if self._server is not None:
            return
        handler = self._handler_class()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-jwks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Shut the endpoint down: fetches now fail with connection refused."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeIssuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/jwks.json":
                    with issuer._lock:
                        issuer.jwks_requests += 1
                    body = json.dumps(issuer.jwks()).encode()
                elif self.path == "/.well-known/openid-configuration":
                    body = json.dumps({"issuer": issuer.issuer, "jwks_uri": issuer.jwks_url}).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

        return Handler

    # ------------------------------------------------------------------ keys

    def add_key(self, alg: str | None = None, *, kid: str | None = None, private: Any = None) -> str:
        """Publish a new key (rotation at the IdP); return its kid. Does not make it active."""
        alg = alg or self.alg
        kid = kid or uuid.uuid4().hex[:12]
        self._keys[kid] = (private if private is not None else generate_key(alg), alg)
        self._published.append(kid)
        return kid

    def rotate(self, *, drop_old: bool = False) -> str:
        """Publish a new key, sign new tokens with it, optionally unpublish the old ones."""
        old = list(self._published)
        self.active_kid = self.add_key(self.alg)
        if drop_old:
            for kid in old:
                self._published.remove(kid)
        return self.active_kid

    def unpublish(self, kid: str) -> None:
        self._published.remove(kid)

    def private_key(self, kid: str | None = None) -> Any:
        return self._keys[kid or self.active_kid][0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_public_jwk(self._keys[k][0], self._keys[k][1], k) for k in self._published]}

    # ------------------------------------------------------------------ tokens

    def claims(self, sub: str | None, roles: Sequence[str] | str | None = None, *, ttl_s: float = 300,
               now: float | None = None, **extra: Any) -> dict[str, Any]:
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + ttl_s),
            "jti": uuid.uuid4().hex,
        }
        if sub is not None:
            claims["sub"] = sub
        if roles is not None:
            claims[self.roles_claim] = roles if isinstance(roles, str) else list(roles)
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def issue(
        self,
        sub: str | None,
        roles: Sequence[str] | str | None = None,
        *,
        ttl_s: float = 300,
        now: float | None = None,
        kid: str | None = None,
        key: Any = None,
        alg: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed token for ``sub``. Any claim may be overridden (``None`` drops it)."""
        kid = kid or self.active_kid
        own_key, own_alg = self._keys.get(kid, (self.private_key(), self.alg))
        return jwt.encode(
            self.claims(sub, roles, ttl_s=ttl_s, now=now, **claims),
            key if key is not None else own_key,
            algorithm=alg or own_alg,
            headers={"kid": kid, **(headers or {})},
        )

    def config_entry(self) -> dict[str, str]:
        """One entry of ``OPENSHELL_OIDC_ISSUERS``."""
        return {"issuer": self.issuer, "audience": self.audience, "jwks_url": self.jwks_url}


@pytest.fixture
def fake_issuer() -> Iterator[FakeIssuer]:
    """A running :class:`FakeIssuer` (RS256, audience ``openshell``), stopped after the test."""
    with FakeIssuer() as issuer:
        yield issuer
