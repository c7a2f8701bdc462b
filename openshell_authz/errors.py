"""Exceptions raised by openshell_authz.

``PermissionDenied`` and ``NotFound`` are the two ways ``Authorizer.authorize``
refuses (oso's pattern): ``NotFound`` when the caller may not even see the target,
so a denial never reveals whether something exists in a namespace it cannot read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openshell_authz.authorizer import Response

__all__ = ["AuthzError", "NotFound", "PermissionDenied", "PolicyLoadError", "PolicyTestFailure"]


class AuthzError(Exception):
    """Base class of every error this library raises."""


class PolicyLoadError(AuthzError):
    """A policy directory could not be loaded; nothing from it is used.

    ``file`` and ``line`` point at the offending policy (line is 1-based, 0 when unknown).
    """

    def __init__(self, message: str, *, file: str = "", line: int = 0) -> None:
        self.file = file
        self.line = line
        self.detail = message
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")


class PolicyTestFailure(AuthzError):
    """A policy set's own test cases do not pass (used to refuse a reload)."""


class _Refused(AuthzError):
    def __init__(self, response: Response, message: str = "") -> None:
        self.response = response
        why = ", ".join(response.reasons) or "no policy allows it"
        super().__init__(message or f"{response.decision.value}: {why}")


class PermissionDenied(_Refused):
    """The caller may see the target but the action is not allowed."""


class NotFound(_Refused):
    """The caller may not see the target (indistinguishable from it not existing)."""
