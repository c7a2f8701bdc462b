"""``openshell-gateway`` as a real subprocess on a loopback port (for multi-gateway tests)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["gateway_process"]

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
_START_TIMEOUT_S = 60.0


def _gateway_command() -> list[str]:
    script = Path(sys.executable).with_name("openshell-gateway")
    return [str(script)] if script.exists() else [sys.executable, "-m", "openshell_server.main"]


@contextmanager
def gateway_process(data_dir: Path, database_url: str, **env: str) -> Iterator[int]:
    """Start a local-mode gateway process; yield its port once it prints "listening on"; stop it (SIGTERM)."""
    environ = {
        **os.environ,
        "OPENSHELL_DATA_DIR": str(data_dir),
        "OPENSHELL_DATABASE_URL": database_url,
        "OPENSHELL_LISTEN": "127.0.0.1:0",
        "OPENSHELL_POLICY_RELOAD_INTERVAL": "0",
        **env,
    }
    environ.pop("OPENSHELL_OIDC_ISSUERS", None)
    proc = subprocess.Popen(_gateway_command(), env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        port = None
        while port is None:
            try:
                line = lines.get(timeout=_START_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"gateway in {data_dir} printed no 'listening on' line") from None
            if line is None:
                proc.wait(timeout=5)
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"gateway in {data_dir} exited with {proc.returncode}: {err[-2000:]}")
            match = _LISTENING.search(line)
            port = int(match.group(1)) if match else None
        yield port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
