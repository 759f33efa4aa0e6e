"""A real mosquitto broker on a free loopback port, and a subscriber that records what it
sees, for the MQTT tests.

    async with Broker(tmp_path) as broker, Subscriber(broker.port, "evfuse/#") as sub:
        await sub.until(lambda: sub.last.get("evfuse/status") == b"online", "online")

The broker is killed on exit, also when a test fails; `kill()` and `start()` let a test take
it away and bring it back on the same port.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time

import aiomqtt

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, tmp_path, users: dict[str, str] | None = None, tls: tuple | None = None):
        """users: {name: password} (else anonymous); tls: (certfile, keyfile) for TLS only."""
        self.port = free_port()
        self.dir = tmp_path
        self.users = users
        self.tls = tls
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Broker:
        try:
            await self.start()
        except BaseException:
            await self.kill()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.kill()

    async def start(self) -> None:
        conf = self.dir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error"]
        if self.tls:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        if os.geteuid() == 0:  # else it would switch to the mosquitto user and not read our files
            lines.append("user root")
        if self.users:
            passwd = self.dir / "passwd"
            passwd.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            passwd.chmod(0o600)
            util = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            proc = await asyncio.create_subprocess_exec(util, "-U", str(passwd))
            assert await proc.wait() == 0, "mosquitto_passwd failed"
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = await asyncio.create_subprocess_exec(
            MOSQUITTO, "-c", str(conf), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mosquitto did not start on port {self.port}")
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


class Subscriber:
    """Records every message (topic, payload, retain) on the given filters; `last` holds the
    latest payload per topic."""

    def __init__(self, port: int, *filters: str, username=None, password=None):
        self.client = aiomqtt.Client("127.0.0.1", port, username=username, password=password,
                                     identifier=None, timeout=10)
        self.filters = filters
        self.messages: list[tuple[str, bytes, bool]] = []
        self.last: dict[str, bytes] = {}
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Subscriber:
        await self.client.__aenter__()
        for f in self.filters:
            await self.client.subscribe(f, qos=1)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.client.__aexit__(None, None, None), 5)
        except (aiomqtt.MqttError, asyncio.TimeoutError):
            pass

    async def _read(self) -> None:
        async for m in self.client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload or "").encode()
            self.messages.append((str(m.topic), payload, m.retain))
            self.last[str(m.topic)] = payload

    async def publish(self, topic: str, payload, retain: bool = False) -> None:
        await self.client.publish(topic, payload, qos=1, retain=retain)

    async def until(self, predicate, what: str, timeout: float = 30.0) -> None:
        start = time.monotonic()
        while not predicate():
            if self._task.done():
                self._task.result()
            if time.monotonic() - start > timeout:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                     f"topics seen: {sorted(self.last)[:30]}")
            await asyncio.sleep(0.05)
