"""OpenShell gateway: gRPC API, authentication, store, compute drivers and audit.

Every authorization decision is delegated to :mod:`openshell_authz`.
"""
