"""Tests of the gateway's transport: TLS and mTLS, listener exposure, workstation mode."""
