"""Typed request contexts, one per family of Cedar actions that declares a context.

The schema types each action's context; a request whose context does not match is
an evaluation error and so a denial. These models make the right shape easy to build.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from openshell_authz.models import NamespaceRole, Provider, Quota

__all__ = ["AttachContext", "Context", "ListContext", "MemberContext", "UpdateNamespaceContext"]


class _Context(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def cedar(self) -> dict[str, Any]:
        """The context record as Cedar JSON."""
        raise NotImplementedError

    def entities(self) -> tuple[Any, ...]:
        """Domain objects the context refers to, which must be present as entities."""
        return ()


class ListContext(_Context):
    all_namespaces: bool = False

    def cedar(self) -> dict[str, Any]:
        return {"all_namespaces": self.all_namespaces}


class MemberContext(_Context):
    role: NamespaceRole
    previous_role: NamespaceRole | Literal[""] = ""
    member_kind: Literal["user", "service_account"] = "user"

    def cedar(self) -> dict[str, Any]:
        return {"role": str(self.role), "previous_role": str(self.previous_role), "member_kind": self.member_kind}


class UpdateNamespaceContext(_Context):
    changes_ceiling: bool = False
    changes_labels: bool = False
    limits: Quota = Field(default_factory=Quota)

    def cedar(self) -> dict[str, Any]:
        return {
            "changes_ceiling": self.changes_ceiling,
            "changes_labels": self.changes_labels,
            "limits": {
                "max_sandboxes": self.limits.max_sandboxes,
                "max_gpus": self.limits.max_gpus,
                "max_sandbox_lifetime_seconds": self.limits.max_sandbox_lifetime_seconds,
            },
        }


class AttachContext(_Context):
    provider: Provider

    def cedar(self) -> dict[str, Any]:
        return {"provider": {"__entity": {"type": "Provider", "id": self.provider.id}}}

    def entities(self) -> tuple[Any, ...]:
        return (self.provider,)


Context = ListContext | MemberContext | UpdateNamespaceContext | AttachContext
