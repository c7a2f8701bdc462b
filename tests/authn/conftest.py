"""Shared fixtures for the authentication tests: a fake clock and a fake OIDC issuer."""

from __future__ import annotations

import pytest

from tests.authn.oidc_fixture import FakeClock, fake_issuer

__all__ = ["clock", "fake_issuer"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
