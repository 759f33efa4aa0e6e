"""The meter reader against a real pymodbus server on 127.0.0.1: profiles, faults, schedule."""

import asyncio
import logging

import pytest

from controller.meter.decode import Fault
from controller.meter.reader import MeterReader
from meter_helpers import VALUES, running, tcp_config, tcp_meter, wait_for

CUSTOM = [
    {"quantity": "voltage", "phase": p, "function": 3, "address": 100 + 2 * i, "type": "uint32",
     "word_order": "little", "scale": 0.1} for i, p in enumerate("ABC")
] + [
    {"quantity": "current", "phase": p, "function": 3, "address": 110 + i, "type": "int16", "scale": 0.01}
    for i, p in enumerate("ABC")
] + [
    {"quantity": "power", "phase": p, "function": 3, "address": 120 + 2 * i, "type": "int32"}
    for i, p in enumerate("ABC")
]


@pytest.mark.parametrize("profile, server_kw", [
    ("sdm630", {}), ("em24", {}), ("abb-b23", {}), ("shelly-pro-3em", {}),
    ("sunspec", {"sunspec_model": 203}), ("sunspec", {"sunspec_model": 213}),
    ("custom", {"registers": CUSTOM}),
])
async def test_every_profile_decodes_over_tcp(profile, server_kw):
    async with tcp_meter(profile, **server_kw) as (server, port):
        kw = {"registers": tuple(CUSTOM)} if profile == "custom" else {}
        reader = MeterReader(tcp_config(port, profile, **kw), site_phases=3)
        try:
            s = await reader.read_sample()
        finally:
            await reader.stop()
    assert s.current_a == pytest.approx(VALUES["current_a"], abs=0.01)
    assert s.voltage_v == pytest.approx(VALUES["voltage_v"], abs=0.1)
    assert s.power_w == pytest.approx(VALUES["power_w"], abs=1.0)


async def test_one_phase_meter_and_invert():
    async with tcp_meter("sdm120") as (server, port):
        server.set_phase("A", current_a=7.0, power_w=1610.0)
        reader = MeterReader(tcp_config(port, "sdm120", invert=("A",)), site_phases=1)
        try:
            s = await reader.read_sample()
        finally:
            await reader.stop()
    assert s.current_a == (-7.0, 0.0, 0.0) and s.power_w == (-1610.0, 0.0, 0.0)


HEALTHY = {"silent": False, "exception_code": None, "nan": False, "short_by": 0}


@pytest.mark.parametrize("fault, kind", [
    ({"silent": True}, Fault.TIMEOUT),
    ({"exception_code": 2}, Fault.EXCEPTION),
    ({"nan": True}, Fault.NAN),
    ({"short_by": 2}, Fault.REGISTER_COUNT),
])
async def test_fault_gives_no_sample_is_logged_once_and_recovers(fault, kind, caplog):
    caplog.set_level(logging.INFO, logger="evfuse.meter")
    samples = []
    async with tcp_meter() as (server, port):
        reader = MeterReader(tcp_config(port, poll_interval_s=0.05, timeout_s=0.2), 3, samples.append)
        async with running(reader):
            await wait_for(lambda: reader.samples >= 2)
            for name, value in fault.items():
                setattr(server, name, value)
            await wait_for(lambda: reader.rejections[kind] >= 3)
            during = reader.samples
            await asyncio.sleep(0.2)
            assert reader.samples == during  # nothing gets through while the fault lasts
            assert reader.fault.kind == kind
            for name in fault:
                setattr(server, name, HEALTHY[name])
            await wait_for(lambda: reader.samples >= during + 2)
    assert all(s.current_a == VALUES["current_a"] for s in samples)
    states = [r.FAULT_STATE for r in caplog.records if hasattr(r, "FAULT_STATE")]
    assert states == ["started", "ended"], states
    assert reader.rejections[kind] >= 3 and reader.fault is None


async def test_connection_dropped_mid_run_comes_back():
    samples = []
    async with tcp_meter() as (server, port):
        reader = MeterReader(tcp_config(port, poll_interval_s=0.05), 3, samples.append)
        async with running(reader):
            await wait_for(lambda: reader.samples >= 2)
            for _ in range(3):
                before = reader.samples
                assert server.drop_connections() == 1
                await wait_for(lambda: reader.samples >= before + 3)
    assert all(s.current_a == VALUES["current_a"] for s in samples)


async def test_peer_gone_and_back_on_the_same_port():
    samples = []
    async with tcp_meter() as (server, port):
        reader = MeterReader(tcp_config(port, poll_interval_s=0.05), 3, samples.append)
        async with running(reader):
            await wait_for(lambda: reader.samples >= 2)
            await server.stop()
            await wait_for(lambda: reader.rejections[Fault.DISCONNECTED] >= 3)
            before = reader.samples
            await asyncio.sleep(0.3)
            assert reader.samples == before and reader.age() >= 0.3
            await server.start_tcp(port=port)
            await wait_for(lambda: reader.samples >= before + 2)
            assert reader.age() < 1.0
    assert all(s.current_a == VALUES["current_a"] for s in samples)


async def test_schedule_does_not_drift():
    samples = []
    async with tcp_meter() as (server, port):
        reader = MeterReader(tcp_config(port, poll_interval_s=0.1), 3, samples.append)
        async with running(reader):
            await wait_for(lambda: len(samples) >= 16)
    gaps = [b.t - a.t for a, b in zip(samples, samples[1:])]
    # Ticks are start + k * 0.1 s: on average exactly the interval (generous bounds: shared CPU).
    assert 0.08 <= sum(gaps[:15]) / 15 <= 0.14
    assert server.requests == pytest.approx(len(samples), abs=2)


async def test_slow_meter_does_not_pile_up_requests():
    async with tcp_meter() as (server, port):
        server.delay_s = 0.25  # each answer takes 2.5 poll intervals
        reader = MeterReader(tcp_config(port, poll_interval_s=0.1, timeout_s=2.0), 3)
        async with running(reader):
            await wait_for(lambda: reader.samples >= 4)
            await asyncio.sleep(0.5)
            served, samples, skipped = server.requests, reader.samples, reader.skipped_ticks
    assert served <= samples + 1  # never more than one request outstanding
    assert skipped >= samples  # the missed ticks were dropped, not fired back to back
