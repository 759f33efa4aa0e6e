"""The real `evfuse run` against a simulated site, as systemd would run it: sd_notify to a
unix datagram socket bound as NOTIFY_SOCKET (READY, STATUS, WATCHDOG, STOPPING), the
watchdog stopping while the loop is blocked, and `evfuse status` over its socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

from controller.sim.chargepoint import SimChargePoint, SimOptions
from controller.sim.meter_server import MeterServer

EVFUSE = str(Path(sys.executable).parent / "evfuse")
BLOCK_S = 6.0

CONFIG = """
[site]
phases = 3
fuse_a = 25
[meter]
profile = "sdm630"
transport = "tcp"
host = "127.0.0.1"
port = {port}
poll_interval_s = 0.25
[ocpp]
listen = "127.0.0.1:0"
[[charger]]
id = "garage"
protocol = "ocpp"
phases = "ABC"
min_a = 6
max_a = 16
"""


class Service:
    """`evfuse run` in a subprocess with a notify socket and a status socket in a temp dir."""

    def __init__(self, meter_port: int, workdir: Path):
        self.workdir = workdir
        self.config = workdir / "evfuse.toml"
        self.config.write_text(CONFIG.format(port=meter_port))
        self.status_socket = str(workdir / "status.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(workdir / "notify.sock"))
        self.notify.setblocking(False)
        self.messages: list[tuple[float, str]] = []  # (monotonic time, one KEY=value line)
        self.stderr: list[str] = []
        self.ocpp_port: int | None = None
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = dict(os.environ, NOTIFY_SOCKET=str(self.workdir / "notify.sock"),
                   WATCHDOG_USEC="1000000", EVFUSE_STATUS_SOCKET=self.status_socket,
                   EVFUSE_TEST_BLOCK_LOOP_S=str(BLOCK_S), STATE_DIRECTORY=str(self.workdir))
        for key in ("INVOCATION_ID", "JOURNAL_STREAM", "WATCHDOG_PID"):
            env.pop(key, None)
        self.proc = await asyncio.create_subprocess_exec(
            EVFUSE, "run", "--config", str(self.config), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read_stderr())
        self._receiver = asyncio.create_task(self._receive())
        await self.until(lambda: self.ocpp_port is not None, "OCPP listening", 60)

    async def _read_stderr(self) -> None:
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.stderr.append(line)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.ocpp_port = int(m.group(1))

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.notify, 4096)
            now = time.monotonic()
            self.messages += [(now, line) for line in data.decode().splitlines()]

    def lines(self, key: str) -> list[tuple[float, str]]:
        return [(t, m) for t, m in self.messages if m.startswith(key + "=")]

    async def until(self, predicate, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.returncode is not None:
                raise AssertionError(f"service exited ({self.proc.returncode}) waiting for {what}:\n"
                                     + "".join(self.stderr[-30:]))
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n" + "".join(self.stderr[-30:]))
            await asyncio.sleep(0.05)

    async def stop(self) -> int | None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.sleep(0.1)  # let the last datagrams arrive
        for task in (getattr(self, "_reader", None), getattr(self, "_receiver", None)):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.notify.close()
        return self.proc.returncode if self.proc else None


@contextlib.asynccontextmanager
async def running_site():
    meter = MeterServer("sdm630")
    meter.set_all([8.0, 7.0, 6.0])
    port = await meter.start_tcp()
    workdir = Path(tempfile.mkdtemp(prefix="evfuse-", dir="/tmp"))  # short: unix path limit
    service = Service(port, workdir)
    cp = None
    try:
        await service.start()
        cp = SimChargePoint("garage", f"ws://127.0.0.1:{service.ocpp_port}/garage",
                            SimOptions(version="1.6"))
        await cp.start()
        await cp.plug_in()
        yield service
    finally:
        if cp is not None:
            await cp.stop()
        await service.stop()
        await meter.stop()
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()


async def evfuse_status(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(EVFUSE, "status", *args,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_notify_ready_status_watchdog_and_blocked_loop():
    async with running_site() as svc:
        await svc.until(lambda: svc.lines("READY"), "READY=1")
        assert svc.lines("STATUS") and "meter" in svc.lines("STATUS")[0][1]
        ready_at = svc.lines("READY")[0][0]
        await svc.until(lambda: len([t for t, _ in svc.lines("WATCHDOG") if t > ready_at]) >= 4,
                        "periodic WATCHDOG=1")
        await svc.until(lambda: any("meter ok" in m for _, m in svc.lines("STATUS")), "STATUS meter ok")

        blocked_at = time.monotonic()
        svc.proc.send_signal(signal.SIGUSR2)
        await svc.until(lambda: any(t > blocked_at + BLOCK_S for t, _ in svc.lines("WATCHDOG")),
                        "WATCHDOG=1 again after the block", BLOCK_S + 30)
        pings = [t for t, _ in svc.lines("WATCHDOG") if t > blocked_at - 2]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        # Pings every 0.5 s, except while the loop slept: one gap covers most of the block.
        assert max(gaps) >= BLOCK_S - 1.5, gaps
    assert svc.lines("STOPPING"), svc.messages[-5:]
    assert svc.proc.returncode == 0


async def test_status_json_and_text_against_the_running_service():
    async with running_site() as svc:
        await svc.until(lambda: any("meter ok" in m for _, m in svc.lines("STATUS")), "meter ok")
        deadline = time.monotonic() + 30
        while True:  # until the charger is connected and has a limit
            rc, out, err = await evfuse_status("--json", "--socket", svc.status_socket)
            assert rc == 0, err
            snap = json.loads(out)
            if snap["chargers"][0]["connected"] and snap["chargers"][0]["limit_a"]:
                break
            assert time.monotonic() < deadline, snap
            await asyncio.sleep(0.3)
        assert snap["version"] == 1 and snap["uptime_s"] >= 0 and snap["cycles"] > 0
        meter = snap["meter"]
        assert meter["state"] == "ok" and 0 <= meter["sample_age_s"] < 3 and "127.0.0.1" in meter["where"]
        assert [p["phase"] for p in snap["phases"]] == ["A", "B", "C"]
        for p in snap["phases"]:
            assert {"load_a", "household_a", "headroom_a", "limit_a"} <= p.keys()
        assert snap["phases"][0]["load_a"] == pytest.approx(8.0, abs=0.01)
        c = snap["chargers"][0]
        assert c["id"] == "garage" and c["protocol"].startswith("ocpp") and c["connected"]
        assert {"state", "limit_a", "draw_a", "reason", "compliant", "car"} <= c.keys()
        assert c["state"] in ("charging", "limited", "ready", "fallback") and c["reason"]
        assert isinstance(snap["faults"], list) and snap["paused"] is None

        rc, text, err = await evfuse_status("--socket", svc.status_socket)
        assert rc == 0, err
        assert "meter:  ok" in text and "garage" in text and "faults: none" in text


async def test_status_says_clearly_when_the_service_is_not_running(tmp_path):
    rc, out, err = await evfuse_status("--socket", str(tmp_path / "status.sock"))
    assert rc == 3 and out == ""
    assert "evfuse is not running" in err and "systemctl status evfuse" in err


async def test_a_second_service_does_not_steal_the_status_socket(tmp_path):
    from controller.status import StatusServer

    path = str(tmp_path / "status.sock")
    first = StatusServer(path, lambda: None)
    second = StatusServer(path, lambda: None)
    assert await first.start()
    try:
        assert not await second.start()
        assert os.path.exists(path)
    finally:
        await second.stop()
        await first.stop()
    assert not os.path.exists(path)
