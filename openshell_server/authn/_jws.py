"""Strict, bounded parsing of compact JWS tokens and the checks every verifier shares.

The token is split and its header and payload decoded exactly once, before any key is
chosen, so a hostile token is refused cheaply (size, shape, JSON) and the verifiers can
route on the unverified ``iss``/``kid`` without a second parse. Signatures are checked
with PyJWT's algorithm objects; the claims (times, audience) are checked here against an
injectable clock so every verifier applies the same leeway rules.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from ._identity import AuthenticationError

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "ParsedToken",
    "check_audience",
    "check_times",
    "key_matches_alg",
    "parse_token",
    "require_str",
    "verify_signature",
]

# gRPC's default metadata limit is 8 KiB; a bearer token bigger than that is not a real
# token. Checked before any decoding so an oversized header costs nothing to refuse.
MAX_TOKEN_BYTES = 8192

# Only asymmetric algorithms are ever accepted: never "none", never HS* (an HS* token
# "signed" with a public key is the classic key-confusion attack).
ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

_ALGORITHMS: dict[str, Algorithm] = {
    name: alg for name, alg in get_default_algorithms().items() if name in ASYMMETRIC_ALGORITHMS
}
_EC_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
_MIN_RSA_BITS = 2048
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token split and decoded, *not yet verified*."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return self.header["alg"]

    @property
    def kid(self) -> str | None:
        return self.header.get("kid")

    @property
    def issuer(self) -> str | None:
        iss = self.claims.get("iss")
        return iss if isinstance(iss, str) else None


def _b64decode(segment: str) -> bytes:
    if not _SEGMENT.match(segment):
        raise AuthenticationError("token is malformed")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise AuthenticationError("token is malformed") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate members are ambiguous (parsers disagree on which wins): refuse them.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AuthenticationError("token is malformed") from None
    if not isinstance(value, dict):
        raise AuthenticationError("token is malformed")
    return value


def parse_token(token: str) -> ParsedToken:
    """Split and decode ``token`` or raise :class:`AuthenticationError`. Verifies nothing."""
    if not isinstance(token, str) or not token:
        raise AuthenticationError("token is malformed")
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthenticationError(f"token is larger than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationError("token is malformed")
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(_b64decode(header_b64))
    claims = _json_object(_b64decode(payload_b64))
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise AuthenticationError("token header has no algorithm")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise AuthenticationError("token algorithm is not allowed")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise AuthenticationError("token is malformed")
    if "crit" in header:
        # No critical header extension is understood, so RFC 7515 says: reject.
        raise AuthenticationError("token uses an unsupported critical header")
    signature = _b64decode(signature_b64)
    return ParsedToken(
        header=header,
        claims=claims,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
    )


def key_matches_alg(key: Any, alg: str) -> bool:
    """True when ``key`` (a cryptography public key) is the right type for ``alg``."""
    if alg[:2] in ("RS", "PS"):
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= _MIN_RSA_BITS
    if alg in _EC_CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _EC_CURVES[alg])
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def verify_signature(parsed: ParsedToken, key: Any) -> None:
    """Check the signature of ``parsed`` with ``key`` or raise :class:`AuthenticationError`."""
    if not key_matches_alg(key, parsed.alg):
        raise AuthenticationError("token algorithm does not match its signing key")
    try:
        ok = _ALGORITHMS[parsed.alg].verify(parsed.signing_input, key, parsed.signature)
    except (InvalidKeyError, ValueError, TypeError):
        ok = False
    if not ok:
        raise AuthenticationError("token signature is invalid")


def _numeric(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise AuthenticationError(f"token has no {name!r} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationError(f"token claim {name!r} is not a number")
    try:
        return float(value)
    except OverflowError:  # a JSON integer beyond any float
        raise AuthenticationError(f"token claim {name!r} is out of range") from None


def check_times(claims: Mapping[str, Any], now: float, leeway_s: float) -> float:
    """Check ``exp`` (required), ``nbf`` and ``iat`` with leeway; return ``exp``."""
    exp = _numeric(claims, "exp", required=True)
    assert exp is not None
    if now >= exp + leeway_s:
        raise AuthenticationError("token has expired")
    nbf = _numeric(claims, "nbf", required=False)
    if nbf is not None and now + leeway_s < nbf:
        raise AuthenticationError("token is not valid yet")
    iat = _numeric(claims, "iat", required=False)
    if iat is not None and now + leeway_s < iat:
        raise AuthenticationError("token was issued in the future")
    return exp


def check_audience(claims: Mapping[str, Any], audience: str) -> None:
    """``aud`` must be ``audience`` or a list of strings containing it."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        ok = aud == audience
    elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        ok = audience in aud
    else:
        ok = False
    if not ok:
        raise AuthenticationError("token audience does not match")


def require_str(claims: Mapping[str, Any], name: str, *, max_len: int = 1024) -> str:
    """A non-empty string claim of bounded length, or :class:`AuthenticationError`."""
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise AuthenticationError(f"token has no {name!r} claim")
    if len(value) > max_len or not value.isprintable():
        raise AuthenticationError(f"token claim {name!r} is invalid")
    return value
