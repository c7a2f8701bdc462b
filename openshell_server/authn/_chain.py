"""The authenticator chain: bearer token (or none) in, :class:`Identity` out.

Transport-independent: the gateway's interceptor passes the raw bearer token string (or
``None`` when the call carried no token) and maps :class:`AuthenticationError` to
UNAUTHENTICATED. Order:

1. a token is checked against the verified-token cache;
2. a token whose ``iss`` is ``openshell-gateway`` is verified as gateway-minted only;
3. any other token is verified against the configured OIDC issuers;
4. no token at all is the local single-player identity when no OIDC issuer is configured,
   and rejected otherwise.

A presented token is never ignored: an invalid one is rejected even in local mode, and a
valid gateway-minted one makes the caller that service account or supervisor, not the
local admin.
"""

from __future__ import annotations

from ._cache import TokenCache
from ._identity import LOCAL_IDENTITY, MINTED_ISSUER, AuthenticationError, Identity
from ._jws import MAX_TOKEN_BYTES, parse_token
from ._minted import TokenMinter
from ._oidc import OidcVerifier

__all__ = ["Authenticator"]


class Authenticator:
    """Authenticate bearer tokens with gateway-minted keys, then OIDC issuers."""

    def __init__(
        self,
        oidc: OidcVerifier | None = None,
        minted: TokenMinter | None = None,
        *,
        cache: TokenCache | None = None,
    ) -> None:
        self.oidc = oidc if oidc is not None and oidc.issuers else None
        self.minted = minted
        self.cache = cache if cache is not None else TokenCache()

    @property
    def local_mode(self) -> bool:
        """True when no OIDC issuer is configured: token-less callers are the local admin."""
        return self.oidc is None

    def authenticate(self, token: str | None) -> Identity:
        """The caller's identity, or :class:`AuthenticationError` with a one-line reason."""
        if token is None:
            if self.oidc is None:
                return LOCAL_IDENTITY
            raise AuthenticationError("no bearer token presented")
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
            parse_token(token)  # raises the precise reason; nothing is hashed or cached
        key = TokenCache.key_for(token)
        identity = self.cache.get(key)
        if identity is not None:
            return identity
        parsed = parse_token(token)
        if parsed.issuer == MINTED_ISSUER:
            if self.minted is None:
                raise AuthenticationError("token issuer is not trusted")
            identity = self.minted.verify_parsed(parsed)
        elif self.oidc is not None:
            identity = self.oidc.verify_parsed(parsed)
        else:
            raise AuthenticationError("token issuer is not trusted")
        self.cache.put(key, identity)
        return identity

    def forget(self, principal_id: str) -> int:
        """Drop cached verifications for ``principal_id``; call when it is deleted."""
        return self.cache.evict_principal(principal_id)
