"""The authenticator chain: local mode, minted-before-OIDC, no fallback, the verified-token cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from openshell_server.authn import (
    LOCAL_IDENTITY,
    AuthenticationError,
    Authenticator,
    Identity,
    OidcIssuer,
    OidcVerifier,
    SigningKeys,
    TokenCache,
    TokenMinter,
)
from tests.authn.oidc_fixture import FakeClock, FakeIssuer


@pytest.fixture
def idp() -> Iterator[FakeIssuer]:
    with FakeIssuer() as issuer:
        yield issuer


@pytest.fixture
def minter(tmp_path: Path, clock: FakeClock) -> TokenMinter:
    return TokenMinter(SigningKeys(tmp_path, clock=clock), "gw-1", max_ttl_s=3600)


def _oidc(clock: FakeClock, *issuers: FakeIssuer) -> OidcVerifier:
    return OidcVerifier([OidcIssuer(i.issuer, i.audience, i.jwks_url) for i in issuers], clock=clock)


def _auth(clock: FakeClock, oidc: OidcVerifier | None, minter: TokenMinter | None) -> Authenticator:
    return Authenticator(oidc, minter, cache=TokenCache(clock=clock))


def test_local_mode_without_token_is_local_admin(minter: TokenMinter, clock: FakeClock) -> None:
    auth = _auth(clock, None, minter)
    assert auth.local_mode
    identity = auth.authenticate(None)
    assert identity == LOCAL_IDENTITY
    assert (identity.kind, identity.principal_id, identity.global_roles) == ("local", "local", {"platform_admin"})


def test_oidc_without_issuers_is_local_mode(clock: FakeClock) -> None:
    auth = _auth(clock, OidcVerifier([], clock=clock), None)
    assert auth.local_mode and auth.authenticate(None).kind == "local"


def test_no_token_rejected_when_oidc_configured(idp: FakeIssuer, clock: FakeClock) -> None:
    auth = _auth(clock, _oidc(clock, idp), None)
    assert not auth.local_mode
    with pytest.raises(AuthenticationError, match="no bearer token"):
        auth.authenticate(None)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 10_000, "eyJhbGciOiJub25lIn0.e30."])
def test_invalid_token_in_local_mode_never_falls_back(minter: TokenMinter, clock: FakeClock, token: str) -> None:
    with pytest.raises(AuthenticationError):
        _auth(clock, None, minter).authenticate(token)


def test_oidc_token_in_local_mode_is_rejected(idp: FakeIssuer, minter: TokenMinter, clock: FakeClock) -> None:
    # No issuer is trusted in local mode: a well-formed OIDC token is not "local admin".
    with pytest.raises(AuthenticationError, match="not trusted"):
        _auth(clock, None, minter).authenticate(idp.issue("alice", now=clock.now))


def test_minted_token_in_local_mode_is_that_principal(minter: TokenMinter, clock: FakeClock) -> None:
    auth = _auth(clock, None, minter)
    sa_token, _ = minter.mint_service_account("sa-1", "default", "ci", 600)
    sup_token, _ = minter.mint_supervisor("sb-1", "default", 600)
    sa = auth.authenticate(sa_token)
    assert sa.kind == "service_account" and sa.principal_id == "system:serviceaccount:default:ci"
    assert sa.global_roles == frozenset()
    sup = auth.authenticate(sup_token)
    assert sup.kind == "supervisor" and sup.sandbox_id == "sb-1"


def test_chain_routes_minted_and_oidc_tokens(idp: FakeIssuer, minter: TokenMinter, clock: FakeClock) -> None:
    auth = _auth(clock, _oidc(clock, idp), minter)
    user = auth.authenticate(idp.issue("alice", roles="auditor", now=clock.now))
    assert user.kind == "user" and user.principal_id == f"{idp.issuer}#alice" and user.global_roles == {"auditor"}
    sa_token, _ = minter.mint_service_account("sa-1", "team", "bot", 600)
    assert auth.authenticate(sa_token).kind == "service_account"


def test_minted_issuer_without_minter_is_rejected(idp: FakeIssuer, minter: TokenMinter, clock: FakeClock) -> None:
    token, _ = minter.mint_supervisor("sb", "ns", 60)
    with pytest.raises(AuthenticationError, match="not trusted"):
        _auth(clock, _oidc(clock, idp), None).authenticate(token)


def test_minted_token_for_other_gateway_rejected_through_chain(
    minter: TokenMinter, clock: FakeClock
) -> None:
    other = TokenMinter(minter.keys, "gw-2", max_ttl_s=3600)
    token, _ = other.mint_service_account("sa", "ns", "n", 60)
    with pytest.raises(AuthenticationError, match="audience"):
        _auth(clock, None, minter).authenticate(token)


# --------------------------------------------------------------------------- cache


def test_cache_hit_returns_same_identity_without_reverifying(
    idp: FakeIssuer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    oidc = _oidc(clock, idp)
    auth = _auth(clock, oidc, None)
    token = idp.issue("alice", now=clock.now, ttl_s=120)
    first = auth.authenticate(token)

    def must_not_be_called(parsed: object) -> Identity:
        raise AssertionError("verifier called on a cache hit")

    monkeypatch.setattr(oidc, "verify_parsed", must_not_be_called)
    assert auth.authenticate(token) is first
    clock.advance(59)
    assert auth.authenticate(token) is first
    # A different token (even for the same subject) is not a hit.
    with pytest.raises(AssertionError, match="cache hit"):
        auth.authenticate(idp.issue("alice", now=clock.now))


def test_cache_stops_serving_at_token_exp(idp: FakeIssuer, clock: FakeClock) -> None:
    oidc = _oidc(clock, idp)
    auth = Authenticator(oidc, cache=TokenCache(ttl_s=3600, clock=clock))
    token = idp.issue("alice", now=clock.now, ttl_s=100)
    exp = auth.authenticate(token).expires_at
    assert exp is not None
    clock.now = exp - 1
    assert auth.authenticate(token).subject == "alice"
    clock.now = exp  # the cache entry is gone; re-verification applies the 30 s leeway
    assert len(auth.cache) == 1 and auth.cache.get(TokenCache.key_for(token)) is None
    clock.now = exp + 31
    with pytest.raises(AuthenticationError, match="expired"):
        auth.authenticate(token)


def test_cache_entry_expires_after_ttl_and_reverifies(
    idp: FakeIssuer, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    oidc = _oidc(clock, idp)
    auth = Authenticator(oidc, cache=TokenCache(ttl_s=60, clock=clock))
    token = idp.issue("alice", now=clock.now, ttl_s=3600)
    calls: list[object] = []
    real = oidc.verify_parsed

    def counting(parsed: object) -> Identity:
        calls.append(parsed)
        return real(parsed)  # type: ignore[arg-type]

    monkeypatch.setattr(oidc, "verify_parsed", counting)
    auth.authenticate(token)
    clock.advance(59)
    auth.authenticate(token)
    assert len(calls) == 1
    clock.advance(2)  # past the cache TTL, long before the token's exp: verified again
    auth.authenticate(token)
    assert len(calls) == 2


def test_rejections_are_not_cached(idp: FakeIssuer, clock: FakeClock) -> None:
    auth = _auth(clock, _oidc(clock, idp), None)
    with pytest.raises(AuthenticationError):
        auth.authenticate(idp.issue("alice", now=clock.now, aud="other"))
    assert len(auth.cache) == 0


def test_forget_evicts_a_principal(minter: TokenMinter, clock: FakeClock) -> None:
    auth = _auth(clock, None, minter)
    token, _ = minter.mint_service_account("sa", "ns", "bot", 600)
    auth.authenticate(token)
    assert auth.forget("system:serviceaccount:ns:bot") == 1
    assert auth.forget("system:serviceaccount:ns:bot") == 0


def _identity(n: int, exp: float) -> Identity:
    return Identity(kind="user", principal_id=f"i#{n}", issuer="i", subject=str(n), expires_at=exp)


def test_cache_is_bounded_lru(clock: FakeClock) -> None:
    cache = TokenCache(max_entries=3, clock=clock)
    for n in range(3):
        cache.put(bytes([n]), _identity(n, clock.now + 100))
    assert cache.get(bytes([0])) is not None  # 0 is now most recently used
    cache.put(bytes([3]), _identity(3, clock.now + 100))
    assert len(cache) == 3
    assert cache.get(bytes([1])) is None  # least recently used was evicted
    assert [cache.get(bytes([n])) is not None for n in (0, 2, 3)] == [True, True, True]


def test_cache_does_not_store_already_expired_or_local(clock: FakeClock) -> None:
    cache = TokenCache(clock=clock)
    cache.put(b"old", _identity(1, clock.now - 1))
    cache.put(b"local", LOCAL_IDENTITY)
    assert len(cache) == 0


def test_concurrent_authentication_is_consistent(idp: FakeIssuer, minter: TokenMinter, clock: FakeClock) -> None:
    auth = Authenticator(_oidc(clock, idp), minter, cache=TokenCache(max_entries=8, clock=clock))
    tokens = [idp.issue(f"user-{n}", now=clock.now) for n in range(12)]
    tokens += [minter.mint_supervisor(f"sb-{n}", "ns", 600)[0] for n in range(12)]
    expected = [auth.authenticate(t).principal_id for t in tokens]
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(200):
                n = (i + offset) % len(tokens)
                assert auth.authenticate(tokens[n]).principal_id == expected[n]
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(auth.cache) <= 8
