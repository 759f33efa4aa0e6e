"""Stopping a task ends it even when a cancel is swallowed on the way (Python
3.11's asyncio.wait_for, which pymodbus awaits every reply with, returns the reply instead of
raising when the cancel and the reply come in the same loop turn)."""

import asyncio

from controller.config import SerialSettings
from controller.meter.bus import open_bus
from controller.sim.meter_server import MeterServer


async def test_release_ends_the_worker_even_if_a_cancel_is_swallowed():
    server = MeterServer("sdm630")
    port = await server.start_tcp()
    bus = open_bus(SerialSettings(host="127.0.0.1", port=port), timeout_s=1.0)
    pending = stopping = None
    try:
        await bus.read_input_registers(1, 0, 2)  # connected, worker running
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        started = asyncio.Event()

        async def execute(unit, function, address, call):
            started.set()
            return await asyncio.wait_for(reply, 5)  # what pymodbus does with every request

        bus._execute = execute
        pending = asyncio.ensure_future(bus.read_input_registers(1, 0, 2))
        await asyncio.wait_for(started.wait(), 5)
        reply.set_result([0, 0])  # the reply, and release()'s cancel in the same turn: on 3.11
        stopping = asyncio.ensure_future(bus.release())  # wait_for returns it, the cancel is lost
        await asyncio.wait([stopping], timeout=5)  # (wait_for's own cancel would end it anyway)
        assert stopping.done() and bus._worker.done(), "release() hangs on a worker that lost its cancel"
    finally:
        left = [t for t in (pending, stopping, bus._worker) if t is not None]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        await server.stop()


async def test_cancel_and_wait_repeats_a_cancel_that_was_swallowed():
    from controller.tasks import cancel_and_wait

    async def loses_one_cancel():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass  # what wait_for does on 3.11 when its result came in the same turn
        await asyncio.sleep(60)

    task = asyncio.create_task(loses_one_cancel())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert task.cancelled()
