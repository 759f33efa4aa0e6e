"""Status LED and button on gpiozero's MockFactory: the patterns, and button presses that pause,
resume and slow down charging end to end through a real Controller, a simulated meter and a
simulated OCPP charge point; the pause survives a restart. Off-Pi: no crash."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest
from gpiozero import LED, Button, Device
from gpiozero.pins.mock import MockFactory

from controller.config import load_config
from controller.runtime import Controller
from controller.sim.chargepoint import SimChargePoint, SimOptions
from controller.sim.meter_server import MeterServer
from hardware.led import PATTERNS, TICK_S, StatusLed, pattern_for
from hardware.panel import PAUSE_REASON, Panel

LED_PIN, BUTTON_PIN = 17, 27

CONFIG = """
[site]
phases = 3
fuse_a = 25
[meter]
profile = "sdm630"
transport = "tcp"
host = "127.0.0.1"
port = {port}
poll_interval_s = 0.25
[control]
fallback_a = 8
ramp_up_delay_s = 0      # no waiting for ramps: the test is about the button
ramp_up_step_a = 16
ramp_up_interval_s = 0.1
[ocpp]
listen = "127.0.0.1:0"
[[charger]]
id = "garage"
protocol = "ocpp"
phases = "ABC"
min_a = 6
max_a = 16
[hardware]
led_pin = {led}
button_pin = {button}
"""


@pytest.fixture
def mock_pins():
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = old


async def until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def snap(**kw) -> dict:
    base = {"overloads": {}, "faults": [], "paused": None, "slow_mode": False,
            "meter": {"state": "ok"}, "chargers": [{"state": "charging", "reason": "max_a"}]}
    return base | kw


def test_each_state_has_its_pattern():
    assert pattern_for(snap()) == "steady"
    assert pattern_for(snap(chargers=[{"state": "limited", "reason": "site A headroom"}])) == "slow"
    assert pattern_for(snap(slow_mode=True)) == "slow"
    assert pattern_for(snap(overloads={"site A": 3.0})) == "fast"
    assert pattern_for(snap(meter={"state": "lost"})) == "double"
    assert pattern_for(snap(faults=["charger garage not connected"])) == "double"
    assert pattern_for(snap(paused=PAUSE_REASON)) == "paused"
    # the most urgent wins: an overload during a meter fault still blinks fast
    assert pattern_for(snap(overloads={"site A": 1.0}, meter={"state": "lost"})) == "fast"


async def test_led_plays_each_pattern_on_the_pin(mock_pins):
    led = StatusLed(LED(LED_PIN))
    pin = mock_pins.pin(LED_PIN)
    try:
        led.show("steady")
        assert pin.state
        for name in ("slow", "fast", "double", "paused"):
            pin.clear_states()
            led.show(name)
            await until(lambda: {s.state for s in pin.states[1:]} >= {True, False},
                        f"{name}: the pin blinks", 10)
        assert sum(PATTERNS["paused"]) / len(PATTERNS["paused"]) < 0.1  # mostly dark
        assert PATTERNS["slow"].count(1) * TICK_S == 1.0  # 1 s on, 1 s off
        led.show("off")
        await asyncio.sleep(3 * TICK_S)
        assert not pin.state
    finally:
        led.close()


CHARGING_A = 16.0


async def _site(tmp_path, meter_port: int):
    cfg = tmp_path / "evfuse.toml"
    cfg.write_text(CONFIG.format(port=meter_port, led=LED_PIN, button=BUTTON_PIN))
    return load_config(str(cfg))


async def test_button_pauses_resumes_and_slows_charging_end_to_end(tmp_path, mock_pins):
    env = {"STATE_DIRECTORY": str(tmp_path)}
    meter = MeterServer("sdm630")
    meter.set_all([4.0, 4.0, 4.0])
    port = await meter.start_tcp()
    config = await _site(tmp_path, port)
    controller, cp, panel = Controller(config), None, None
    try:
        panel = Panel.create(config.hardware, environ=env)
        panel.button.hold_time = 0.4  # the real one is 3 s; the logic is the same
        panel.apply(controller)
        await controller.start("127.0.0.1", 0)
        panel.start(lambda: controller)
        cp = SimChargePoint("garage", f"ws://127.0.0.1:{controller.ocpp_port}/garage", SimOptions())
        await cp.start()
        await cp.plug_in()
        await until(lambda: cp.composite_limit_a() == CHARGING_A, "charging at max_a", 60)
        await until(lambda: panel.led.pattern == "steady", "LED steady")

        button = mock_pins.pin(BUTTON_PIN)
        button.drive_low()  # short press
        await asyncio.sleep(0.05)
        button.drive_high()
        await until(lambda: cp.composite_limit_a() == 0, "charger paused")
        assert controller.user_pause == PAUSE_REASON
        await until(lambda: panel.led.pattern == "paused", "LED shows paused")
        assert '"paused": true' in (tmp_path / "button.json").read_text()

        button.drive_low()  # short press again: resume
        await asyncio.sleep(0.05)
        button.drive_high()
        await until(lambda: cp.composite_limit_a() == CHARGING_A, "charging again", 60)
        assert controller.user_pause is None

        button.drive_low()  # long press: slow mode, capped at fallback_a = 8 A
        await until(lambda: panel.slow, "long press seen", 10)
        button.drive_high()
        await until(lambda: cp.composite_limit_a() == 8.0, "capped at the fallback current")
        assert controller.user_pause is None  # the release after a hold is no short press
        await until(lambda: panel.led.pattern == "slow", "LED slow blink")
    finally:
        if cp is not None:
            await cp.stop()
        if panel is not None:
            await panel.close()
        await controller.stop()
        await meter.stop()


async def test_pause_survives_a_restart(tmp_path, mock_pins):
    (tmp_path / "button.json").write_text('{"paused": true, "slow": false}')
    meter = MeterServer("sdm630")
    meter.set_all([4.0, 4.0, 4.0])
    port = await meter.start_tcp()
    config = await _site(tmp_path, port)
    controller, cp = Controller(config), None
    panel = Panel.create(config.hardware, environ={"STATE_DIRECTORY": str(tmp_path)})
    try:
        panel.apply(controller)
        await controller.start("127.0.0.1", 0)
        panel.start(lambda: controller)
        assert controller.user_pause == PAUSE_REASON
        assert all(c.limit_a == 0 for c in controller.decision.chargers)  # from the first cycle
        cp = SimChargePoint("garage", f"ws://127.0.0.1:{controller.ocpp_port}/garage", SimOptions())
        await cp.start()
        await cp.plug_in()
        await until(lambda: cp.composite_limit_a() == 0, "charger held at 0")
    finally:
        if cp is not None:
            await cp.stop()
        await panel.close()
        await controller.stop()
        await meter.stop()


def test_no_hardware_section_touches_nothing():
    panel = Panel.create(None)
    assert panel.led is None and panel.button is None


def test_off_pi_one_log_line_and_no_crash(caplog, monkeypatch):
    old = Device.pin_factory
    Device.pin_factory = None  # let gpiozero look for a real pin library, as on a PC
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "lgpio")  # not installed here: fails to load
    try:
        with caplog.at_level(logging.WARNING, logger="evfuse.hardware"):
            panel = Panel.create(SimpleNamespace(led_pin=LED_PIN, button_pin=BUTTON_PIN))
    finally:
        Device.pin_factory = old
    assert panel.led is None and panel.button is None
    lines = [r for r in caplog.records if r.name == "evfuse.hardware"]
    assert len(lines) == 1 and "no GPIO" in lines[0].getMessage()


BOILER = """
[[load]]
id = "boiler"
driver = "shelly"
host = "127.0.0.1"
port = {port}
phases = "A"
power_w = 3000
lease_s = 10
"""


def _offs(shelly) -> int:
    return sum(1 for method, params in shelly.calls if method == "Switch.Set" and params.get("on") == "false")


async def test_slow_mode_caps_the_chargers_and_leaves_a_boiler_as_it_is(tmp_path, mock_pins, caplog):
    """Long press with a car and a boiler (Shelly emulator) on a 40 A fuse: the car goes down to
    the fallback current, the boiler stays on, all or nothing as before (never switched off)."""
    from controller.sim.shelly import SimShelly

    shelly = SimShelly(power_w=3000)
    shelly_port = await shelly.start()
    meter = MeterServer("sdm630")
    meter.set_all([4.0, 4.0, 4.0])
    port = await meter.start_tcp()
    cfg = tmp_path / "evfuse.toml"
    cfg.write_text(CONFIG.format(port=port, led=LED_PIN, button=BUTTON_PIN).replace("fuse_a = 25", "fuse_a = 40")
                   + BOILER.format(port=shelly_port))
    config = load_config(str(cfg))
    controller, cp, panel = Controller(config), None, None
    try:
        panel = Panel.create(config.hardware, environ={"STATE_DIRECTORY": str(tmp_path)})
        panel.button.hold_time = 0.4
        panel.apply(controller)
        await controller.start("127.0.0.1", 0)
        panel.start(lambda: controller)
        cp = SimChargePoint("garage", f"ws://127.0.0.1:{controller.ocpp_port}/garage", SimOptions())
        await cp.start()
        await cp.plug_in()
        await until(lambda: cp.composite_limit_a() == CHARGING_A and shelly.is_on(), "the car at 16 A, the boiler on", 60)
        boiler_before = controller.site.chargers[-1]
        offs = _offs(shelly)

        button = mock_pins.pin(BUTTON_PIN)
        with caplog.at_level(logging.WARNING, logger="evfuse.hardware"):
            button.drive_low()  # long press: slow mode
            await until(lambda: panel.slow, "long press seen", 10)
            button.drive_high()
        await until(lambda: cp.composite_limit_a() == 8.0, "the car capped at the fallback current")
        await asyncio.sleep(2.0)  # several decisions in slow mode
        assert shelly.is_on() and _offs(shelly) == offs, "slow mode switched the boiler off"
        boiler = controller.site.chargers[-1]
        assert boiler.kind == "switch" and boiler == boiler_before  # its whole current, as before
        assert [c.limit_a for c in controller.decision.chargers] == [8.0, boiler.max_a]
        assert any("switchable loads as they are" in r.getMessage() for r in caplog.records)
    finally:
        if cp is not None:
            await cp.stop()
        if panel is not None:
            await panel.close()
        await controller.stop()
        await meter.stop()
        await shelly.stop()
