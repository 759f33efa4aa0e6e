"""`evfuse meter` and `evfuse profiles` as an installer runs them (real process, real server)."""

import asyncio
import sys

from meter_helpers import tcp_meter


async def evfuse(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "controller", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode(), err.decode()


def write_config(tmp_path, port: int, extra: str = "") -> str:
    path = tmp_path / "evfuse.toml"
    path.write_text(f"""
[site]
fuse_a = 25
[meter]
profile = "sdm630"
host = "127.0.0.1"
port = {port}
timeout_s = 0.5
{extra}
[[charger]]
id = "garage"
""")
    return str(path)


async def test_meter_once_prints_phases(tmp_path):
    async with tcp_meter() as (server, port):
        code, out, err = await evfuse("meter", "--config", write_config(tmp_path, port))
    assert code == 0, err
    assert f"127.0.0.1:{port} unit 1: read in" in out
    assert "A           10.00       230.0        2300" in out
    assert "B           -5.00       231.0       -1155" in out


async def test_meter_no_answer_in_installer_words(tmp_path):
    async with tcp_meter() as (server, port):
        server.silent = True
        code, out, err = await evfuse("meter", "--config", write_config(tmp_path, port))
    assert code == 1
    assert f"no answer from 127.0.0.1:{port} unit 1 after 3 tries" in err


async def test_meter_exception_in_installer_words(tmp_path):
    async with tcp_meter() as (server, port):
        server.exception_code = 2
        code, out, err = await evfuse("meter", "--config", write_config(tmp_path, port))
    assert code == 1
    assert "register 0 answered exception 2: wrong profile or unit id?" in err


async def test_profiles_lists_every_profile():
    code, out, err = await evfuse("profiles")
    assert code == 0
    for name in ("sdm630", "sdm120", "em24", "abb-b23", "shelly-pro-3em", "sunspec", "custom"):
        assert name in out
