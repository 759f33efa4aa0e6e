"""The notifier's rules without a service: WATCHDOG=1 only for completed control cycles (a loop
that runs but no longer cycles gets no ping), silence outside systemd, WATCHDOG_PID."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

import controller.notify as notify
from controller.notify import Notifier, watchdog_period


def test_watchdog_period_is_half_and_only_for_us():
    assert watchdog_period({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_period({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}) == 5.0
    assert watchdog_period({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_period({}) is None


async def test_no_ping_while_cycles_stall(monkeypatch):
    monkeypatch.setattr(notify, "snapshot", lambda c, slow=False: {})
    monkeypatch.setattr(notify, "summary_line", lambda snap: "ok")
    sent: list[str] = []
    fake = SimpleNamespace(cycles=0)
    n = Notifier(lambda: fake, environ={"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "100000"},
                 send=sent.append)
    n.ready()
    try:
        for _ in range(6):  # cycling: a ping every 50 ms
            fake.cycles += 1
            await asyncio.sleep(0.06)
        pinging = sum("WATCHDOG=1" in m for m in sent)
        assert pinging >= 3
        await asyncio.sleep(0.3)  # let the ping for the last cycle go out
        before = sum("WATCHDOG=1" in m for m in sent)
        await asyncio.sleep(0.5)  # the loop runs, but no cycle completes
        assert sum("WATCHDOG=1" in m for m in sent) == before
    finally:
        await n.stopping()
    assert sent[0].startswith("READY=1\nSTATUS=ok") and sent[-1].startswith("STOPPING=1")


async def test_silent_without_notify_socket():
    sent: list[str] = []
    n = Notifier(lambda: None, environ={"WATCHDOG_USEC": "100000"}, send=sent.append)
    n.ready()
    await asyncio.sleep(0.2)
    await n.stopping()
    assert sent == []
