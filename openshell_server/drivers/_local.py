"""The local compute driver: sandboxes are directories, commands run under bubblewrap.

Each sandbox's workspace is ``<data_dir>/sandboxes/<namespace>/<name>``. An exec
runs in fresh pid/ipc/uts (and, unless the sandbox's policy allows network, net)
namespaces, with every host top-level directory bound read-only, the whole
gateway data directory hidden under an empty tmpfs, and only the sandbox's own
workspace bound writable at ``/workspace``.

Driver state (phase, labels, log lines) lives in
``<data_dir>/sandboxes/.state/``, outside every workspace, so a sandbox user can
neither read nor forge it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openshell_server.drivers._contract import (
    DriverError,
    DriverEvent,
    DriverSandbox,
    DriverUnavailable,
    ExecChunk,
    ExecResult,
    SandboxNotFound,
    SandboxPhase,
    SandboxSpec,
    validate_dns_label,
)

__all__ = ["BWRAP_MISSING", "LocalDriver"]

BWRAP_MISSING = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"

# Sandbox ids become file names; this shape excludes '/', '.' and '..'.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Host top-level entries replaced by fresh, sandbox-private mounts (or left out):
# /run and /tmp may hold sockets of host services (and the gateway's own Unix socket).
_NOT_FROM_HOST = frozenset({"proc", "dev", "tmp", "run", "sys", "workspace"})
_SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TIMEOUT_EXIT = 128 + signal.SIGKILL
_LOG_LIMIT = 1000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LocalDriver:
    """Sandboxes as directories under ``data_dir``, exec through bubblewrap."""

    name = "local"

    def __init__(self, data_dir: Path | str, *, bwrap: str = "bwrap") -> None:
        self._data_dir = Path(data_dir).resolve()
        self._root = self._data_dir / "sandboxes"
        self._state_dir = self._root / ".state"
        self._bwrap_name = bwrap
        self._lock = threading.Lock()
        self._watchers: list[queue.Queue[DriverEvent]] = []
        self._running: dict[str, set[subprocess.Popen[bytes]]] = {}

    # -- readiness -------------------------------------------------------------

    def _bwrap(self) -> str:
        found = shutil.which(self._bwrap_name)
        if found is None:
            raise DriverUnavailable(BWRAP_MISSING)
        return found

    def check_ready(self) -> None:
        """Raise DriverUnavailable unless bubblewrap exists and can build a sandbox here."""
        bwrap = self._bwrap()
        probe = subprocess.run(
            [bwrap, *self._isolation_args(network_allowed=False), "--", "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if probe.returncode != 0:
            detail = probe.stderr.decode(errors="replace").strip().splitlines()
            raise DriverUnavailable(
                "bubblewrap cannot create a sandbox on this host "
                f"({detail[-1] if detail else f'exit {probe.returncode}'}); "
                "user namespaces or mounts may be restricted"
            )

    # -- state -----------------------------------------------------------------

    def _workspace(self, namespace: str, name: str) -> Path:
        validate_dns_label("namespace", namespace)
        validate_dns_label("sandbox name", name)
        return self._root / namespace / name

    def _state_path(self, sandbox_id: str) -> Path:
        if not _SAFE_ID.match(sandbox_id):
            raise ValueError(f"invalid sandbox id {sandbox_id!r}: use letters, digits, '_', '.', '-'")
        return self._state_dir / f"{sandbox_id}.json"

    def _load(self, sandbox_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._state_path(sandbox_id).read_text())
        except FileNotFoundError:
            return None

    def _store(self, state: dict[str, Any]) -> None:
        path = self._state_path(state["id"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    @staticmethod
    def _to_sandbox(state: Mapping[str, Any]) -> DriverSandbox:
        return DriverSandbox(
            id=state["id"],
            name=state["name"],
            namespace=state["namespace"],
            phase=SandboxPhase(state["phase"]),
            message=state.get("message", ""),
            labels=dict(state.get("labels", {})),
        )

    def _log(self, sandbox_id: str, line: str) -> None:
        with self._lock:
            state = self._load(sandbox_id)
            if state is None:
                return
            state["log"] = [*state.get("log", []), f"{_now()} {line}"][-_LOG_LIMIT:]
            self._store(state)

    def _emit(self, event: DriverEvent) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for q in watchers:
            q.put(event)

    # -- lifecycle -------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> DriverSandbox:
        """Create the workspace directory; the sandbox is Ready as soon as it exists."""
        self._bwrap()
        workspace = self._workspace(spec.namespace, spec.name)
        self._state_path(spec.id)
        with self._lock:
            existing = self._load(spec.id)
            if existing is not None:
                return self._to_sandbox(existing)
            self._state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self._root, 0o700)
            workspace.parent.mkdir(exist_ok=True, mode=0o700)
            try:
                workspace.mkdir(mode=0o700)
            except FileExistsError:
                raise DriverError(
                    f"workspace {spec.namespace}/{spec.name} already exists for another sandbox"
                ) from None
            state = {
                "id": spec.id,
                "name": spec.name,
                "namespace": spec.namespace,
                "phase": SandboxPhase.READY.value,
                "message": "",
                "labels": dict(spec.labels),
                "log": [f"{_now()} created workspace /workspace"],
            }
            self._store(state)
        self._emit(DriverEvent(spec.id, spec.namespace, SandboxPhase.READY))
        return self._to_sandbox(state)

    def delete(self, spec: SandboxSpec) -> None:
        """Kill the sandbox's running commands, then remove its workspace and state."""
        workspace = self._workspace(spec.namespace, spec.name)
        with self._lock:
            state = self._load(spec.id)
            if state is not None:
                state["phase"] = SandboxPhase.DELETING.value
                self._store(state)
            running = list(self._running.pop(spec.id, set()))
        if state is None:
            return
        self._emit(DriverEvent(spec.id, spec.namespace, SandboxPhase.DELETING))
        for proc in running:
            _kill_tree(proc)
        # rmtree does not follow symlinks a sandbox user may have planted.
        shutil.rmtree(workspace, ignore_errors=True)
        with self._lock:
            self._state_path(spec.id).unlink(missing_ok=True)
        self._emit(DriverEvent(spec.id, spec.namespace, SandboxPhase.DELETING, deleted=True))

    def get(self, sandbox_id: str) -> DriverSandbox | None:
        state = self._load(sandbox_id)
        return None if state is None else self._to_sandbox(state)

    def list(self) -> list[DriverSandbox]:
        if not self._state_dir.is_dir():
            return []
        found = []
        for path in sorted(self._state_dir.glob("*.json")):
            with contextlib.suppress(FileNotFoundError, ValueError):
                found.append(self._to_sandbox(json.loads(path.read_text())))
        return found

    def logs(self, spec: SandboxSpec, tail: int | None = None) -> list[str]:
        state = self._load(spec.id)
        if state is None:
            raise SandboxNotFound(f"sandbox {spec.namespace}/{spec.name} does not exist")
        lines: list[str] = state.get("log", [])
        return lines[-tail:] if tail else list(lines)

    def watch(self, stop: threading.Event) -> Iterator[DriverEvent]:
        q: queue.Queue[DriverEvent] = queue.Queue()
        with self._lock:
            self._watchers.append(q)
        try:
            while not stop.is_set():
                try:
                    yield q.get(timeout=0.2)
                except queue.Empty:
                    continue
        finally:
            with self._lock:
                self._watchers.remove(q)

    def delete_namespace(self, namespace: str) -> None:
        """Remove the namespace's (empty) directory; a non-empty one is left alone."""
        validate_dns_label("namespace", namespace)
        with contextlib.suppress(FileNotFoundError, OSError):
            (self._root / namespace).rmdir()

    # -- exec ------------------------------------------------------------------

    def _isolation_args(self, *, network_allowed: bool) -> list[str]:
        """bubblewrap flags shared by every exec: host read-only, data directory hidden."""
        args: list[str] = []
        for entry in sorted(os.listdir("/")):
            if entry in _NOT_FROM_HOST:
                continue
            path = f"/{entry}"
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            else:
                args += ["--ro-bind", path, path]
        args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run"]
        # After the host binds: an empty tmpfs over the data directory hides the store, keys,
        # audit log and every other sandbox.
        # Read-only too, so nothing written there can be mistaken for having reached the host.
        args += ["--tmpfs", str(self._data_dir), "--remount-ro", str(self._data_dir)]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if not network_allowed:
            args.append("--unshare-net")
        # A root gateway would otherwise hand the sandbox every capability (enough to unmount
        # the tmpfs above); for an unprivileged gateway this is a no-op.
        args += ["--cap-drop", "ALL", "--die-with-parent", "--new-session"]
        return args

    def _command(self, spec: SandboxSpec, workspace: Path, argv: list[str]) -> list[str]:
        return [
            self._bwrap(),
            *self._isolation_args(network_allowed=spec.network_allowed),
            "--bind",
            str(workspace),
            "/workspace",
            "--remount-ro",
            "/",
            "--hostname",
            spec.name,
            "--chdir",
            "/workspace",
            "--",
            *argv,
        ]

    def exec(
        self,
        spec: SandboxSpec,
        argv: list[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        stdin: bytes | None = None,
    ) -> Iterator[ExecChunk | ExecResult]:
        """Run ``argv`` isolated; kill the whole process tree at ``timeout_s``."""
        if not argv:
            raise ValueError("exec needs a command")
        if timeout_s <= 0:
            raise ValueError(f"exec timeout must be positive, got {timeout_s}")
        command_env = _sandbox_env(spec.env, env)
        workspace = self._workspace(spec.namespace, spec.name)
        state = self._load(spec.id)
        if state is None or not workspace.is_dir():
            raise SandboxNotFound(f"sandbox {spec.namespace}/{spec.name} does not exist")
        if state["phase"] != SandboxPhase.READY.value:
            raise DriverError(f"sandbox {spec.namespace}/{spec.name} is {state['phase']}, not Ready")
        command = self._command(spec, workspace, argv)
        return self._run(spec, command, command_env, timeout_s, stdin)

    def _run(
        self,
        spec: SandboxSpec,
        command: list[str],
        env: dict[str, str],
        timeout_s: float,
        stdin: bytes | None,
    ) -> Iterator[ExecChunk | ExecResult]:
        # The environment goes through bwrap's own environment (inherited by the command), not
        # --setenv: arguments are world-readable in the host's /proc, environments are not.
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        with self._lock:
            self._running.setdefault(spec.id, set()).add(proc)
        self._log(spec.id, f"exec started: {command[command.index('--') + 1]}")
        timed_out = False
        try:
            if stdin is not None:
                threading.Thread(target=_feed, args=(proc, stdin), daemon=True).start()
            deadline = time.monotonic() + timeout_s
            with selectors.DefaultSelector() as sel:
                assert proc.stdout is not None and proc.stderr is not None
                sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
                sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
                while sel.get_map():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 and not timed_out:
                        timed_out = True
                        _kill_tree(proc)
                        # Whatever is still buffered may be read for a moment longer.
                        deadline = time.monotonic() + 2
                        continue
                    if remaining <= 0:
                        break
                    for key, _ in sel.select(timeout=remaining):
                        data = os.read(key.fd, 65536)
                        if not data:
                            sel.unregister(key.fileobj)
                        else:
                            yield ExecChunk(key.data, data)
            if timed_out:
                _kill_tree(proc)
            code = proc.wait()
            exit_code = _TIMEOUT_EXIT if timed_out else (128 - code if code < 0 else code)
            self._log(spec.id, f"exec finished: exit {exit_code}{' (timed out)' if timed_out else ''}")
            yield ExecResult(exit_code=exit_code, timed_out=timed_out)
        finally:
            if proc.poll() is None:
                _kill_tree(proc)
            for pipe in (proc.stdout, proc.stderr, proc.stdin):
                if pipe is not None:
                    pipe.close()
            with self._lock:
                self._running.get(spec.id, set()).discard(proc)


def _sandbox_env(provider_env: Mapping[str, str], extra_env: Mapping[str, str]) -> dict[str, str]:
    env = {"PATH": _SANDBOX_PATH, "HOME": "/workspace"}
    for key, value in [*provider_env.items(), *extra_env.items()]:
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"invalid environment variable name or value for {key!r}")
        env[key] = value
    return env


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        proc.stdin.write(data)
        proc.stdin.close()


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL bubblewrap's process group and reap it.

    The sandboxed command runs in its own session inside a pid namespace whose init is
    bubblewrap's child (``--die-with-parent``): killing bubblewrap kills that init, and
    the kernel then kills everything left in the namespace.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
