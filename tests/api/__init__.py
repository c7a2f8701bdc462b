"""Tests of the gRPC API definition."""
