"""A serial cable made of two pseudo-terminals, for running Modbus RTU without hardware.

    client end (path)  <-> master A  == relay ==  master B <->  server end (path)

The client opens `client_path`, a symlink standing in for /dev/ttyUSB0, so `unplug()` can
make the device disappear (symlink gone, its pty closed: an open port reads EIO, as with a
pulled USB adapter) and `plug()` bring a new one back under the same path. Ptys ignore the
baud rate and cannot do parity, so use parity "N" on them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import tty
from pathlib import Path


class PtyLink:
    def __init__(self, directory: str | None = None):
        self._dir = Path(directory or tempfile.mkdtemp(prefix="evfuse-pty-"))
        self.client_path = str(self._dir / "ttyUSB0")
        self.server_path = str(self._dir / "ttyMETER")
        self._client: tuple[int, int] | None = None  # (master, slave) fds
        self._server: tuple[int, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bytes_relayed = 0

    async def start(self) -> PtyLink:
        self._loop = asyncio.get_running_loop()
        self._server = self._open(self.server_path)
        self.plug()
        return self

    def plug(self) -> None:
        """Make the client device (re)appear."""
        if self._client is None:
            self._client = self._open(self.client_path)
            self._relay(self._client[0], lambda: self._server)
            self._relay(self._server[0], lambda: self._client)

    def unplug(self) -> None:
        """Make the client device vanish, as a USB adapter pulled out."""
        if self._client is not None:
            master, slave = self._client
            self._client = None
            self._loop.remove_reader(master)
            os.unlink(self.client_path)
            os.close(master)
            os.close(slave)

    @property
    def plugged(self) -> bool:
        return self._client is not None

    async def stop(self) -> None:
        self.unplug()
        if self._server is not None:
            master, slave = self._server
            self._loop.remove_reader(master)
            os.unlink(self.server_path)
            os.close(master)
            os.close(slave)
            self._server = None
        try:
            self._dir.rmdir()
        except OSError:
            pass

    @staticmethod
    def _open(path: str) -> tuple[int, int]:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or line editing before the user configures the port
        os.set_blocking(master, False)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(os.ttyname(slave), path)
        # We keep `slave` open ourselves so the master never reads EIO merely because the
        # user closed and reopened the port.
        return master, slave

    def _relay(self, source: int, other) -> None:
        def forward() -> None:
            try:
                data = os.read(source, 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._loop.remove_reader(source)
                return
            peer = other()
            if peer is not None and data:  # the other end unplugged: bytes fall on the floor
                os.write(peer[0], data)
                self.bytes_relayed += len(data)

        self._loop.remove_reader(source)
        self._loop.add_reader(source, forward)
