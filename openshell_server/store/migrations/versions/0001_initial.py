"""Initial schema: namespaces, memberships, sandboxes, providers, service accounts, config, logs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from openshell_server.store._schema import JSONDoc, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _meta() -> list[sa.Column]:
    return [
        sa.Column("labels", JSONDoc, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("resource_version", sa.Integer, nullable=False),
    ]


def _namespace_fk(table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["namespace_id"], ["namespaces.id"], name=f"fk_{table}_namespace_id_namespaces", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "namespaces",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("max_sandboxes", sa.Integer, nullable=False),
        sa.Column("max_gpus", sa.Integer, nullable=False),
        sa.Column("max_sandbox_lifetime_seconds", sa.Integer, nullable=False),
        sa.Column("ceiling_max_sandboxes", sa.Integer, nullable=False),
        sa.Column("ceiling_max_gpus", sa.Integer, nullable=False),
        sa.Column("ceiling_max_sandbox_lifetime_seconds", sa.Integer, nullable=False),
        sa.Column("quota_mode", sa.String(8), nullable=False),
        sa.Column("deletion_timestamp", UTCDateTime, nullable=True),
        *_meta(),
        sa.PrimaryKeyConstraint("id", name="pk_namespaces"),
        sa.UniqueConstraint("name", name="uq_namespaces_name"),
    )
    op.create_table(
        "memberships",
        sa.Column("namespace_id", sa.String(36), nullable=False),
        sa.Column("principal_id", sa.Text, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        _namespace_fk("memberships", "CASCADE"),
        sa.PrimaryKeyConstraint("namespace_id", "principal_id", name="pk_memberships"),
    )
    op.create_index(
        "ix_memberships_principal_id_namespace_id_role", "memberships", ["principal_id", "namespace_id", "role"]
    )
    op.create_table(
        "sandboxes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("namespace_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("gpus", sa.Integer, nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("spec", JSONDoc, nullable=False),
        *_meta(),
        _namespace_fk("sandboxes", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_sandboxes"),
        sa.UniqueConstraint("namespace_id", "name", name="uq_sandboxes_namespace_id_name"),
    )
    op.create_index("ix_sandboxes_expires_at", "sandboxes", ["expires_at"])
    op.create_table(
        "providers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("namespace_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("type", sa.String(63), nullable=False),
        sa.Column("profile", JSONDoc, nullable=False),
        *_meta(),
        _namespace_fk("providers", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_providers"),
        sa.UniqueConstraint("namespace_id", "name", name="uq_providers_namespace_id_name"),
    )
    op.create_table(
        "provider_credentials",
        sa.Column("provider_id", sa.String(36), nullable=False),
        sa.Column("data", JSONDoc, nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name="fk_provider_credentials_provider_id_providers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("provider_id", name="pk_provider_credentials"),
    )
    op.create_table(
        "sandbox_providers",
        sa.Column("sandbox_id", sa.String(36), nullable=False),
        sa.Column("provider_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["sandbox_id"], ["sandboxes.id"], name="fk_sandbox_providers_sandbox_id_sandboxes", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name="fk_sandbox_providers_provider_id_providers",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("sandbox_id", "provider_id", name="pk_sandbox_providers"),
    )
    op.create_index("ix_sandbox_providers_provider_id", "sandbox_providers", ["provider_id"])
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("namespace_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        *_meta(),
        _namespace_fk("service_accounts", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_service_accounts"),
        sa.UniqueConstraint("namespace_id", "name", name="uq_service_accounts_namespace_id_name"),
    )
    op.create_table(
        "gateway_config",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("doc", JSONDoc, nullable=False),
        sa.Column("resource_version", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_config"),
    )
    op.create_table(
        "sandbox_logs",
        sa.Column("sandbox_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["sandbox_id"], ["sandboxes.id"], name="fk_sandbox_logs_sandbox_id_sandboxes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sandbox_id", "seq", name="pk_sandbox_logs"),
    )


def downgrade() -> None:
    for table in (
        "sandbox_logs",
        "gateway_config",
        "service_accounts",
        "sandbox_providers",
        "provider_credentials",
        "providers",
        "sandboxes",
        "memberships",
        "namespaces",
    ):
        op.drop_table(table)
