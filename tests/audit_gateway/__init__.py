"""Audit trail of the gateway tested through the real gRPC server (SPEC §9)."""
