"""A sandbox's effective policy (SPEC §7b): the gateway default plus its providers' profiles.

The default's deny rules are a floor: no provider profile can allow an endpoint
the default denies. Credentials never appear here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EffectivePolicy", "effective_policy"]


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    allow_endpoints: tuple[str, ...] = ()
    deny_endpoints: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    providers: tuple[str, ...] = ()

    @property
    def network_allowed(self) -> bool:
        return bool(self.allow_endpoints)


def _host(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 else endpoint


def effective_policy(default: Mapping[str, Any], providers: Iterable[tuple[str, Mapping[str, Any]]]) -> EffectivePolicy:
    """``default``: ``{"allow_endpoints", "deny_endpoints", "env"}``; providers: ``(name, profile)``."""
    deny = sorted(set(default.get("deny_endpoints", [])))
    denied_hosts = {_host(d) for d in deny} | set(deny)
    allow = set(default.get("allow_endpoints", []))
    env = dict(default.get("env", {}))
    names = []
    for name, profile in sorted(providers, key=lambda p: p[0]):
        names.append(name)
        allow.update(profile.get("endpoints", []))
        env.update(profile.get("env", {}))
    allowed = sorted(e for e in allow if e not in denied_hosts and _host(e) not in denied_hosts)
    return EffectivePolicy(tuple(allowed), tuple(deny), env, tuple(names))
