"""RTU through a pty pair: decoding, the adapter unplugged and back, and the shared bus."""

import asyncio
import time

import pytest

from controller.config import SerialSettings
from controller.meter.bus import ExceptionReply, Priority, SerialLine, open_bus
from controller.meter.decode import Fault
from controller.meter.reader import MeterReader, default_poll_interval
from controller.meter.profile import load_profile
from meter_helpers import VALUES, rtu_config, rtu_meter, running, wait_for


@pytest.mark.parametrize("profile", ["sdm630", "em24"])
async def test_profile_decodes_over_rtu(profile):
    async with rtu_meter(profile) as (server, link):
        reader = MeterReader(rtu_config(link.client_path, profile, min_gap_s=0.0), 3)
        try:
            s = await reader.read_sample()
        finally:
            await reader.stop()
    assert s.current_a == pytest.approx(VALUES["current_a"])
    assert s.voltage_v == pytest.approx(VALUES["voltage_v"])


async def test_adapter_unplugged_and_plugged_back():
    samples = []
    async with rtu_meter() as (server, link):
        reader = MeterReader(rtu_config(link.client_path, poll_interval_s=0.05, min_gap_s=0.0), 3, samples.append)
        async with running(reader):
            await wait_for(lambda: reader.samples >= 3)
            for _ in range(2):
                link.unplug()
                await wait_for(lambda: reader.rejections[Fault.DISCONNECTED] >= 2)
                before = reader.samples
                await asyncio.sleep(0.3)
                assert reader.samples == before
                link.plug()
                await wait_for(lambda: reader.samples >= before + 3)
                reader.rejections.clear()
    assert all(s.current_a == VALUES["current_a"] for s in samples)


async def test_rtu_default_poll_follows_baud_rate():
    p = load_profile("sdm630")
    fast = default_poll_interval(rtu_config("/dev/x", min_gap_s=None), p)
    slow_cfg = rtu_config("/dev/x")
    slow_cfg = type(slow_cfg)(profile="sdm630", link=SerialSettings(transport="rtu", device="/dev/x", baudrate=1200))
    slow = default_poll_interval(slow_cfg, p)
    assert 0.25 <= fast <= 1.0 and slow > fast
    assert default_poll_interval(type(slow_cfg)(), p) == 0.25  # TCP


async def test_meter_and_charger_share_one_bus_and_the_meter_goes_first():
    async with rtu_meter() as (server, link):
        settings = SerialSettings(transport="rtu", device=link.client_path)
        meter_bus = open_bus(settings, timeout_s=1.0, line=SerialLine())
        charger_bus = open_bus(settings, timeout_s=1.0, line=SerialLine())
        try:
            assert meter_bus is charger_bus
            with pytest.raises(ValueError, match="same settings"):
                open_bus(settings, timeout_s=1.0, line=SerialLine(19200, "E", 1))
            server.delay_s = 0.05
            done = []

            async def read(tag, priority):
                await meter_bus.read_input_registers(1, 0, 18, priority)
                done.append(tag)

            chargers = [asyncio.create_task(read(f"charger{i}", Priority.CHARGER)) for i in range(5)]
            await asyncio.sleep(0.01)  # the first charger read is on the wire now
            await read("meter", Priority.METER)
            await asyncio.gather(*chargers)
            assert done.index("meter") <= 1, done
            with pytest.raises(ExceptionReply, match="register 500 answered exception 2"):
                await meter_bus.read_input_registers(1, 500, 2, Priority.METER)
        finally:
            await charger_bus.release()
            await meter_bus.release()


async def test_minimum_gap_between_requests_to_one_unit():
    async with rtu_meter() as (server, link):
        bus = open_bus(SerialSettings(transport="rtu", device=link.client_path), timeout_s=1.0)
        try:
            bus.set_min_gap(1, 0.1)
            started = time.monotonic()
            for _ in range(5):
                await bus.read_input_registers(1, 0, 18, Priority.METER)
            assert time.monotonic() - started >= 0.4  # four gaps at least
        finally:
            await bus.release()
