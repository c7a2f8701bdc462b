"""OIDC verification against a real JWKS endpoint on 127.0.0.1: every rejection and the key cache."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from openshell_server.authn import AuthenticationError, OidcIssuer, OidcVerifier, parse_oidc_issuers
from tests.authn.oidc_fixture import FakeClock, FakeIssuer, generate_key


def _verifier(clock: FakeClock, *issuers: FakeIssuer, **kwargs: object) -> OidcVerifier:
    configs = [OidcIssuer(i.issuer, i.audience, i.jwks_url, algorithms=(i.alg,)) for i in issuers]
    return OidcVerifier(configs, clock=clock, **kwargs)  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> list[str]:
    return token.split(".")


def _with_payload(token: str, **changes: object) -> str:
    """The same header and signature with a modified payload (a tampered token)."""
    header, payload, signature = _segments(token)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


@pytest.fixture
def idp() -> Iterator[FakeIssuer]:
    with FakeIssuer() as issuer:
        yield issuer


def test_valid_token_gives_issuer_qualified_user(idp: FakeIssuer, clock: FakeClock) -> None:
    verifier = _verifier(clock, idp)
    token = idp.issue("alice", roles=["platform_admin", "some_other_role"], now=clock.now)
    identity = verifier.verify(token)
    assert identity.kind == "user"
    assert identity.principal_id == f"{idp.issuer}#alice"
    assert identity.issuer == idp.issuer
    assert identity.subject == "alice"
    assert identity.global_roles == frozenset({"platform_admin"})
    assert identity.expires_at == int(clock.now + 300)
    assert identity.service_account_id is None and identity.sandbox_id is None


@pytest.mark.parametrize(
    ("claim_value", "expected"),
    [
        (["auditor"], {"auditor"}),
        ("auditor platform_admin", {"auditor", "platform_admin"}),
        ("  auditor  ", {"auditor"}),
        ([], set()),
        ("namespace_admin user", set()),
        (None, set()),
    ],
)
def test_roles_claim_list_or_space_separated(
    idp: FakeIssuer, clock: FakeClock, claim_value: object, expected: set[str]
) -> None:
    token = idp.issue("bob", roles=claim_value, now=clock.now)  # type: ignore[arg-type]
    assert _verifier(clock, idp).verify(token).global_roles == expected


def test_roles_claim_name_is_configurable(clock: FakeClock) -> None:
    with FakeIssuer(roles_claim="groups") as idp:
        config = OidcIssuer(idp.issuer, idp.audience, idp.jwks_url)
        token = idp.issue("carol", roles=["auditor"], openshell_roles=["platform_admin"], now=clock.now)
        verifier = OidcVerifier([config], roles_claim="groups", clock=clock)
        assert verifier.verify(token).global_roles == {"auditor"}


@pytest.mark.parametrize("bad", [42, {"platform_admin": True}, ["auditor", 7]])
def test_malformed_roles_claim_is_rejected(idp: FakeIssuer, clock: FakeClock, bad: object) -> None:
    token = idp.issue("dave", roles=None, openshell_roles=bad, now=clock.now)
    with pytest.raises(AuthenticationError, match="openshell_roles"):
        _verifier(clock, idp).verify(token)


def test_two_issuers_same_sub_are_two_principals(clock: FakeClock) -> None:
    with FakeIssuer() as a, FakeIssuer(alg="ES256") as b:
        verifier = _verifier(clock, a, b)
        ida = verifier.verify(a.issue("same-person", now=clock.now))
        idb = verifier.verify(b.issue("same-person", now=clock.now))
        assert ida.subject == idb.subject == "same-person"
        assert ida.principal_id != idb.principal_id
        assert {ida.principal_id, idb.principal_id} == {f"{a.issuer}#same-person", f"{b.issuer}#same-person"}
        # A token of issuer A signed with issuer B's key is not A's.
        forged = a.issue("same-person", now=clock.now, key=b.private_key(), alg="ES256", kid=b.active_kid)
        with pytest.raises(AuthenticationError):
            verifier.verify(forged)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
def test_each_asymmetric_algorithm_verifies(clock: FakeClock, alg: str) -> None:
    with FakeIssuer(alg=alg) as idp:
        assert _verifier(clock, idp).verify(idp.issue("eve", now=clock.now)).subject == "eve"


# --------------------------------------------------------------------------- rejections

Case = Callable[[FakeIssuer, FakeClock], str]


def _alg_none(idp: FakeIssuer, clock: FakeClock) -> str:
    claims = idp.claims("mallory", now=clock.now)
    header = {"alg": "none", "typ": "JWT", "kid": idp.active_kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _hs256_with_public_key(idp: FakeIssuer, clock: FakeClock) -> str:
    # The key-confusion attack: HMAC keyed with the issuer's public key PEM. PyJWT refuses
    # to sign with a PEM key, so the MAC is computed by hand.
    import hashlib
    import hmac

    pem = idp.private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.active_kid}).encode())
    payload = _b64(json.dumps(idp.claims("mallory", now=clock.now)).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def _rs256_header_on_es256_issuer_key(idp: FakeIssuer, clock: FakeClock) -> str:
    # Issuer pins RS256; a token claiming ES256 with some EC key is refused by the pin.
    return idp.issue("mallory", now=clock.now, key=generate_key("ES256"), alg="ES256")


REJECTIONS: dict[str, tuple[Case, str]] = {
    "expired": (lambda i, c: i.issue("u", now=c.now - 3600, ttl_s=600), "expired"),
    "expired-beyond-leeway": (lambda i, c: i.issue("u", now=c.now - 331, ttl_s=300), "expired"),
    "not-yet-valid": (lambda i, c: i.issue("u", now=c.now, nbf=int(c.now + 120)), "not valid yet"),
    "issued-in-future": (lambda i, c: i.issue("u", now=c.now, iat=int(c.now + 120)), "future"),
    "no-exp": (lambda i, c: i.issue("u", now=c.now, exp=None), "'exp'"),
    "exp-not-number": (lambda i, c: i.issue("u", now=c.now, exp="tomorrow"), "'exp'"),
    "exp-bool": (lambda i, c: i.issue("u", now=c.now, exp=True), "'exp'"),
    "exp-overflow": (lambda i, c: i.issue("u", now=c.now, exp=10**400), "out of range"),
    "wrong-issuer": (lambda i, c: i.issue("u", now=c.now, iss="https://evil.example"), "issuer"),
    "no-issuer": (lambda i, c: i.issue("u", now=c.now, iss=None), "issuer"),
    "wrong-audience": (lambda i, c: i.issue("u", now=c.now, aud="someone-else"), "audience"),
    "audience-list-without-us": (lambda i, c: i.issue("u", now=c.now, aud=["a", "b"]), "audience"),
    "no-audience": (lambda i, c: i.issue("u", now=c.now, aud=None), "audience"),
    "missing-sub": (lambda i, c: i.issue(None, now=c.now), "'sub'"),
    "empty-sub": (lambda i, c: i.issue("", now=c.now), "'sub'"),
    "non-string-sub": (lambda i, c: i.issue(12345, now=c.now), "'sub'"),  # type: ignore[arg-type]
    "alg-none": (_alg_none, "algorithm"),
    "hs256-with-public-key-pem": (_hs256_with_public_key, "algorithm"),
    "alg-not-pinned-for-issuer": (_rs256_header_on_es256_issuer_key, "algorithm"),
    "unknown-kid": (lambda i, c: i.issue("u", now=c.now, kid="no-such-kid", key=i.private_key()), "unknown"),
    "tampered-payload": (lambda i, c: _with_payload(i.issue("u", now=c.now), sub="admin"), "signature"),
    "tampered-roles": (
        lambda i, c: _with_payload(i.issue("u", now=c.now), openshell_roles=["platform_admin"]),
        "signature",
    ),
    "truncated": (lambda i, c: i.issue("u", now=c.now)[:-20], "signature"),
    "truncated-to-two-segments": (lambda i, c: i.issue("u", now=c.now).rsplit(".", 1)[0], "malformed"),
    "no-signature": (lambda i, c: i.issue("u", now=c.now).rsplit(".", 1)[0] + ".", "malformed"),
    "garbage": (lambda i, c: "this is not a token", "malformed"),
    "garbage-dots": (lambda i, c: "a.b.c", "malformed"),
    "empty": (lambda i, c: "", "malformed"),
    "header-not-json": (lambda i, c: _b64(b"{nope") + ".e30.c2ln", "malformed"),
    "header-is-list": (lambda i, c: _b64(b"[1]") + ".e30.c2ln", "malformed"),
    "oversized-header": (
        lambda i, c: i.issue("u", now=c.now, headers={"x": "A" * 9000}),
        "larger than 8192",
    ),
    "oversized-token": (lambda i, c: "x" * 100_000, "larger than 8192"),
    "non-ascii": (lambda i, c: i.issue("u", now=c.now)[:-4] + "é" * 4, "malformed"),
    "duplicate-claims": (
        lambda i, c: _segments(i.issue("u", now=c.now))[0]
        + "."
        + _b64(b'{"sub":"u","sub":"admin"}')
        + "."
        + _segments(i.issue("u", now=c.now))[2],
        "malformed",
    ),
    "critical-header": (lambda i, c: i.issue("u", now=c.now, headers={"crit": ["exp"]}), "critical"),
    "different-key-same-kid": (lambda i, c: i.issue("u", now=c.now, key=generate_key("RS256")), "signature"),
}


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_bad_tokens_are_rejected(idp: FakeIssuer, clock: FakeClock, name: str) -> None:
    build, reason = REJECTIONS[name]
    verifier = _verifier(clock, idp)
    verifier.verify(idp.issue("warm-up", now=clock.now))  # keys are cached: not a fetch failure
    token = build(idp, clock)
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(token)
    message = caught.value.reason
    assert reason in message
    assert "\n" not in message and len(message) < 120
    assert "BEGIN" not in message
    assert not token or token[:20] not in message


def test_leeway_accepts_slightly_expired_token(idp: FakeIssuer, clock: FakeClock) -> None:
    token = idp.issue("u", now=clock.now - 320, ttl_s=300)  # expired 20 s ago, leeway 30 s
    assert _verifier(clock, idp).verify(token).subject == "u"


def test_unknown_kid_refetches_once_then_rejects(idp: FakeIssuer, clock: FakeClock) -> None:
    verifier = _verifier(clock, idp)
    verifier.verify(idp.issue("u", now=clock.now))
    assert idp.jwks_requests == 1
    bogus = idp.issue("u", now=clock.now, kid="made-up", key=idp.private_key())
    clock.advance(11)
    with pytest.raises(AuthenticationError, match="unknown"):
        verifier.verify(bogus)
    assert idp.jwks_requests == 2
    # A flood of unknown kids within the rate limit causes no further fetches.
    for _ in range(20):
        with pytest.raises(AuthenticationError, match="unknown"):
            verifier.verify(bogus)
    assert idp.jwks_requests == 2


def test_key_rotation_at_jwks_is_picked_up(idp: FakeIssuer, clock: FakeClock) -> None:
    verifier = _verifier(clock, idp)
    old_kid = idp.active_kid
    verifier.verify(idp.issue("u", now=clock.now))
    new_kid = idp.rotate(drop_old=True)
    clock.advance(11)
    identity = verifier.verify(idp.issue("u", now=clock.now, kid=new_kid))
    assert identity.subject == "u"
    assert idp.jwks_requests == 2
    # The old key was unpublished and the set refetched: tokens signed with it now fail.
    with pytest.raises(AuthenticationError, match="unknown"):
        verifier.verify(idp.issue("u", now=clock.now, kid=old_kid))


def test_unpublished_key_stops_verifying_after_refresh(idp: FakeIssuer, clock: FakeClock) -> None:
    verifier = _verifier(clock, idp, refresh_s=60)
    first = idp.active_kid
    verifier.verify(idp.issue("u", now=clock.now))
    idp.rotate(drop_old=True)
    clock.advance(61)
    verifier.prefetch()  # what the background refresh does, synchronously
    with pytest.raises(AuthenticationError, match="unknown"):
        verifier.verify(idp.issue("u", now=clock.now, kid=first, key=idp.private_key(first)))


def test_jwks_down_uses_cached_keys_until_max_age_then_rejects(idp: FakeIssuer, clock: FakeClock) -> None:
    verifier = _verifier(clock, idp, refresh_s=60, max_key_age_s=3600)
    verifier.verify(idp.issue("u", now=clock.now))
    idp.stop()
    clock.advance(1800)  # stale: a refresh is attempted (and fails) but cached keys still serve
    assert verifier.verify(idp.issue("u", now=clock.now)).subject == "u"
    assert verifier.prefetch() == {idp.issuer: "JWKS could not be fetched"}
    assert verifier.verify(idp.issue("u", now=clock.now)).subject == "u"
    clock.advance(1801)  # past the max key age with no successful fetch
    with pytest.raises(AuthenticationError, match="unavailable"):
        verifier.verify(idp.issue("u", now=clock.now))
    # Endpoint back: keys are fetched again and tokens verify.
    idp.start()
    clock.advance(11)
    assert verifier.verify(idp.issue("u", now=clock.now)).subject == "u"


def test_jwks_down_from_the_start_rejects(clock: FakeClock) -> None:
    idp = FakeIssuer()
    token = idp.issue("u", now=clock.now)
    idp.stop()
    verifier = _verifier(clock, idp)
    assert verifier.prefetch() == {idp.issuer: "JWKS could not be fetched"}
    with pytest.raises(AuthenticationError, match="unavailable"):
        verifier.verify(token)


def test_jwks_with_hmac_or_private_keys_is_ignored(clock: FakeClock) -> None:
    secret = b"a-shared-secret-of-32-bytes-long"
    docs = {
        "keys": [
            {"kty": "oct", "k": _b64(secret), "kid": "hmac", "alg": "HS256"},
        ]
    }
    config = OidcIssuer("https://idp.example", "openshell", "http://127.0.0.1:1/jwks")
    verifier = OidcVerifier([config], clock=clock, fetcher=lambda url, t: json.dumps(docs).encode())
    token = jwt.encode(
        {"iss": "https://idp.example", "aud": "openshell", "sub": "x", "exp": int(clock.now + 60)},
        secret,
        algorithm="HS256",
        headers={"kid": "hmac"},
    )
    with pytest.raises(AuthenticationError, match="algorithm"):
        verifier.verify(token)
    # Even if RS256 is claimed for that kid, there is no usable key behind it.
    with pytest.raises(AuthenticationError, match="unknown"):
        verifier.verify(
            jwt.encode({"iss": "https://idp.example", "aud": "openshell", "sub": "x", "exp": int(clock.now + 60)},
                       generate_key("RS256"), algorithm="RS256", headers={"kid": "hmac"})
        )


def test_key_type_must_match_algorithm(clock: FakeClock) -> None:
    # The issuer allows RS256 and ES256; a token claims ES256 but names the RSA key's kid.
    with FakeIssuer() as idp:
        config = OidcIssuer(idp.issuer, idp.audience, idp.jwks_url, algorithms=("RS256", "ES256"))
        verifier = OidcVerifier([config], clock=clock)
        token = idp.issue("u", now=clock.now, key=generate_key("ES256"), alg="ES256")
        with pytest.raises(AuthenticationError, match="does not match"):
            verifier.verify(token)


# --------------------------------------------------------------------------- configuration


def test_issuer_config_validation() -> None:
    with pytest.raises(ValueError, match="algorithms"):
        OidcIssuer("https://a", "aud", "https://a/jwks", algorithms=("HS256",))
    with pytest.raises(ValueError, match="algorithms"):
        OidcIssuer("https://a", "aud", "https://a/jwks", algorithms=("none",))
    with pytest.raises(ValueError, match="jwks_url"):
        OidcIssuer("https://a", "aud", "file:///etc/passwd")
    with pytest.raises(ValueError, match="reserved"):
        OidcIssuer("openshell-gateway", "aud", "https://a/jwks")
    with pytest.raises(ValueError, match="'#'"):
        OidcIssuer("https://a#x", "aud", "https://a/jwks")
    with pytest.raises(ValueError, match="configured twice"):
        OidcVerifier([OidcIssuer("https://a", "x", "https://a/j"), OidcIssuer("https://a", "y", "https://a/j")])


def test_parse_oidc_issuers_env() -> None:
    assert parse_oidc_issuers("") == []
    issuers = parse_oidc_issuers(
        '[{"issuer": "https://a", "audience": "gw", "jwks_url": "https://a/jwks"},'
        ' {"issuer": "https://b", "audience": "gw", "jwks_url": "https://b/jwks", "algorithms": ["ES256"]}]'
    )
    assert [i.issuer for i in issuers] == ["https://a", "https://b"]
    assert issuers[1].algorithms == ("ES256",)
    for text, message in [
        ("{", "not valid JSON"),
        ('{"issuer": "x"}', "JSON list"),
        ('[{"issuer": "https://a", "audience": "gw"}]', "missing: jwks_url"),
        ('[{"issuer": "https://a", "audience": "gw", "jwks_url": "https://a/j", "extra": 1}]', "unknown field"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_oidc_issuers(text)


def test_token_without_kid_only_when_issuer_has_a_single_key(idp: FakeIssuer, clock: FakeClock) -> None:
    claims = idp.claims("u", now=clock.now)
    no_kid = jwt.encode(claims, idp.private_key(), algorithm="RS256")
    assert "kid" not in jwt.get_unverified_header(no_kid)
    assert _verifier(clock, idp).verify(no_kid).subject == "u"
    idp.add_key()
    with pytest.raises(AuthenticationError, match="no key id"):
        _verifier(clock, idp).verify(no_kid)
