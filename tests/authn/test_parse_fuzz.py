"""Property test: whatever string arrives as a bearer token, authentication either succeeds
or raises AuthenticationError with a one-line reason, never anything else."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openshell_server.authn import AuthenticationError, Authenticator, SigningKeys, TokenMinter


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["ES256", "RS256", "none", "HS256", "EdDSA"]) | st.text(max_size=5)},
    optional={"kid": st.text(max_size=10) | st.integers(), "crit": _json_values},
)
_payloads = st.dictionaries(
    st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat", "oskind", "osns", "ossa", "osname", "jti"]),
    _json_values | st.just("openshell-gateway"),
)
_structured = st.builds(
    lambda h, p, sig: f"{_b64(json.dumps(h).encode())}.{_b64(json.dumps(p).encode())}.{_b64(sig)}",
    _headers,
    _payloads,
    st.binary(max_size=80),
)
_tokens = st.text(max_size=300) | st.text(alphabet="abcXYZ019-_.=", max_size=200) | _structured


@pytest.fixture(scope="module")
def authenticator(tmp_path_factory: pytest.TempPathFactory) -> Authenticator:
    return Authenticator(None, TokenMinter(SigningKeys(tmp_path_factory.mktemp("fuzz")), "gw"))


@settings(max_examples=300, deadline=None)
@given(token=_tokens)
def test_arbitrary_tokens_are_rejected_cleanly(authenticator: Authenticator, token: str) -> None:
    try:
        authenticator.authenticate(token)
    except AuthenticationError as exc:
        assert exc.reason and "\n" not in exc.reason
    else:  # pragma: no cover - a random string is never a validly signed token
        raise AssertionError(f"accepted a random token: {token!r}")
