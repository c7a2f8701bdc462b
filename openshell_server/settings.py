"""Gateway configuration, read from ``OPENSHELL_*`` environment variables (pydantic-settings).

Defaults give the embedded single-player gateway: SQLite in the data directory,
the local driver, the bundled policies, loopback only, no OIDC.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BUNDLED_POLICY_DIR", "OidcIssuerSettings", "Settings"]

def _bundled_policy_dir() -> Path:
    """The policy set shipped with the gateway: the checkout's ``policies/`` in a source tree,
    else the copy the build put inside the package."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "policies"
    return checkout if (checkout / "schema.cedarschema").is_file() else here / "bundled_policies"


BUNDLED_POLICY_DIR = _bundled_policy_dir()


class OidcIssuerSettings(BaseModel):
    issuer: str
    audience: str
    jwks_url: str


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPENSHELL_", extra="ignore")

    listen: str = Field(
        default="127.0.0.1:50051",
        description="host:port of the gRPC listener (port 0 = any); empty = none (only with OPENSHELL_UNIX_SOCKET)",
    )
    data_dir: Path = Field(default=Path(".openshell"))
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite file in the data dir")
    gateway_id: str = Field(default="local")
    policy_dir: Path = Field(default=BUNDLED_POLICY_DIR)
    policy_reload_interval: float = Field(default=1.0, description="seconds between policy dir checks; 0 = off")
    oidc_issuers: list[OidcIssuerSettings] = Field(default_factory=list)
    oidc_roles_claim: str = "openshell_roles"
    driver: str = "local"
    k8s_namespace_mode: str = "managed"
    audit_log: str = Field(default="", description="audit JSONL path; empty = <data>/audit/audit.jsonl; '-' = stdout")
    audit_max_bytes: int = 64 * 1024 * 1024
    metrics_listen: str = ""
    sa_token_max_ttl_seconds: int = 7 * 24 * 3600
    sa_token_default_ttl_seconds: int = 3600
    supervisor_token_ttl_seconds: int = 24 * 3600
    max_members: int = 1000
    exec_default_timeout_seconds: int = 60
    exec_max_timeout_seconds: int = 3600
    reaper_interval_seconds: float = 5.0
    allow_insecure_local: bool = Field(
        default=False, description="let a gateway with no OIDC listen on a non-loopback address (logged loudly)"
    )
    tls_cert: Path | None = Field(default=None, description="PEM certificate chain of the TCP listener (reloaded)")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert (reloaded)")
    tls_client_ca: Path | None = Field(default=None, description="PEM CA bundle: require client certificates")
    unix_socket: str = Field(
        default="", description="workstation mode: gateway socket path; the identity broker is <path>.auth"
    )
    workstation_token_ttl_seconds: int = Field(
        default=900, gt=0, description="lifetime of the tokens the workstation identity broker mints"
    )

    @field_validator("gateway_id")
    @classmethod
    def _gateway_id_is_label(cls, value: str) -> str:
        from openshell_authz import is_dns1123_label

        if not is_dns1123_label(value, 40):
            raise ValueError("OPENSHELL_GATEWAY_ID must be a DNS-1123 label of at most 40 characters")
        return value

    @property
    def local_mode(self) -> bool:
        return not self.oidc_issuers

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'openshell.db').resolve()}"
