"""Authentication for the gateway: bearer token in, :class:`Identity` out.

Transport-independent (no gRPC here). :class:`Authenticator` chains gateway-minted tokens
(:class:`TokenMinter`, keys in :class:`SigningKeys`), OIDC issuers (:class:`OidcVerifier`)
and the local single-player identity, with a verified-token cache (:class:`TokenCache`).
Every failure is an :class:`AuthenticationError` whose ``reason`` is safe to show a client.
"""

from ._cache import TokenCache
from ._chain import Authenticator
from ._identity import (
    GLOBAL_ROLE_VALUES,
    LOCAL_IDENTITY,
    MINTED_ISSUER,
    UNIX_PRINCIPAL_PREFIX,
    X509_ISSUER,
    AuthenticationError,
    Identity,
    IdentityKind,
    x509_identity,
)
from ._jws import ASYMMETRIC_ALGORITHMS, MAX_TOKEN_BYTES
from ._minted import MINTED_ALGORITHM, SigningKeys, TokenMinter
from ._oidc import DEFAULT_ROLES_CLAIM, OidcIssuer, OidcVerifier, parse_oidc_issuers

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ROLES_CLAIM",
    "GLOBAL_ROLE_VALUES",
    "LOCAL_IDENTITY",
    "MAX_TOKEN_BYTES",
    "MINTED_ALGORITHM",
    "MINTED_ISSUER",
    "UNIX_PRINCIPAL_PREFIX",
    "X509_ISSUER",
    "AuthenticationError",
    "Authenticator",
    "Identity",
    "IdentityKind",
    "OidcIssuer",
    "OidcVerifier",
    "SigningKeys",
    "TokenCache",
    "TokenMinter",
    "parse_oidc_issuers",
    "x509_identity",
]
