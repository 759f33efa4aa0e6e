"""A real Controller in this process against a LiveSite on loopback (a Modbus meter server
and OCPP charge points with cars), for tests that call the controller's API directly.

    async with running(tmp_path, chargers) as (site, controller):
        await until(lambda: site.points["garage"].composite_limit_a() == 16, "garage at 16 A")

Everything is stopped on exit, also when the test fails.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

from controller.config import load_config
from controller.runtime import Controller
from controller.sim.live_site import LiveSite

FAST = """
[control]
ramp_up_delay_s = 0.5
ramp_up_step_a = 16
ramp_up_interval_s = 0.2
restart_delay_s = 5
response_s = 3
fallback_a = 6
"""


@asynccontextmanager
async def running(tmp_path, chargers, control: str = FAST, fuse_a: float = 25.0, extra: str = ""):
    site = LiveSite(chargers=chargers)
    controller = None
    try:
        port = await site.start_meter()
        path = tmp_path / "evfuse.toml"
        path.write_text(site.config(port, fuse_a=fuse_a, extra=control + extra))
        controller = Controller(load_config(path))
        await controller.start("127.0.0.1", 0)
        await site.start_chargers(controller.ocpp_port)
        yield site, controller
    finally:
        if controller is not None:
            await controller.stop()
        await site.stop()


async def until(predicate, what: str, timeout: float = 30.0, show=None) -> None:
    """Wait for predicate(); on timeout fail with `what` and, if given, show() (the state that
    explains it: a timeout on a loaded CI machine is only useful with it)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            seen = "" if show is None else f"; {show()}"
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        await asyncio.sleep(0.05)


def decisions(controller) -> str:
    """Each load's limit and reason in the controller's last decision, for a failure message."""
    d = controller.decision
    if d is None:
        return "no decision yet"
    return ", ".join(f"{c.id} {c.limit_a:.1f} A ({c.reason})" for c in d.chargers) + \
        f"; household {tuple(round(h, 1) for h in d.household_a)}"
