"""Fuzz ``openshell_server.authn._jws.parse_token``: any text is parsed or refused with AuthenticationError.

Run: ``python fuzz/token_parser.py -runs=100000`` (libFuzzer flags apply).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from openshell_server.authn import AuthenticationError
    from openshell_server.authn._jws import parse_token

from fuzz._harness import run

__all__ = ["one_input"]

_SEEDS = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2ln",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        token = fdp.ConsumeUnicodeNoSurrogates(4096)
    elif mode == 1:  # three base64url-ish segments: gets past the split into the JSON decoding
        parts = [fdp.ConsumeUnicodeNoSurrogates(200) for _ in range(3)]
        token = ".".join(parts)
    else:  # a seed with bytes flipped
        seed = _SEEDS[fdp.ConsumeIntInRange(0, len(_SEEDS) - 1)]
        pos = fdp.ConsumeIntInRange(0, len(seed) - 1)
        token = seed[:pos] + fdp.ConsumeUnicodeNoSurrogates(8) + seed[pos + 1 :]
    try:
        parse_token(token)
    except AuthenticationError as exc:
        assert "\n" not in str(exc), "rejection messages are one line"


if __name__ == "__main__":
    run(one_input)
