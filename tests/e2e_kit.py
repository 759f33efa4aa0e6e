"""The real `evfuse run` process against a LiveSite on loopback, for end-to-end tests.

    async with Service(chargers, control="...") as svc:
        await svc.until(lambda: svc.limit("garage") == 16, "garage at 16 A")

Everything started here is stopped on exit, also when a test fails: the service process is
killed if it is still running, the charge points and the meter server are closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import sys
import time

from controller.sim.live_site import LiveSite

FAST = """
[control]
ramp_up_delay_s = 1
ramp_up_step_a = 16
ramp_up_interval_s = 0.5
restart_delay_s = 5
response_s = 3
overload_pause_s = 6
fallback_a = 6
"""


def heidelberg_toml(emulator, port: int, watchdog_s: float, charger_id: str = "shed") -> str:
    """The [[charger]] table of an emulated Heidelberg on Modbus TCP at 127.0.0.1:port."""
    return f"""
[[charger]]
id = "{charger_id}"
protocol = "modbus"
profile = "heidelberg"
transport = "tcp"
host = "127.0.0.1"
port = {port}
unit_id = {emulator.unit_id}
phases = "ABC"
watchdog_s = {watchdog_s:g}
"""


class Service:
    def __init__(self, chargers, control: str = FAST, tmp_path=None, household=None,
                 start_chargers: bool = True, fuse_a: float = 25.0, ocpp_extra: str = "",
                 lease_s: float = 60):
        self.site = LiveSite(chargers=chargers, household=household)
        self.control = control
        self.tmp_path = tmp_path
        self.start_chargers_on_enter = start_chargers
        self.fuse_a = fuse_a
        self.ocpp_extra = ocpp_extra
        self.lease_s = lease_s
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self.ocpp_port: int | None = None
        self.web_url: str | None = None  # with a [web] table in `control`
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> Service:
        try:
            meter_port = await self.site.start_meter()
            path = os.path.join(str(self.tmp_path), "evfuse.toml")
            with open(path, "w") as f:
                f.write(self.site.config(meter_port, fuse_a=self.fuse_a, extra=self.control,
                                         ocpp_extra=self.ocpp_extra, lease_s=self.lease_s))
            self.config_path = path
            await self._spawn()
            if self.start_chargers_on_enter:
                await self.site.start_chargers(self.ocpp_port)
            return self
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.site.stop()

    async def _spawn(self) -> None:
        # its own status socket: a service started by hand as root would use /run/evfuse
        env = dict(os.environ, EVFUSE_STATUS_SOCKET=os.path.join(str(self.tmp_path), "status.sock"))
        self.ocpp_port = None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", "run", "--config", self.config_path, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)  # the old process's log ended
        self._reader = asyncio.create_task(self._read_log())
        if self.site.chargers:
            await self.until(lambda: self.ocpp_port is not None, "the OCPP server to listen", 30)
        else:  # switchable loads only: no OCPP server
            await self.until(lambda: self.logged("started:"), "the service to start", 30)

    async def start_again(self) -> None:
        """Start the service anew (same config, same state directory: STATE_DIRECTORY is the
        test's own), and reconnect every charge point to it as a charger does after its
        central system went away: without a reboot, keeping the profiles it holds."""
        assert self.proc is not None and self.proc.returncode is not None, "stop it first"
        await self._spawn()
        for cid, cp in self.site.points.items():
            await cp.stop()
            cp.url = f"ws://127.0.0.1:{self.ocpp_port}/{cid}"
            cp.options = dataclasses.replace(cp.options, boot=False)
            await cp.start()

    async def _read_log(self) -> None:
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                self.ocpp_port = int(m.group(1))
            m = re.search(r"web page at (https?://\S+/)", line)
            if m:
                self.web_url = m.group(1)

    # ------------------------------------------------------------------ helpers

    async def until(self, predicate, what: str, timeout: float = 30.0, service_may_exit: bool = False) -> float:
        """Wait until predicate() holds; returns the seconds it took. Fails with the log, and
        at once if the service exits (unless that is expected)."""
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                tail = "\n".join(self.log[-25:])
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
            if self.proc.returncode is not None and not service_may_exit:
                raise AssertionError(f"evfuse exited ({self.proc.returncode}) waiting for {what}\n"
                                     + "\n".join(self.log[-25:]))
            await asyncio.sleep(0.05)
        return time.monotonic() - start

    async def steady(self, predicate, what: str, hold_s: float = 3.0, timeout: float = 45.0) -> None:
        """Wait until predicate() has held for hold_s without a break."""
        start = time.monotonic()
        since = None
        while True:
            now = time.monotonic()
            if predicate():
                since = since or now
                if now - since >= hold_s:
                    return
            else:
                since = None
            if now - start > timeout:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} to hold\n"
                                     + "\n".join(self.log[-25:]))
            await asyncio.sleep(0.05)

    def _exited(self) -> bool:
        return self.proc.returncode is not None

    def limit(self, charger_id: str) -> float | None:
        """The limit the simulated charge point enforces now (from the profiles it holds)."""
        cp = self.site.points.get(charger_id)
        return None if cp is None else cp.composite_limit_a()

    def draw(self, charger_id: str) -> float:
        return self.site.points[charger_id].draw_a()

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.log)

    async def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        await self.until(self._exited, f"evfuse to exit on signal {signal.Signals(sig).name}", 20,
                         service_may_exit=True)
        return self.proc.returncode
