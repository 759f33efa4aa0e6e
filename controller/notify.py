"""sd_notify for `Type=notify` (systemd/evfuse.service), through systemd-python.

READY=1 once the config is loaded and the OCPP server listens; STATUS= a one-line summary
(what `systemctl status evfuse` shows); STOPPING=1 on shutdown.

WATCHDOG=1 is sent at half of WATCHDOG_USEC, and only when the control loop completed a cycle
since the previous ping. The ping runs as a task on the same event loop as the control loop,
so a blocked loop sends nothing; and a loop that still runs but no longer completes cycles
(a dead ticker, a wedged meter path) sends nothing either. Either way systemd kills and
restarts the process, and the chargers sit at their own fallback meanwhile (DESIGN.md 1.5).

Without NOTIFY_SOCKET (not under systemd) nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from systemd import daemon

from controller.status import snapshot, summary_line
from controller.tasks import cancel_and_wait

log = logging.getLogger("evfuse.notify")

STATUS_EVERY_S = 5.0  # STATUS= refresh when there is no watchdog to pace it
BLOCK_HOOK_ENV = "EVFUSE_TEST_BLOCK_LOOP_S"


def watchdog_period(environ=os.environ) -> float | None:
    """Half of WATCHDOG_USEC when the watchdog is meant for this process, else None."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None


class Notifier:
    def __init__(self, get_controller, get_slow_mode=lambda: False, environ=os.environ,
                 send=daemon.notify):
        self.enabled = bool(environ.get("NOTIFY_SOCKET"))
        self.period = watchdog_period(environ) if self.enabled else None
        self.get_controller = get_controller
        self.get_slow_mode = get_slow_mode
        self._send = send
        self._task: asyncio.Task | None = None
        self._last_status = ""

    def notify(self, *lines: str) -> None:
        if self.enabled:
            self._send("\n".join(lines))

    def _status(self) -> str:
        return "STATUS=" + summary_line(snapshot(self.get_controller(), self.get_slow_mode()))

    def ready(self) -> None:
        """Call once the controller is started: config loaded, OCPP listening, meter polling."""
        if not self.enabled:
            return
        self._last_status = self._status()
        # WATCHDOG=1 too: systemd's watchdog timer already runs during a slow start (imports
        # on a Pi 3 take seconds), and the first cycle has just completed.
        self.notify("READY=1", self._last_status, *(["WATCHDOG=1"] if self.period else []))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sd_notify")

    async def _run(self) -> None:
        period = self.period or STATUS_EVERY_S
        last = None
        while True:
            await asyncio.sleep(period)
            controller = self.get_controller()
            progress = (id(controller), controller.cycles)
            lines = []
            if self.period is not None and progress != last:
                lines.append("WATCHDOG=1")
            last = progress
            status = self._status()
            if status != self._last_status:
                lines.append(status)
                self._last_status = status
            if lines:
                self.notify(*lines)

    async def stopping(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.notify("STOPPING=1", "STATUS=stopping: leaving every charger at its fallback limit")


def install_block_hook(loop: asyncio.AbstractEventLoop, environ=os.environ) -> None:
    """Test hook: with EVFUSE_TEST_BLOCK_LOOP_S=N set, SIGUSR2 blocks the event loop for N
    seconds (a synchronous sleep inside the loop), as a hung control loop would. Absent in
    production: the variable is not set by the unit."""
    seconds = environ.get(BLOCK_HOOK_ENV)
    if not seconds:
        return
    loop.add_signal_handler(signal.SIGUSR2, time.sleep, float(seconds))
    log.warning("test hook armed: SIGUSR2 blocks the event loop for %s s", seconds)
