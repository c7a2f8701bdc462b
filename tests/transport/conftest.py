"""Workstation fixtures: real local accounts (useradd, as root) and a gateway on a Unix socket.

The accounts run the real ``openshell`` CLI in their own processes (setuid/setgid through
``subprocess``), so the identity broker reads their real uid from the kernel.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gateway.harness import GatewayUnderTest, start_gateway

__all__ = ["Account", "Workstation"]


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str

    @property
    def principal(self) -> str:
        return f"unix:{self.name}"

    @property
    def namespace(self) -> str:
        return f"user-{self.name}"


def _world_readable(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o005 == 0o005 for p in [*path.parents, path] if p != Path("/"))


def _readable_site() -> str:
    """A site directory other accounts can read that holds the CLI and what it imports.

    Usually the virtualenv's site-packages; but tox keeps ``.tox`` mode 0700 and a CI
    checkout may live under /root, so then the packages the CLI actually loads are
    copied to a world-readable temporary directory.
    """
    purelib = Path(sysconfig.get_paths()["purelib"])
    if _world_readable(purelib):
        return str(purelib)
    # List every top-level module the CLI loads that is not part of the standard library.
    probe = (
        "import importlib.util, sys, sysconfig\n"
        "import openshell_server.cli.main\n"
        "std = (sysconfig.get_paths()['stdlib'], sysconfig.get_paths()['platstdlib'])\n"
        "for top in sorted({m.split('.')[0] for m in list(sys.modules)}):\n"
        "    try:\n"
        "        spec = importlib.util.find_spec(top)\n"
        "    except ValueError:\n"
        "        continue\n"
        "    if spec is None or spec.origin in (None, 'built-in', 'frozen'):\n"
        "        if not (spec and spec.submodule_search_locations):\n"
        "            continue\n"
        "    where = list(spec.submodule_search_locations or []) or [spec.origin]\n"
        "    if any(w.startswith(std) and 'site-packages' not in w for w in where):\n"
        "        continue\n"
        "    print(top, spec.origin or '', *where, sep='\\t')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    target = Path(tempfile.mkdtemp(prefix="openshell-site-"))
    for line in out.splitlines():
        top, origin, *locations = line.split("\t")
        if locations and Path(locations[0]).is_dir():
            shutil.copytree(
                locations[0], target / top, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        elif origin and Path(origin).is_file():
            shutil.copy2(origin, target / Path(origin).name)
    for root, _dirs, files in os.walk(target):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return str(target)


# The accounts' processes load this project from a site directory they can read.
_BOOT = """
import site, sys
site.addsitedir(sys.argv.pop(1))
if sys.argv[1:2] == ["--code"]:
    exec(sys.argv[2])
else:
    from openshell_server.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def _interpreter_for_accounts() -> str | None:
    """This Python if every account may run it, else a system Python of the same version."""
    path = Path(sys.executable).resolve()
    if all(os.stat(p).st_mode & 0o001 for p in [*path.parents, path]):
        return str(path)
    candidate = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/bin")
    return candidate


@dataclass
class Workstation:
    gateway: GatewayUnderTest
    socket: Path
    python: str
    site: str

    def run(
        self, account: Account | None, *argv: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``openshell argv`` (or, with ``argv = ("--code", SRC)``, Python code) as ``account`` (None = root)."""
        base = {
            "PATH": "/usr/bin:/bin", "HOME": account.home if account else "/root", "PYTHONDONTWRITEBYTECODE": "1",
            "OPENSHELL_UNIX_SOCKET": str(self.socket),
        }  # fmt: skip
        ids = {"user": account.uid, "group": account.gid, "extra_groups": []} if account else {}
        return subprocess.run(
            [self.python, "-c", _BOOT, self.site, *argv], env={**base, **(env or {})}, capture_output=True, text=True,
            timeout=60, cwd=account.home if account else "/", **ids,  # type: ignore[arg-type]
        )  # fmt: skip

    def json(self, account: Account | None, *argv: str) -> dict:
        result = self.run(account, "-o", "json", *argv)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def _create_account() -> Account:
    name = f"osw{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-m", "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def _delete_account(account: Account) -> None:
    subprocess.run(["userdel", "-r", account.name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def make_account() -> Iterator[object]:
    """A factory of real local accounts, all deleted (``userdel -r``) after the module."""
    if os.geteuid() != 0:
        pytest.skip("workstation tests create real accounts with useradd and need root")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("workstation tests need useradd/userdel (apt-get install passwd)")
    if _interpreter_for_accounts() is None:
        pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} that other accounts may run")
    created: list[Account] = []

    def make() -> Account:
        created.append(_create_account())
        return created[-1]

    yield make
    for account in created:
        _delete_account(account)


@pytest.fixture(scope="module")
def accounts(make_account) -> tuple[Account, Account]:  # type: ignore[no-untyped-def]
    return make_account(), make_account()


@pytest.fixture(scope="module")
def workstation(make_account, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workstation]:  # type: ignore[no-untyped-def]
    """A workstation gateway: Unix socket in a directory every account can reach, plus loopback TCP."""
    data = tmp_path_factory.mktemp("workstation-data")  # root-only, like /var/lib/openshell
    top = Path(tempfile.mkdtemp(prefix="openshell-ws-"))
    os.chmod(top, 0o755)
    socket = top / "run" / "gateway.sock"  # the gateway creates run/ itself, as for /run/openshell
    try:
        with start_gateway(data, oidc=False, unix_socket=str(socket)) as gw:
            yield Workstation(gw, socket, str(_interpreter_for_accounts()), _readable_site())
    finally:
        shutil.rmtree(top, ignore_errors=True)
