"""``openshell-gateway``: run the gateway until SIGINT/SIGTERM, then shut down gracefully."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Any

from pydantic import ValidationError

from openshell_authz import AuthzError
from openshell_server.server import build_server
from openshell_server.settings import Settings

__all__ = ["main"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    log = logging.getLogger("openshell.gateway")
    try:
        settings = Settings()
        running = build_server(settings)
    except ValidationError as exc:
        print(
            f"openshell-gateway: bad configuration: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", file=sys.stderr
        )
        return 2
    except AuthzError as exc:
        print(f"openshell-gateway: policies do not load: {exc}", file=sys.stderr)
        return 1
    running.start()
    if settings.metrics_listen:
        port = running.gateway.metrics.serve(settings.metrics_listen)
        log.info("metrics on %s (port %d)", settings.metrics_listen, port)
    where = []
    if settings.listen:
        where.append(f"{settings.listen.rpartition(':')[0]}:{running.port}")
    if running.unix_socket is not None:
        where.append(f"unix:{running.unix_socket}")
    log.info(
        "openshell-gateway listening on %s (gateway id %s, driver %s, %s mode, policies %s)",
        " and ".join(where), settings.gateway_id, settings.driver,
        "local single-player" if settings.local_mode else "OIDC", running.gateway.policies.current.policy_hash[:12],
    )  # fmt: skip
    print(f"openshell-gateway listening on {' and '.join(where)}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    log.info("shutting down")
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
