"""Per-namespace quotas tested through the real gRPC server (SPEC §6)."""
