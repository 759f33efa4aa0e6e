"""Ending background tasks: the one way evfuse stops a task it started."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("evfuse.tasks")

RECANCEL_S = 0.2


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel a background task and wait until it has ended. A cancellation of the caller
    itself still propagates (a bare `except CancelledError: pass` would swallow it); a task
    that had already died of an error is logged, not raised, because stopping must go on."""
    if task is None:
        return
    # One cancel is not always enough: Python 3.11's asyncio.wait_for (which pymodbus awaits
    # every reply with) returns the result instead of raising when the cancel and the result
    # arrive in the same loop turn, and a worker loop then waits for its next job forever (a
    # stop, and with it leaving every charger at its fallback, would hang). Cancel until it ends.
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=RECANCEL_S)
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s had failed: %r", task.get_name(), task.exception())
