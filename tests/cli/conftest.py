"""Fixtures of the CLI tests: a scripted fake gateway on loopback, with a clean OPENSHELL_* environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_gateway import FakeGateway, serve


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGateway]:
    """A running fake gateway; OPENSHELL_* env points at it and carries no token or namespace."""
    fake = FakeGateway()
    server = serve(fake)
    for name in (
        "OPENSHELL_TOKEN",
        "OPENSHELL_NAMESPACE",
        "OPENSHELL_CA_FILE",
        "OPENSHELL_CLIENT_CERT",
        "OPENSHELL_CLIENT_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENSHELL_GATEWAY", fake.address)
    yield fake
    server.stop(grace=None)
