"""cancel_and_wait: the one way a background task is stopped."""

from __future__ import annotations

import asyncio
import logging

import pytest

from controller.tasks import cancel_and_wait


async def test_a_running_task_is_cancelled_and_has_ended_on_return():
    task = asyncio.create_task(asyncio.sleep(60))
    await cancel_and_wait(task)
    assert task.cancelled()
    await cancel_and_wait(None)  # nothing started: nothing to do


async def test_a_task_that_had_failed_is_logged_not_raised(caplog):
    async def broken():
        raise RuntimeError("boom")
    task = asyncio.create_task(broken(), name="broken one")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="evfuse.tasks"):
        await cancel_and_wait(task)
    assert "broken one" in caplog.text and "boom" in caplog.text


async def test_the_callers_own_cancellation_is_not_swallowed():
    async def stubborn():  # takes its time to end, like a driver writing its fallback
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)
            raise
    inner = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    outer = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0.05)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.wait([inner])
