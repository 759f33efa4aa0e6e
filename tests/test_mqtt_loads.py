"""MQTT for switchable loads against a real mosquitto broker: the retained state on
<topic>/load/<id>, its Home Assistant discovery message, and its commands (mode, priority) switching a boiler on the Shelly
emulator; what a load does not take (weight, max_a) is refused and changes nothing."""

from __future__ import annotations

import json

import pytest
from controller_kit import running, until
from mqtt_kit import Broker, Subscriber

from controller.config import MqttConfig
from controller.mqtt import MqttBridge
from controller.mqtt.topics import BadCommand, Topics, parse_command
from controller.sim.shelly import SimShelly

pytestmark = pytest.mark.timeout(90)


def _json(sub: Subscriber, topic: str):
    raw = sub.last.get(topic)
    return json.loads(raw) if raw else None


def test_load_command_topics():
    topics = Topics("evfuse")
    assert "evfuse/load/+/+/set" in topics.subscriptions
    assert parse_command(topics, "evfuse/load/boiler/mode/set", b"excess", [], ["boiler"]) == \
        ("boiler", "mode", "excess")
    assert parse_command(topics, "evfuse/load/boiler/priority/set", b"2", [], ["boiler"]) == \
        ("boiler", "priority", 2)
    for topic, payload in (("evfuse/load/boiler/weight/set", b"2"), ("evfuse/load/nope/mode/set", b"off"),
                           ("evfuse/load/boiler/mode/set", b"sometimes")):
        with pytest.raises(BadCommand):
            parse_command(topics, topic, payload, [], ["boiler"])


async def test_a_boiler_state_and_commands_over_mqtt(tmp_path):
    shelly = SimShelly(power_w=3000)
    port = await shelly.start()
    boiler = f'[[load]]\nid = "boiler"\ndriver = "shelly"\nhost = "127.0.0.1"\nport = {port}\npower_w = 3000\n'
    try:
        async with Broker(tmp_path) as broker, running(tmp_path, (), extra=boiler) as (site, controller), \
                Subscriber(broker.port, "evfuse/#", "homeassistant/#") as sub:
            site.extra_loads.append(lambda: (shelly.draw_a(), 0.0, 0.0))
            bridge = MqttBridge(MqttConfig(host="127.0.0.1", port=broker.port),
                                lambda: controller)
            controller.observers.append(bridge.changed)
            await bridge.start()
            try:
                await until(shelly.is_on, "the boiler on", 30)
                await sub.until(lambda: (_json(sub, "evfuse/load/boiler") or {}).get("state") == "on",
                                "the boiler's state on MQTT", 30)
                state = _json(sub, "evfuse/load/boiler")
                config = _json(sub, "homeassistant/device/evfuse/load_boiler/config")
                assert config["state_topic"] == "evfuse/load/boiler"
                assert config["components"]["evfuse_load_boiler_mode"]["command_topic"] == "evfuse/load/boiler/mode/set"
                assert "evfuse_load_boiler_weight" not in config["components"]
                assert state["power_w"] == 3000 and state["mode"] == "standard" and state["connected"]
                await until(lambda: bridge.connected, "the bridge connected")
                await sub.publish("evfuse/load/boiler/weight/set", "2")  # a load has no weight
                await sub.publish("evfuse/load/boiler/mode/set", "off")
                await until(lambda: not shelly.is_on(), "the boiler off by command", 15)
                assert controller.overrides == {"boiler": {"mode": "off"}}
                await sub.until(lambda: (_json(sub, "evfuse/load/boiler") or {}).get("mode") == "off",
                                "the override in the state")
                await sub.publish("evfuse/load/boiler/mode/set", "standard")
                await until(shelly.is_on, "the boiler on again", 15)
            finally:
                await bridge.stop()
    finally:
        await shelly.stop()
