"""OIDC bearer-token verification against each configured issuer's JWKS.

One :class:`OidcVerifier` serves several issuers at once. The issuer is chosen from the
token's (unverified) ``iss``; the signature is then checked only with that issuer's keys
and only with the algorithms pinned for it. Keys are fetched over HTTP(S) and cached:

* an unknown ``kid`` triggers a refetch, at most once per ``min_refetch_interval_s`` per
  issuer, so a flood of made-up kids cannot hammer the IdP;
* keys older than ``refresh_s`` are refreshed in the background while still serving;
* if the JWKS endpoint stays down, cached keys keep working until ``max_key_age_s`` after
  the last successful fetch, then every token of that issuer is rejected (never allowed).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWKError

from ._identity import MINTED_ISSUER, AuthenticationError, Identity, parse_global_roles
from ._jws import (
    ASYMMETRIC_ALGORITHMS,
    ParsedToken,
    check_audience,
    check_times,
    parse_token,
    require_str,
    verify_signature,
)

__all__ = ["DEFAULT_ROLES_CLAIM", "OidcIssuer", "OidcVerifier", "parse_oidc_issuers"]

DEFAULT_ROLES_CLAIM = "openshell_roles"
MAX_JWKS_BYTES = 1 << 20
MAX_JWKS_KEYS = 100

_log = logging.getLogger(__name__)

Fetcher = Callable[[str, float], bytes]


@dataclass(frozen=True, slots=True)
class OidcIssuer:
    """One trusted OIDC issuer: its ``iss`` value, the audience we require, its JWKS URL."""

    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer.strip():
            raise ValueError("OIDC issuer: 'issuer' must be a non-empty string")
        if "#" in self.issuer:
            # '#' separates issuer and subject in principal ids; OIDC issuers have no fragment.
            raise ValueError(f"OIDC issuer {self.issuer!r}: an issuer may not contain '#'")
        if self.issuer == MINTED_ISSUER:
            raise ValueError(f"OIDC issuer {self.issuer!r} is reserved for gateway-minted tokens")
        if not isinstance(self.audience, str) or not self.audience:
            raise ValueError(f"OIDC issuer {self.issuer!r}: 'audience' must be a non-empty string")
        url = urllib.parse.urlsplit(self.jwks_url if isinstance(self.jwks_url, str) else "")
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"OIDC issuer {self.issuer!r}: 'jwks_url' must be an http(s) URL")
        algorithms = (self.algorithms,) if isinstance(self.algorithms, str) else tuple(self.algorithms)
        bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not algorithms:
            raise ValueError(
                f"OIDC issuer {self.issuer!r}: algorithms must be a non-empty subset of "
                f"{', '.join(sorted(ASYMMETRIC_ALGORITHMS))} (got {', '.join(map(str, bad)) or 'none'})"
            )
        object.__setattr__(self, "algorithms", algorithms)
        if isinstance(self.leeway_s, bool) or not isinstance(self.leeway_s, int | float) or not (
            0 <= self.leeway_s <= 300
        ):
            raise ValueError(f"OIDC issuer {self.issuer!r}: 'leeway_s' must be between 0 and 300")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OidcIssuer:
        """Build from a config mapping (``issuer``, ``audience``, ``jwks_url``, optional rest)."""
        if not isinstance(data, Mapping):
            raise ValueError("OIDC issuer entry must be an object with issuer, audience and jwks_url")
        known = {"issuer", "audience", "jwks_url", "algorithms", "leeway_s"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"OIDC issuer entry has unknown field(s): {', '.join(map(str, unknown))}")
        missing = [k for k in ("issuer", "audience", "jwks_url") if k not in data]
        if missing:
            raise ValueError(f"OIDC issuer entry is missing: {', '.join(missing)}")
        return cls(**data)


def parse_oidc_issuers(text: str) -> list[OidcIssuer]:
    """Parse ``OPENSHELL_OIDC_ISSUERS`` (a JSON list of issuer objects); ``""`` means none."""
    if not text.strip():
        return []
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"OPENSHELL_OIDC_ISSUERS is not valid JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ValueError("OPENSHELL_OIDC_ISSUERS must be a JSON list of issuer objects")
    issuers = [OidcIssuer.from_mapping(e) for e in entries]
    names = [i.issuer for i in issuers]
    if len(set(names)) != len(names):
        raise ValueError("OPENSHELL_OIDC_ISSUERS lists the same issuer twice")
    return issuers


def http_get(url: str, timeout_s: float) -> bytes:
    """GET ``url`` and return at most :data:`MAX_JWKS_BYTES` of body (more is an error)."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "openshell-gateway"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS document is larger than {MAX_JWKS_BYTES} bytes")
    return body


@dataclass(frozen=True, slots=True)
class _Jwk:
    key: Any  # a cryptography public key
    alg: str | None  # the JWK's own "alg", when it pins one


@dataclass(frozen=True, slots=True)
class _KeySnapshot:
    by_kid: Mapping[str, _Jwk]
    all_keys: tuple[_Jwk, ...]
    fetched_at: float


def _parse_jwks(body: bytes) -> tuple[dict[str, _Jwk], tuple[_Jwk, ...]]:
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    by_kid: dict[str, _Jwk] = {}
    keys: list[_Jwk] = []
    for entry in document["keys"][:MAX_JWKS_KEYS]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        # Only public asymmetric keys: an "oct" (HMAC) key or a private key is never used.
        if entry.get("kty") not in ("RSA", "EC", "OKP") or "d" in entry:
            continue
        alg = entry.get("alg")
        if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
            continue
        try:
            jwk = _Jwk(key=PyJWK(entry).key, alg=alg)
        except (PyJWKError, ValueError, TypeError, KeyError) as exc:
            _log.warning("ignoring unusable JWKS key %r: %s", entry.get("kid"), exc)
            continue
        keys.append(jwk)
        kid = entry.get("kid")
        if isinstance(kid, str):
            by_kid[kid] = jwk
    return by_kid, tuple(keys)


@dataclass
class _IssuerState:
    config: OidcIssuer
    snapshot: _KeySnapshot | None = None
    last_attempt: float | None = None
    refreshing: bool = False
    fetch_lock: threading.Lock = field(default_factory=threading.Lock)
    flag_lock: threading.Lock = field(default_factory=threading.Lock)


class OidcVerifier:
    """Verify OIDC bearer JWTs from any of several issuers into user :class:`Identity`."""

    def __init__(
        self,
        issuers: Sequence[OidcIssuer],
        roles_claim: str = DEFAULT_ROLES_CLAIM,
        *,
        refresh_s: float = 300.0,
        max_key_age_s: float = 86400.0,
        min_refetch_interval_s: float = 10.0,
        fetch_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        fetcher: Fetcher = http_get,
    ) -> None:
        if not roles_claim:
            raise ValueError("OIDC roles claim name must not be empty")
        if not 0 < refresh_s <= max_key_age_s:
            raise ValueError("OIDC key refresh interval must be positive and at most the max key age")
        self._states: dict[str, _IssuerState] = {}
        for issuer in issuers:
            if issuer.issuer in self._states:
                raise ValueError(f"OIDC issuer {issuer.issuer!r} is configured twice")
            self._states[issuer.issuer] = _IssuerState(config=issuer)
        self.roles_claim = roles_claim
        self._refresh_s = refresh_s
        self._max_key_age_s = max_key_age_s
        self._min_refetch_s = min_refetch_interval_s
        self._timeout_s = fetch_timeout_s
        self._clock = clock
        self._fetcher = fetcher

    @property
    def issuers(self) -> tuple[OidcIssuer, ...]:
        return tuple(s.config for s in self._states.values())

    def prefetch(self) -> dict[str, str]:
        """Fetch every issuer's JWKS now (at start-up); return ``{issuer: error}`` for failures."""
        return {
            name: "JWKS could not be fetched"
            for name, state in self._states.items()
            if not self._refresh(state, force=True)
        }

    def verify(self, token: str) -> Identity:
        """Verify ``token`` or raise :class:`AuthenticationError`."""
        return self.verify_parsed(parse_token(token))

    def verify_parsed(self, parsed: ParsedToken) -> Identity:
        state = self._states.get(parsed.issuer or "")
        if state is None:
            raise AuthenticationError("token issuer is not trusted")
        config = state.config
        if parsed.alg not in config.algorithms:
            raise AuthenticationError("token algorithm is not allowed for its issuer")
        jwk = self._key_for(state, parsed.kid)
        if jwk.alg is not None and jwk.alg != parsed.alg:
            raise AuthenticationError("token algorithm does not match its signing key")
        verify_signature(parsed, jwk.key)
        claims = parsed.claims
        expires_at = check_times(claims, self._clock(), config.leeway_s)
        check_audience(claims, config.audience)
        subject = require_str(claims, "sub")
        jti = claims.get("jti")
        return Identity(
            kind="user",
            principal_id=f"{config.issuer}#{subject}",
            issuer=config.issuer,
            subject=subject,
            global_roles=parse_global_roles(claims, self.roles_claim),
            expires_at=expires_at,
            token_id=jti if isinstance(jti, str) else None,
        )

    # ------------------------------------------------------------------ keys

    def _usable(self, snapshot: _KeySnapshot | None) -> bool:
        return snapshot is not None and self._clock() - snapshot.fetched_at < self._max_key_age_s

    def _key_for(self, state: _IssuerState, kid: str | None) -> _Jwk:
        snapshot = state.snapshot
        if not self._usable(snapshot):
            self._refresh(state)
            snapshot = state.snapshot
            if not self._usable(snapshot):
                raise AuthenticationError("signing keys for the token issuer are unavailable")
        elif self._clock() - snapshot.fetched_at >= self._refresh_s:  # type: ignore[union-attr]
            self._refresh_in_background(state)
        assert snapshot is not None
        if kid is None:
            # Without a kid the choice is unambiguous only when the issuer has one key.
            if len(snapshot.all_keys) == 1:
                return snapshot.all_keys[0]
            raise AuthenticationError("token has no key id")
        jwk = snapshot.by_kid.get(kid)
        if jwk is None:
            self._refresh(state)  # rate-limited: an unknown kid may be a freshly rotated key
            snapshot = state.snapshot
            jwk = snapshot.by_kid.get(kid) if self._usable(snapshot) else None  # type: ignore[union-attr]
            if jwk is None:
                raise AuthenticationError("token signing key is unknown")
        return jwk

    def _refresh_in_background(self, state: _IssuerState) -> None:
        with state.flag_lock:
            if state.refreshing:
                return
            state.refreshing = True

        def run() -> None:
            try:
                self._refresh(state)
            finally:
                with state.flag_lock:
                    state.refreshing = False

        threading.Thread(target=run, name="oidc-jwks-refresh", daemon=True).start()

    def _refresh(self, state: _IssuerState, *, force: bool = False) -> bool | None:
        """Fetch the issuer's JWKS unless one was attempted within the rate limit.

        Returns True on success, False on failure, None when skipped by the rate limit.
        """
        with state.fetch_lock:
            now = self._clock()
            recent = state.last_attempt is not None and now - state.last_attempt < self._min_refetch_s
            if recent and not force:
                return None
            state.last_attempt = now
            url = state.config.jwks_url
            try:
                by_kid, keys = _parse_jwks(self._fetcher(url, self._timeout_s))
            except Exception as exc:  # noqa: BLE001 - any fetch/parse failure keeps the old keys
                _log.warning(
                    "OIDC issuer %s: JWKS fetch from %s failed: %s", state.config.issuer, url, exc
                )
                return False
            if not keys:
                _log.warning("OIDC issuer %s: JWKS at %s has no usable keys", state.config.issuer, url)
            state.snapshot = _KeySnapshot(by_kid=by_kid, all_keys=keys, fetched_at=now)
            return True


