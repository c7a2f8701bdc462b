"""The ``openshell`` command-line client of the OpenShell gateway (entry point :func:`main`)."""

from openshell_server.cli.main import main

__all__ = ["main"]
