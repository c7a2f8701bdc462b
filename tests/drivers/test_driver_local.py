"""The local driver against real bubblewrap processes: workspace, isolation, env, timeouts."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openshell_server.drivers import (
    BWRAP_MISSING,
    DriverEvent,
    DriverUnavailable,
    ExecChunk,
    ExecResult,
    LocalDriver,
    SandboxNotFound,
    SandboxPhase,
    SandboxSpec,
)

needs_bwrap = [
    pytest.mark.bwrap,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason=BWRAP_MISSING),
]


def _spec(name: str, namespace: str = "default", **kw: object) -> SandboxSpec:
    return SandboxSpec(id=f"id-{namespace}-{name}", name=name, namespace=namespace, namespace_id=namespace, **kw)


def _run(
    driver: LocalDriver,
    spec: SandboxSpec,
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 20,
    stdin: bytes | None = None,
) -> tuple[str, str, ExecResult]:
    out, err = b"", b""
    result = None
    for item in driver.exec(spec, argv, env=env or {}, timeout_s=timeout_s, stdin=stdin):
        if isinstance(item, ExecChunk):
            if item.stream == "stdout":
                out += item.data
            else:
                err += item.data
        else:
            result = item
    assert isinstance(result, ExecResult)
    return out.decode(), err.decode(), result


def _sh(driver: LocalDriver, spec: SandboxSpec, script: str, **kw: object) -> tuple[str, str, ExecResult]:
    return _run(driver, spec, ["sh", "-c", script], **kw)  # type: ignore[arg-type]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    # Stand-ins for what the gateway keeps next to the sandboxes.
    (d / "store.db").write_text("store-secret")
    (d / "keys").mkdir()
    (d / "keys" / "signing.pem").write_text("key-secret")
    return d


@pytest.fixture
def driver(data_dir: Path) -> LocalDriver:
    return LocalDriver(data_dir)


def _host_sleeps(seconds: str) -> list[int]:
    """Pids of host processes that are exactly ``sleep <seconds>`` (from any pid namespace)."""
    wanted = f"sleep\0{seconds}\0".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline == wanted:
                pids.append(int(entry))
    return pids


def _wait_until(predicate: object, what: str, limit_s: float = 15) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


# -- without bubblewrap -----------------------------------------------------------------


def test_missing_bwrap_refuses_with_install_hint(data_dir: Path) -> None:
    driver = LocalDriver(data_dir, bwrap="bwrap-not-installed-here")
    with pytest.raises(DriverUnavailable) as ready:
        driver.check_ready()
    assert str(ready.value) == "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    with pytest.raises(DriverUnavailable, match="apt-get install bubblewrap"):
        driver.create(_spec("demo"))
    assert not (data_dir / "sandboxes" / "default" / "demo").exists()


@pytest.mark.parametrize(
    ("name", "namespace"), [("../escape", "default"), ("demo", "../.."), ("Demo", "default"), ("", "default")]
)
def test_names_that_are_not_dns_labels_are_rejected(driver: LocalDriver, name: str, namespace: str) -> None:
    with pytest.raises(ValueError, match="DNS-1123"):
        driver.create(_spec(name, namespace))


def test_unsafe_sandbox_id_is_rejected(driver: LocalDriver) -> None:
    with pytest.raises(ValueError, match="invalid sandbox id"):
        driver.get("../../store")


# -- with bubblewrap ----------------------------------------------------------------------


class TestWithBubblewrap:
    pytestmark = needs_bwrap

    def test_check_ready_passes_here(self, driver: LocalDriver) -> None:
        driver.check_ready()

    def test_workspace_roundtrip(self, driver: LocalDriver, data_dir: Path) -> None:
        spec = _spec("demo")
        created = driver.create(spec)
        assert created.phase is SandboxPhase.READY
        out, err, result = _sh(driver, spec, "echo hi > /workspace/f && cat /workspace/f")
        assert (out, result) == ("hi\n", ExecResult(0, False)), err
        assert (data_dir / "sandboxes" / "default" / "demo" / "f").read_text() == "hi\n"

    def test_exit_code_stdin_and_stderr(self, driver: LocalDriver) -> None:
        spec = _spec("demo")
        driver.create(spec)
        out, err, result = _sh(driver, spec, "cat; echo oops >&2; exit 3", stdin=b"from-stdin")
        assert (out, err, result.exit_code, result.timed_out) == ("from-stdin", "oops\n", 3, False)

    def test_cannot_touch_other_sandboxes_or_the_data_dir(self, driver: LocalDriver, data_dir: Path) -> None:
        me, neighbour, stranger = _spec("me"), _spec("neighbour"), _spec("stranger", "team-b")
        for spec in (me, neighbour, stranger):
            driver.create(spec)
        ws = data_dir / "sandboxes"
        (ws / "default" / "neighbour" / "secret").write_text("neighbour-secret")
        (ws / "team-b" / "stranger" / "secret").write_text("stranger-secret")
        targets = [
            ws / "default" / "neighbour" / "secret",
            ws / "team-b" / "stranger" / "secret",
            data_dir / "store.db",
            data_dir / "keys" / "signing.pem",
            ws / ".state" / f"{neighbour.id}.json",
        ]
        for target in targets:
            out, _, result = _sh(driver, me, f"cat {target}")
            assert result.exit_code != 0 and "secret" not in out and "neighbour" not in out, target
            _, _, result = _sh(driver, me, f"echo pwned > {target}")
            assert result.exit_code != 0, target
        for directory in (ws / "default" / "neighbour", ws / "team-b" / "stranger"):
            _, _, result = _sh(driver, me, f"echo pwned > {directory}/planted")
            assert result.exit_code != 0
            assert not (directory / "planted").exists()
        # The data directory is an empty mount inside the sandbox, not merely unreadable.
        out, _, result = _sh(driver, me, f"ls -A {data_dir}; ls -A /workspace")
        assert (out, result.exit_code) == ("", 0)
        assert (ws / "default" / "neighbour" / "secret").read_text() == "neighbour-secret"
        assert (ws / "team-b" / "stranger" / "secret").read_text() == "stranger-secret"
        assert (data_dir / "store.db").read_text() == "store-secret"

    def test_cannot_unmount_the_mask_over_the_data_dir(self, driver: LocalDriver, data_dir: Path) -> None:
        spec = _spec("demo")
        driver.create(spec)
        out, _, result = _sh(driver, spec, f"umount {data_dir}; umount -l {data_dir}; cat {data_dir}/store.db")
        assert result.exit_code != 0 and "store-secret" not in out
        _, _, result = _sh(driver, spec, "grep -i '^CapEff' /proc/self/status | grep -q 0000000000000000")
        assert result.exit_code == 0

    def test_host_root_is_read_only(self, driver: LocalDriver) -> None:
        spec = _spec("demo")
        driver.create(spec)
        _, err, result = _sh(driver, spec, "touch /etc/openshell-planted || touch /openshell-planted")
        assert result.exit_code != 0 and "Read-only file system" in err
        assert not Path("/etc/openshell-planted").exists() and not Path("/openshell-planted").exists()

    def test_cannot_see_other_processes(self, driver: LocalDriver) -> None:
        me, other = _spec("me"), _spec("other")
        driver.create(me)
        driver.create(other)
        marker = "73.421"
        # A host process and a process in another sandbox are both running meanwhile.
        host = __import__("subprocess").Popen(["sleep", marker])
        other_run = driver.exec(other, ["sh", "-c", f"echo up; sleep {marker}"], env={}, timeout_s=30)
        try:
            assert next(other_run) == ExecChunk("stdout", b"up\n")
            _wait_until(lambda: len(_host_sleeps(marker)) >= 2, "the marker processes to start")
            script = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done; ls -d /proc/[0-9]*"
            out, _, result = _sh(driver, me, script)
            assert result.exit_code == 0
            assert marker not in out
            pids = {int(line.rsplit("/", 1)[1]) for line in out.splitlines() if line.startswith("/proc/")}
            # bubblewrap's init (1), the shell and its short-lived children: all low, all its own.
            assert 1 in pids and max(pids) < 20, pids
        finally:
            host.kill()
            host.wait()
            other_run.close()

    def test_no_network_unless_allowed(self, driver: LocalDriver) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"
        try:
            closed, opened = _spec("closed"), _spec("opened", network_allowed=True)
            driver.create(closed)
            driver.create(opened)
            # The interpreter itself, not a virtualenv shim: /tmp (where a venv may live) is
            # a fresh tmpfs inside the sandbox; only the standard library is needed here.
            python = os.path.realpath(sys.executable)
            out, _, result = _run(driver, closed, [python, "-c", probe])
            assert result.exit_code != 0 and "connected" not in out
            # The control: the same probe does connect when the policy allows network.
            out, err, result = _run(driver, opened, [python, "-c", probe])
            assert (out, result.exit_code) == ("connected\n", 0), err
        finally:
            listener.close()

    def test_environment_is_exactly_minimal_plus_provider(
        self, driver: LocalDriver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GATEWAY_ONLY_SECRET", "must-not-leak")
        spec = _spec("demo", env={"PROVIDER_TOKEN": "tok-123"})
        driver.create(spec)
        out, err, result = _run(driver, spec, ["env", "-0"], env={"EXTRA": "1"})
        assert result.exit_code == 0, err
        env = dict(item.split("=", 1) for item in out.split("\0") if item)
        assert env.pop("PATH").startswith("/usr/local/sbin")
        # PWD is set by bubblewrap's --chdir.
        assert env == {"HOME": "/workspace", "PWD": "/workspace", "PROVIDER_TOKEN": "tok-123", "EXTRA": "1"}
        # Never on bwrap's command line, which any host user could read from /proc.
        out, _, _ = _sh(driver, spec, "tr '\\0' ' ' < /proc/1/cmdline")
        assert "tok-123" not in out and "bwrap" in out

    def test_timeout_kills_the_whole_tree(self, driver: LocalDriver) -> None:
        spec = _spec("demo")
        driver.create(spec)
        marker = "61.37"
        run = driver.exec(
            spec, ["sh", "-c", f"sleep {marker} & sleep {marker} & echo started; wait"], env={}, timeout_s=2
        )
        assert next(run) == ExecChunk("stdout", b"started\n")
        _wait_until(lambda: len(_host_sleeps(marker)) == 2, "both children to run")
        rest = list(run)
        assert rest[-1] == ExecResult(exit_code=137, timed_out=True)
        _wait_until(lambda: not _host_sleeps(marker), "the process tree to be gone")

    def test_delete_kills_running_commands_and_removes_everything(self, driver: LocalDriver, data_dir: Path) -> None:
        spec = _spec("demo")
        driver.create(spec)
        marker = "59.13"
        run = driver.exec(spec, ["sh", "-c", f"echo started; sleep {marker}"], env={}, timeout_s=60)
        assert next(run) == ExecChunk("stdout", b"started\n")
        driver.delete(spec)
        result = list(run)[-1]
        assert isinstance(result, ExecResult) and result.exit_code != 0
        _wait_until(lambda: not _host_sleeps(marker), "the command to die")
        assert not (data_dir / "sandboxes" / "default" / "demo").exists()
        assert driver.get(spec.id) is None and driver.list() == []
        driver.delete(spec)  # idempotent
        with pytest.raises(SandboxNotFound):
            driver.exec(spec, ["true"], env={}, timeout_s=5)

    def test_state_logs_list_and_watch(self, driver: LocalDriver, data_dir: Path) -> None:
        stop = threading.Event()
        events: list[DriverEvent] = []
        watch: Iterator[DriverEvent] = driver.watch(stop)
        collector = threading.Thread(target=lambda: events.extend(watch), daemon=True)
        collector.start()
        _wait_until(lambda: driver._watchers, "the watch to register")
        spec = _spec("demo", "team-a", labels={"openshell.dev/team": "infra"})
        driver.create(spec)
        assert driver.create(spec).id == spec.id  # a retried create is idempotent
        _sh(driver, spec, "true")
        assert [s.id for s in driver.list()] == [spec.id]
        got = driver.get(spec.id)
        assert got is not None and got.labels == {"openshell.dev/team": "infra"}
        assert got.namespace == "team-a"
        # State is kept outside the workspace, where the sandbox cannot forge it.
        assert not list((data_dir / "sandboxes" / "team-a" / "demo").iterdir())
        lines = driver.logs(spec)
        assert "created workspace" in lines[0] and "exec finished: exit 0" in lines[-1]
        assert driver.logs(spec, tail=1) == lines[-1:]
        driver.delete(spec)
        driver.delete_namespace("team-a")
        assert not (data_dir / "sandboxes" / "team-a").exists()
        _wait_until(lambda: len(events) >= 3, "the delete events")
        stop.set()
        collector.join(5)
        assert [(e.sandbox_id, e.namespace, e.phase, e.deleted) for e in events] == [
            (spec.id, "team-a", SandboxPhase.READY, False),
            (spec.id, "team-a", SandboxPhase.DELETING, False),
            (spec.id, "team-a", SandboxPhase.DELETING, True),
        ]
