"""Subprocess body for multi-process store tests (run as a script, not imported by pytest).

python _worker.py create URL NAMESPACE_ID PREFIX N    # N concurrent creates; prints JSON outcome counts
python _worker.py durable URL NAMESPACE_ID            # creates forever, printing each name once committed
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from openshell_server.store import QuotaExceeded, open_store


def _create(url: str, namespace_id: str, prefix: str, n: int) -> None:
    store = open_store(url)
    barrier = threading.Barrier(n)

    def one(i: int) -> str:
        barrier.wait()
        try:
            store.create_sandbox(namespace_id, f"{prefix}-{i}", created_by="worker")
            return "created"
        except QuotaExceeded:
            return "refused"

    with ThreadPoolExecutor(max_workers=n) as pool:
        counts = Counter(pool.map(one, range(n)))
    print(json.dumps(counts), flush=True)
    store.close()


def _durable(url: str, namespace_id: str) -> None:
    store = open_store(url)
    i = 0
    while True:
        name = f"d-{i}"
        store.create_sandbox(namespace_id, name, created_by="worker")
        # Printed only after COMMIT returned: the parent may kill us at any point after this line.
        print(name, flush=True)
        i += 1


if __name__ == "__main__":
    mode, url, namespace_id, *rest = sys.argv[1:]
    if mode == "create":
        _create(url, namespace_id, rest[0], int(rest[1]))
    elif mode == "durable":
        _durable(url, namespace_id)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
