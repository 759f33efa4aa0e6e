"""`evfuse run` started by hand finds a place for its status socket and `evfuse status`
finds it the same way: systemd's RUNTIME_DIRECTORY, else /run/evfuse made when allowed, else
a per-user runtime directory. The per-user case runs a real `evfuse run` as `nobody`."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from controller import status

EVFUSE = str(Path(sys.executable).parent / "evfuse")


def _others_can_run(path: str) -> bool:
    """Every directory above the executable lets other users through (a checkout under a
    private mktemp -d does not: then the user 'nobody' cannot start it at all)."""
    return all(os.stat(d).st_mode & 0o001 for d in Path(path).resolve().parents)
CONFIG = """
[site]
fuse_a = 25
[meter]
host = "127.0.0.1"
port = 9
[ocpp]
listen = "127.0.0.1:0"
[[charger]]
id = "garage"
"""


def test_service_makes_the_system_runtime_directory_when_allowed(tmp_path, monkeypatch):
    system = tmp_path / "run" / "evfuse"  # stands for /run/evfuse, which must not be touched here
    monkeypatch.setattr(status, "SYSTEM_RUNTIME_DIR", str(system))
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "user")}
    served = status.serving_path(env)
    assert served == str(system / "status.sock") and system.is_dir()
    Path(served).touch()
    assert status.socket_path(None, env) == served


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_a_per_user_directory_someone_else_owns_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(status, "SYSTEM_RUNTIME_DIR", "/proc/no-such-dir/evfuse")  # cannot be made
    planted = tmp_path / "evfuse"
    planted.mkdir()
    os.chown(planted, 65534, 65534)
    assert status.serving_path({"XDG_RUNTIME_DIR": str(tmp_path)}) == "/proc/no-such-dir/evfuse/status.sock"


def test_systemd_runtime_directory_wins():
    env = {"RUNTIME_DIRECTORY": "/run/evfuse-unit", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert status.runtime_dirs(env) == ["/run/evfuse-unit"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or not _others_can_run(EVFUSE),
                    reason="needs root, setpriv, and a checkout other users can reach")
async def test_evfuse_run_by_hand_without_run_evfuse_serves_status_in_the_users_runtime_dir():
    nobody = pwd.getpwnam("nobody")
    work = Path(tempfile.mkdtemp(prefix="evfuse-by-hand-"))
    try:
        work.chmod(0o755)
        runtime = work / "runtime"
        runtime.mkdir(mode=0o700)
        os.chown(runtime, nobody.pw_uid, nobody.pw_gid)
        config = work / "evfuse.toml"
        config.write_text(CONFIG)
        config.chmod(0o644)
        env = {"PATH": os.environ.get("PATH", ""), "XDG_RUNTIME_DIR": str(runtime),
               "XDG_STATE_HOME": str(runtime), "HOME": str(runtime)}
        as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
        proc = await asyncio.create_subprocess_exec(
            *as_nobody, EVFUSE, "run", "--config", str(config), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            socket_file = runtime / "evfuse" / "status.sock"
            for _ in range(600):
                if socket_file.exists() or proc.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            assert socket_file.exists(), "no status socket in $XDG_RUNTIME_DIR/evfuse"
            client = await asyncio.create_subprocess_exec(
                *as_nobody, EVFUSE, "status", "--json", env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(client.communicate(), 60)
            assert client.returncode == 0, err.decode()
            assert '"garage"' in out.decode()
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
