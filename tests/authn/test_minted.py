"""Gateway-minted tokens: signing keys on disk, rotation and retention, mint/verify, attacks."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import jwt
import pytest

from openshell_server.authn import AuthenticationError, SigningKeys, TokenMinter
from tests.authn.oidc_fixture import FakeClock, generate_key

GATEWAY = "gw-test"


@pytest.fixture
def keys(tmp_path: Path, clock: FakeClock) -> SigningKeys:
    return SigningKeys(tmp_path, retention_s=3600, clock=clock)


@pytest.fixture
def minter(keys: SigningKeys) -> TokenMinter:
    return TokenMinter(keys, GATEWAY, max_ttl_s=3600)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_created_on_first_start_with_private_permissions(tmp_path: Path, keys: SigningKeys) -> None:
    key_dir = tmp_path / "keys"
    assert _mode(key_dir) == 0o700
    pem = key_dir / f"{keys.active_kid}.pem"
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert _mode(pem) == 0o600
    assert _mode(key_dir / "keys.json") == 0o600


def test_restart_reuses_the_key_and_old_tokens_verify(tmp_path: Path, clock: FakeClock) -> None:
    first = SigningKeys(tmp_path, clock=clock)
    token, _ = TokenMinter(first, GATEWAY).mint_supervisor("sb-1", "default", 600)
    second = SigningKeys(tmp_path, clock=clock)
    assert second.active_kid == first.active_kid
    assert TokenMinter(second, GATEWAY).verify(token).sandbox_id == "sb-1"


def test_loose_permissions_refuse_to_start(tmp_path: Path, clock: FakeClock) -> None:
    keys = SigningKeys(tmp_path, clock=clock)
    os.chmod(tmp_path / "keys" / f"{keys.active_kid}.pem", 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        SigningKeys(tmp_path, clock=clock)
    os.chmod(tmp_path / "keys" / f"{keys.active_kid}.pem", 0o600)
    os.chmod(tmp_path / "keys", 0o755)
    with pytest.raises(PermissionError, match="chmod 700"):
        SigningKeys(tmp_path, clock=clock)


def test_tampered_key_file_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    keys = SigningKeys(tmp_path, clock=clock)
    other = SigningKeys(tmp_path / "other", clock=clock)
    (tmp_path / "keys" / f"{keys.active_kid}.pem").write_bytes(
        (tmp_path / "other" / "keys" / f"{other.active_kid}.pem").read_bytes()
    )
    with pytest.raises(ValueError, match="does not hold the key"):
        SigningKeys(tmp_path, clock=clock)


def test_service_account_token_round_trip(minter: TokenMinter, clock: FakeClock) -> None:
    token, expires_at = minter.mint_service_account("sa-123", "team-ml", "builder", 600)
    assert expires_at == int(clock.now) + 600
    identity = minter.verify(token)
    assert identity.kind == "service_account"
    assert identity.principal_id == "system:serviceaccount:team-ml:builder"
    assert identity.subject == identity.principal_id
    assert identity.issuer == "openshell-gateway"
    assert (identity.service_account_id, identity.namespace, identity.sa_name) == ("sa-123", "team-ml", "builder")
    assert identity.global_roles == frozenset()
    assert identity.expires_at == expires_at
    assert identity.token_id
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == GATEWAY and claims["oskind"] == "service_account"
    assert jwt.get_unverified_header(token)["kid"] == minter.keys.active_kid


def test_supervisor_token_identity_is_supervisor(minter: TokenMinter) -> None:
    token, _ = minter.mint_supervisor("sb-42", "team-ml", 600)
    identity = minter.verify(token)
    assert identity.kind == "supervisor"
    assert identity.principal_id == "sandbox:sb-42"
    assert identity.sandbox_id == "sb-42"
    assert identity.namespace == "team-ml"
    assert identity.service_account_id is None and identity.global_roles == frozenset()


def test_each_token_has_its_own_jti(minter: TokenMinter) -> None:
    a, _ = minter.mint_supervisor("sb", "ns", 60)
    b, _ = minter.mint_supervisor("sb", "ns", 60)
    assert minter.verify(a).token_id != minter.verify(b).token_id


@pytest.mark.parametrize("ttl", [3601, 10**9])
def test_ttl_above_maximum_is_a_value_error(minter: TokenMinter, ttl: int) -> None:
    with pytest.raises(ValueError, match="exceeds the maximum of 3600s") as caught:
        minter.mint_service_account("sa", "ns", "n", ttl)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("ttl", [0, -5, True, "60"])
def test_ttl_must_be_positive_number(minter: TokenMinter, ttl: object) -> None:
    with pytest.raises(ValueError, match="positive"):
        minter.mint_supervisor("sb", "ns", ttl)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ns", "name"), [("", "n"), ("ns", ""), ("a:b", "n"), ("ns", "x:y"), ("ns", "a\nb")])
def test_ambiguous_names_cannot_be_minted(minter: TokenMinter, ns: str, name: str) -> None:
    with pytest.raises(ValueError, match="without ':'"):
        minter.mint_service_account("sa", ns, name, 60)


def test_max_ttl_cannot_exceed_key_retention(keys: SigningKeys) -> None:
    with pytest.raises(ValueError, match="retention"):
        TokenMinter(keys, GATEWAY, max_ttl_s=7200)


def test_expired_and_not_yet_valid(minter: TokenMinter, clock: FakeClock) -> None:
    token, _ = minter.mint_supervisor("sb", "ns", 60)
    clock.advance(60 + 31)
    with pytest.raises(AuthenticationError, match="expired"):
        minter.verify(token)
    clock.advance(-60 - 31 - 120)
    with pytest.raises(AuthenticationError, match="not valid yet"):
        minter.verify(token)


def test_token_for_another_gateway_id_fails(keys: SigningKeys) -> None:
    other_gateway = TokenMinter(keys, "gw-other", max_ttl_s=3600)
    token, _ = other_gateway.mint_service_account("sa", "ns", "n", 60)
    with pytest.raises(AuthenticationError, match="audience"):
        TokenMinter(keys, GATEWAY, max_ttl_s=3600).verify(token)


def test_token_from_another_gateways_key_fails(tmp_path: Path, minter: TokenMinter, clock: FakeClock) -> None:
    stranger = TokenMinter(SigningKeys(tmp_path / "stranger", clock=clock), GATEWAY)
    token, _ = stranger.mint_supervisor("sb", "ns", 60)
    with pytest.raises(AuthenticationError, match="unknown or retired"):
        minter.verify(token)


def test_forged_with_same_kid_other_key_fails(minter: TokenMinter, clock: FakeClock) -> None:
    good, _ = minter.mint_service_account("sa", "ns", "n", 60)
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode(claims, generate_key("ES256"), algorithm="ES256", headers={"kid": minter.keys.active_kid})
    with pytest.raises(AuthenticationError, match="signature"):
        minter.verify(forged)


def test_subject_must_match_ids(minter: TokenMinter) -> None:
    # A validly signed token whose sub disagrees with its ids is refused (defence in depth
    # against a minting bug): sign it with the gateway's own key to get past the signature.
    good, _ = minter.mint_service_account("sa", "ns", "n", 60)
    claims = jwt.decode(good, options={"verify_signature": False})
    kid, private = minter.keys.signing_key()
    for change, reason in [
        ({"sub": "system:serviceaccount:other:n"}, "subject"),
        ({"oskind": "platform_admin"}, "kind"),
        ({"osname": None}, "'osname'"),
        ({"jti": None}, "'jti'"),
        ({"iat": claims["exp"] - 7200}, "lifetime"),
    ]:
        bad = {k: v for k, v in {**claims, **change}.items() if v is not None}
        token = jwt.encode(bad, private, algorithm="ES256", headers={"kid": kid})
        with pytest.raises(AuthenticationError, match=reason):
            minter.verify(token)


def test_rotation_keeps_old_tokens_until_retention(minter: TokenMinter, keys: SigningKeys, clock: FakeClock) -> None:
    old_token, _ = minter.mint_supervisor("sb-old", "ns", 3600)
    old_kid = keys.active_kid
    new_kid = keys.rotate()
    assert new_kid != old_kid and keys.active_kid == new_kid
    new_token, _ = minter.mint_supervisor("sb-new", "ns", 3600)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert minter.verify(old_token).sandbox_id == "sb-old"  # within retention
    clock.advance(3000)
    assert minter.verify(old_token).sandbox_id == "sb-old"
    # Past retention the old kid no longer verifies, even for an otherwise unexpired token.
    minter.leeway_s = 10**6  # isolate the key check from the expiry check
    clock.advance(601)
    with pytest.raises(AuthenticationError, match="unknown or retired"):
        minter.verify(old_token)
    assert minter.verify(new_token).sandbox_id == "sb-new"


def test_rotation_purges_expired_key_files(tmp_path: Path, keys: SigningKeys, clock: FakeClock) -> None:
    first = keys.active_kid
    keys.rotate()
    clock.advance(3601)
    keys.rotate()
    assert not (tmp_path / "keys" / f"{first}.pem").exists()
    manifest = json.loads((tmp_path / "keys" / "keys.json").read_text())
    assert first not in [k["kid"] for k in manifest["keys"]]
    assert len(keys.jwks()["keys"]) == 2


def test_rotation_in_another_process_is_seen(tmp_path: Path, clock: FakeClock) -> None:
    # Two gateway processes sharing one data directory: B rotates, A verifies B's new tokens.
    a = SigningKeys(tmp_path, clock=clock, reload_interval_s=10)
    b = SigningKeys(tmp_path, clock=clock)
    b.rotate()
    token, _ = TokenMinter(b, GATEWAY).mint_supervisor("sb", "ns", 60)
    clock.advance(11)
    assert TokenMinter(a, GATEWAY).verify(token).sandbox_id == "sb"
    assert a.active_kid == b.active_kid


def test_published_jwks_verifies_minted_tokens_with_pyjwt(minter: TokenMinter, clock: FakeClock) -> None:
    # Interop: the JWKS the gateway can publish is standard; PyJWT verifies our token with it.
    token, _ = minter.mint_service_account("sa", "ns", "bot", 600)
    (jwk,) = minter.keys.jwks()["keys"]
    assert jwk["kid"] == minter.keys.active_kid
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience=GATEWAY, options={"verify_exp": False}
    )
    assert claims["sub"] == "system:serviceaccount:ns:bot"
