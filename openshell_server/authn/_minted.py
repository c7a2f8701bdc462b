"""Gateway-minted tokens: the gateway's own signing keys, and service-account/supervisor JWTs.

:class:`SigningKeys` keeps ECDSA P-256 (ES256) keys in ``<data_dir>/keys/`` (directory 0700, key
files 0600, created on first start). Each key has a ``kid`` (its RFC 7638 JWK thumbprint).
:meth:`SigningKeys.rotate` makes a new active key; retired keys still verify for
``retention_s`` after they were retired, so tokens minted just before a rotation live out
their lifetime, and are then deleted. A ``keys.json`` manifest records which key is active
and when each was retired; it is rewritten atomically under a file lock, so several
processes may share one data directory (a verifier that meets an unknown ``kid`` re-reads
the manifest, at most once per ``reload_interval_s``).

:class:`TokenMinter` mints and verifies the tokens: ``iss`` = ``openshell-gateway``,
``aud`` = the gateway id, ``oskind`` = ``service_account``, ``supervisor`` or ``user`` (a
workstation account ``unix:<name>`` vouched for by the identity broker, whose global roles
travel as the ``osroles`` claim).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._identity import GLOBAL_ROLE_VALUES, MINTED_ISSUER, UNIX_PRINCIPAL_PREFIX, AuthenticationError, Identity
from ._jws import ParsedToken, check_audience, check_times, parse_token, require_str, verify_signature

__all__ = ["MINTED_ALGORITHM", "SigningKeys", "TokenMinter"]

# ES256 rather than EdDSA: with OpenSSL on x86-64, P-256 verification is about twice as
# fast as Ed25519 verification, and verification is on every uncached call.
MINTED_ALGORITHM = "ES256"
_MANIFEST = "keys.json"
_LOCKFILE = ".lock"

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    private: ec.EllipticCurvePrivateKey
    public: ec.EllipticCurvePublicKey
    created_at: float
    retired_at: float | None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _public_jwk(public: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def _thumbprint(public: ec.EllipticCurvePublicKey) -> str:
    # RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
    canonical = json.dumps(_public_jwk(public), sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())


def _check_private(path: Path, *, directory: bool) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        wanted = "700" if directory else "600"
        raise PermissionError(
            f"{path} is accessible by other users (mode {mode:o}); run: chmod {wanted} {path}"
        )


def _write_private(path: Path, data: bytes, *, exclusive: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class SigningKeys:
    """The gateway's token-signing keys, persisted in ``<data_dir>/keys/``."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        retention_s: float = 86400.0,
        reload_interval_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not retention_s > 0:
            raise ValueError("signing key retention must be a positive number of seconds")
        self.retention_s = float(retention_s)
        self.clock = clock
        self._reload_interval_s = reload_interval_s
        self._dir = Path(data_dir) / "keys"
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}
        self._active = ""
        self._last_reload = clock()
        self._open()

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def active_kid(self) -> str:
        return self._active

    def signing_key(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The active ``(kid, private key)``."""
        with self._lock:
            key = self._keys[self._active]
        return key.kid, key.private

    def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The public key for ``kid`` if it is active or retired within the retention time."""
        key = self._keys.get(kid)
        if key is None:
            self._maybe_reload()
            key = self._keys.get(kid)
        if key is None or not self._within_retention(key, self.clock()):
            return None
        return key.public

    def rotate(self) -> str:
        """Make a new active key; the previous one keeps verifying until retention passes."""
        with self._lock, self._file_lock():
            self._load()
            now = self.clock()
            keys = dict(self._keys)
            old = keys[self._active]
            keys[old.kid] = _Key(old.kid, old.private, old.public, old.created_at, now)
            new = self._create_key(now)
            keys[new.kid] = new
            self._keys, self._active = keys, new.kid
            self._purge(now)
            self._write_manifest()
        _log.info("rotated gateway signing key: new kid %s, retired %s", new.kid, old.kid)
        return new.kid

    def jwks(self) -> dict[str, Any]:
        """The public keys still valid for verification, as a JWKS document."""
        now = self.clock()
        return {
            "keys": [
                {**_public_jwk(k.public), "kid": k.kid, "alg": MINTED_ALGORITHM, "use": "sig"}
                for k in self._keys.values()
                if self._within_retention(k, now)
            ]
        }

    def reload(self) -> None:
        """Re-read the manifest (another process sharing the data directory may have rotated)."""
        with self._lock, self._file_lock():
            self._load()

    # ------------------------------------------------------------------ internals

    def _within_retention(self, key: _Key, now: float) -> bool:
        return key.retired_at is None or now < key.retired_at + self.retention_s

    def _maybe_reload(self) -> None:
        now = self.clock()
        if now - self._last_reload < self._reload_interval_s:
            return
        self._last_reload = now
        try:
            self.reload()
        except (OSError, ValueError) as exc:
            _log.warning("could not reload gateway signing keys from %s: %s", self._dir, exc)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fd = os.open(self._dir / _LOCKFILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _open(self) -> None:
        created = not self._dir.exists()
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if created:
            os.chmod(self._dir, 0o700)  # mkdir's mode is filtered by the umask
        _check_private(self._dir, directory=True)
        with self._lock, self._file_lock():
            if (self._dir / _MANIFEST).exists():
                self._load()
            else:
                key = self._create_key(self.clock())
                self._keys, self._active = {key.kid: key}, key.kid
                self._write_manifest()
                _log.info("created gateway signing key %s in %s", key.kid, self._dir)

    def _create_key(self, now: float) -> _Key:
        private = ec.generate_private_key(ec.SECP256R1())
        public = private.public_key()
        kid = _thumbprint(public)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self._dir / f"{kid}.pem", pem, exclusive=True)
        return _Key(kid, private, public, now, None)

    def _load(self) -> None:
        path = self._dir / _MANIFEST
        _check_private(path, directory=False)
        try:
            manifest = json.loads(path.read_text("utf-8"))
            active = manifest["active"]
            entries = manifest["keys"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a valid signing-key manifest: {exc}") from None
        keys: dict[str, _Key] = {}
        for entry in entries:
            kid = entry["kid"]
            key_path = self._dir / f"{kid}.pem"
            if not key_path.exists() and kid != active:
                continue  # a retired key already purged by another process
            _check_private(key_path, directory=False)
            private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
                raise ValueError(f"{key_path} is not a P-256 private key")
            public = private.public_key()
            if _thumbprint(public) != kid:
                raise ValueError(f"{key_path} does not hold the key its name says ({kid})")
            keys[kid] = _Key(kid, private, public, float(entry["created_at"]), entry.get("retired_at"))
        if active not in keys:
            raise ValueError(f"{path}: the active signing key {active} is missing")
        self._keys, self._active = keys, active
        self._last_reload = self.clock()

    def _purge(self, now: float) -> None:
        # A new dict, not in-place deletion: public_key() reads self._keys without the lock.
        keep = {kid: k for kid, k in self._keys.items() if self._within_retention(k, now)}
        for kid in self._keys.keys() - keep.keys():
            with contextlib.suppress(FileNotFoundError):
                (self._dir / f"{kid}.pem").unlink()
        self._keys = keep

    def _write_manifest(self) -> None:
        manifest = {
            "version": 1,
            "active": self._active,
            "keys": [
                {"kid": k.kid, "created_at": k.created_at, "retired_at": k.retired_at}
                for k in self._keys.values()
            ],
        }
        tmp = self._dir / f"{_MANIFEST}.tmp"
        _write_private(tmp, json.dumps(manifest, indent=2).encode("utf-8"), exclusive=False)
        os.replace(tmp, self._dir / _MANIFEST)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or not value.isprintable() or ":" in value:
        raise ValueError(f"{what} must be a non-empty printable string without ':' (got {value!r})")
    return value


class TokenMinter:
    """Mint and verify the gateway's own service-account and supervisor tokens."""

    def __init__(
        self,
        keys: SigningKeys,
        gateway_id: str,
        max_ttl_s: float = 86400.0,
        *,
        leeway_s: float = 30.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(gateway_id, str) or not gateway_id:
            raise ValueError("gateway id must be a non-empty string")
        if not max_ttl_s > 0:
            raise ValueError("maximum token lifetime must be a positive number of seconds")
        if max_ttl_s > keys.retention_s:
            raise ValueError(
                f"maximum token lifetime ({max_ttl_s:g}s) exceeds the signing-key retention "
                f"({keys.retention_s:g}s): tokens would outlive their key after a rotation"
            )
        self.keys = keys
        self.gateway_id = gateway_id
        self.max_ttl_s = float(max_ttl_s)
        self.leeway_s = leeway_s
        self._clock = clock or keys.clock

    def mint_service_account(
        self, sa_id: str, namespace: str, name: str, ttl_s: float
    ) -> tuple[str, float]:
        """A token for service account ``sa_id`` (``<namespace>/<name>``): ``(token, expires_at)``."""
        _check_name(sa_id, "service account id")
        _check_name(namespace, "namespace")
        _check_name(name, "service account name")
        return self._mint(
            {
                "sub": f"system:serviceaccount:{namespace}:{name}",
                "oskind": "service_account",
                "ossa": sa_id,
                "osns": namespace,
                "osname": name,
            },
            ttl_s,
        )

    def mint_supervisor(self, sandbox_id: str, namespace: str, ttl_s: float) -> tuple[str, float]:
        """A token bound to sandbox ``sandbox_id`` for its supervisor: ``(token, expires_at)``."""
        _check_name(sandbox_id, "sandbox id")
        _check_name(namespace, "namespace")
        return self._mint(
            {"sub": f"sandbox:{sandbox_id}", "oskind": "supervisor", "ossandbox": sandbox_id, "osns": namespace},
            ttl_s,
        )

    def mint_user(
        self, username: str, namespace: str, ttl_s: float, *, global_roles: frozenset[str] = frozenset()
    ) -> tuple[str, float]:
        """A token for the operating-system account ``username`` (principal ``unix:<username>``).

        Only the identity broker calls this, after reading the account from the socket's
        peer credentials; ``namespace`` is the account's personal namespace.
        """
        _check_name(username, "user name")
        _check_name(namespace, "namespace")
        unknown = set(global_roles) - GLOBAL_ROLE_VALUES
        if unknown:
            raise ValueError(f"unknown global roles {sorted(unknown)}")
        return self._mint(
            {
                "sub": f"{UNIX_PRINCIPAL_PREFIX}{username}",
                "oskind": "user",
                "osns": namespace,
                "osroles": sorted(global_roles),
            },
            ttl_s,
        )

    def _mint(self, claims: dict[str, Any], ttl_s: float) -> tuple[str, float]:
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not ttl_s > 0:
            raise ValueError(f"token lifetime must be a positive number of seconds (got {ttl_s!r})")
        if ttl_s > self.max_ttl_s:
            raise ValueError(
                f"token lifetime {ttl_s:g}s exceeds the maximum of {self.max_ttl_s:g}s"
            )
        now = int(self._clock())
        exp = now + int(ttl_s)
        kid, private = self.keys.signing_key()
        payload = {
            "iss": MINTED_ISSUER,
            "aud": self.gateway_id,
            **claims,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": exp,
        }
        token = jwt.encode(payload, private, algorithm=MINTED_ALGORITHM, headers={"kid": kid})
        return token, float(exp)

    def verify(self, token: str) -> Identity:
        """Verify a gateway-minted ``token`` or raise :class:`AuthenticationError`."""
        return self.verify_parsed(parse_token(token))

    def verify_parsed(self, parsed: ParsedToken) -> Identity:
        if parsed.issuer != MINTED_ISSUER:
            raise AuthenticationError("token issuer is not trusted")
        if parsed.alg != MINTED_ALGORITHM:
            raise AuthenticationError("token algorithm is not allowed for its issuer")
        key = self.keys.public_key(parsed.kid) if parsed.kid else None
        if key is None:
            raise AuthenticationError("token signing key is unknown or retired")
        verify_signature(parsed, key)
        claims = parsed.claims
        expires_at = check_times(claims, self._clock(), self.leeway_s)
        check_audience(claims, self.gateway_id)
        iat = claims.get("iat")
        if not isinstance(iat, int) or expires_at - iat > self.max_ttl_s + self.leeway_s:
            # A token minted under a longer maximum than the one configured now.
            raise AuthenticationError("token lifetime exceeds the configured maximum")
        subject = require_str(claims, "sub")
        token_id = require_str(claims, "jti")
        namespace = require_str(claims, "osns")
        kind = claims.get("oskind")
        if kind == "service_account":
            sa_id = require_str(claims, "ossa")
            name = require_str(claims, "osname")
            if subject != f"system:serviceaccount:{namespace}:{name}":
                raise AuthenticationError("token subject does not match its service account")
            return Identity(
                kind="service_account",
                principal_id=subject,
                issuer=MINTED_ISSUER,
                subject=subject,
                service_account_id=sa_id,
                namespace=namespace,
                sa_name=name,
                expires_at=expires_at,
                token_id=token_id,
            )
        if kind == "supervisor":
            sandbox_id = require_str(claims, "ossandbox")
            if subject != f"sandbox:{sandbox_id}":
                raise AuthenticationError("token subject does not match its sandbox")
            return Identity(
                kind="supervisor",
                principal_id=subject,
                issuer=MINTED_ISSUER,
                subject=subject,
                namespace=namespace,
                sandbox_id=sandbox_id,
                expires_at=expires_at,
                token_id=token_id,
            )
        if kind == "user":
            roles = claims.get("osroles")
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise AuthenticationError("token claim 'osroles' must be a list of strings")
            if not subject.startswith(UNIX_PRINCIPAL_PREFIX) or len(subject) == len(UNIX_PRINCIPAL_PREFIX):
                raise AuthenticationError("token subject is not a workstation account")
            return Identity(
                kind="user",
                principal_id=subject,
                issuer=MINTED_ISSUER,
                subject=subject,
                global_roles=GLOBAL_ROLE_VALUES.intersection(roles),
                namespace=namespace,
                expires_at=expires_at,
                token_id=token_id,
            )
        raise AuthenticationError("token kind is unknown")
