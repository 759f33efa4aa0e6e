"""A meter setting that changes what its readings mean (the EM24 application mode) is read
once when polling starts, against a real pymodbus meter server on loopback."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from controller.meter.profile import load_profile
from controller.meter.reader import MeterReader
from controller.sim.meter_server import MeterServer
from meter_helpers import VALUES, tcp_config, tcp_meter


async def sample_and_mode(server_profile="em24", application: int | None = None):
    async with tcp_meter(server_profile) as (server, port):
        if application is not None:
            server.overrides[(3, 0xA000)] = application
        reader = MeterReader(tcp_config(port, "em24"), site_phases=3)
        try:
            sample = await reader.read_sample()
            await reader.poll()  # read once, not on every poll
        finally:
            await reader.stop()
    return sample, reader.mode_fault, server


async def test_application_h_is_what_evfuse_expects():
    sample, fault, _ = await sample_and_mode()
    assert fault is None and sample.current_a == pytest.approx(VALUES["current_a"], abs=0.01)


async def test_another_application_is_a_fault_that_says_what_to_set(caplog):
    with caplog.at_level(logging.ERROR, logger="evfuse.meter"):
        sample, fault, server = await sample_and_mode(application=0)
    assert fault.startswith('application mode is A: set application "H"')
    assert any(getattr(r, "FAULT", "") == "meter-mode" for r in caplog.records)
    assert sample is not None  # readings still count: export may read as import, never the reverse


async def test_a_meter_without_the_register_is_taken_as_it_is():
    plain = replace(load_profile("em24"), checks=())  # EM340 / ET340: nothing at 0xA000
    server = MeterServer(plain)
    server.set_all(VALUES["current_a"], VALUES["voltage_v"], VALUES["power_w"])
    port = await server.start_tcp()
    reader = MeterReader(tcp_config(port, "em24"), site_phases=3)
    try:
        sample = await reader.read_sample()
    finally:
        await reader.stop()
        await server.stop()
    assert reader.mode_fault is None and sample.current_a == pytest.approx(VALUES["current_a"], abs=0.01)
