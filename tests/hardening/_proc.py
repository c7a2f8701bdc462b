"""``openshell-gateway`` as a real subprocess on a loopback port: start, call, sample RSS, SIGKILL.

Used by the fault and soak suites, which need a process they can kill or measure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from tests.gateway.harness import Stub

__all__ = ["GatewayProcess"]

_BIN = Path(sys.executable).with_name("openshell-gateway")


class GatewayProcess:
    """One gateway process over ``data_dir``; ``env`` adds OPENSHELL_* settings (local mode by default)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "OPENSHELL_LISTEN": "127.0.0.1:0", "OPENSHELL_DATA_DIR": str(data_dir),
                    "OPENSHELL_POLICY_RELOAD_INTERVAL": "0", **(env or {})}  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.channel: grpc.Channel | None = None
        self._log = data_dir.parent / f"{data_dir.name}-gateway.log"

    def start(self, timeout: float = 30) -> GatewayProcess:
        cmd = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "openshell_server.main"]
        log = self._log.open("a")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=log, text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"gateway exited ({self.proc.wait()}): {self._log.read_text()[-2000:]}")
            if "listening on" in line:
                self.port = int(line.rsplit(":", 1)[1])
                self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
                grpc.channel_ready_future(self.channel).result(timeout=10)
                return self
        raise RuntimeError("gateway did not start in time")

    def client(self, token: str | None = None) -> Stub:
        assert self.channel is not None
        return Stub(self.channel, token)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close()

    def _close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
