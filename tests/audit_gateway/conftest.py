"""Gateway fixtures for the audit tests, and one recorded world shared by the read-side tests."""

from tests.audit_gateway._world import World, world
from tests.gateway.conftest import backend_url, gw

__all__ = ["World", "backend_url", "gw", "world"]
