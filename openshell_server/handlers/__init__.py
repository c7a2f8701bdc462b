"""Use cases behind the RPCs, one module per resource family.

Each function takes the authorized :class:`~openshell_server.interceptor.Call` and
the request message and returns the response message. Authorization already
happened in the interceptor; finer decisions (lists, per-provider credentials)
ask the same authorizer. Errors are raised, never turned into statuses here.
"""
