"""Ending background tasks: the one way evfuse stops a task it started."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("evfuse.tasks")


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel a background task and wait until it has ended. A cancellation of the caller
    itself still propagates (a bare `except CancelledError: pass` would swallow it); a task
    that had already died of an error is logged, not raised, because stopping must go on."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s had failed: %r", task.get_name(), task.exception())
