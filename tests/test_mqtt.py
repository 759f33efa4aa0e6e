"""MQTT and Home Assistant discovery against a real mosquitto broker: the [mqtt] section,
discovery payloads, retained state, commands and their effect on the limits of real OCPP
charge points, bad payloads, a removed charger's entities, a broker that dies and comes back,
and the last will of a real `evfuse run` killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess

import pytest
from controller_kit import decisions, running, until
from e2e_kit import FAST, Service
from mqtt_kit import Broker, Subscriber

from controller.config import ConfigError, MqttConfig, load_config, parse_config
from controller.mqtt import MqttBridge
from controller.mqtt.discovery import Discovery
from controller.mqtt.topics import BadCommand, Topics, parse_command
from controller.sim.live_site import SimCharger

BASE = {"site": {"fuse_a": 25}, "meter": {"host": "127.0.0.1"}, "charger": [{"id": "garage"}]}


def _parse(mqtt):
    return parse_config({**BASE, "mqtt": mqtt}, "evfuse.toml")


def _problems(mqtt) -> str:
    with pytest.raises(ConfigError) as e:
        _parse(mqtt)
    return str(e.value)


def test_the_mqtt_section_is_validated_like_the_others():
    assert parse_config(BASE).mqtt is None
    cfg = _parse({"host": "broker.lan"}).mqtt
    assert cfg == MqttConfig(host="broker.lan", port=1883, topic="evfuse", discovery_prefix="homeassistant")
    assert _parse({"host": "b", "tls": True}).mqtt.port == 8883
    assert "evfuse.toml: mqtt.host: is required" in _problems({})
    assert "mqtt.hots: unknown key; allowed here: discovery_prefix, host, password, port, tls, topic, username" \
        in _problems({"host": "b", "hots": "x"})
    assert 'mqtt.topic = "evfuse/#": must be a topic like' in _problems({"host": "b", "topic": "evfuse/#"})
    assert 'mqtt.topic = "": must be a topic' in _problems({"host": "b", "topic": ""})
    assert 'mqtt.discovery_prefix = "/ha": must be a topic' in _problems({"host": "b", "discovery_prefix": "/ha"})
    assert _parse({"host": "b", "discovery_prefix": ""}).mqtt.discovery_prefix == ""
    assert 'mqtt.tls = "yes": must be true or false' in _problems({"host": "b", "tls": "yes"})
    assert "mqtt.username: is required with mqtt.password" in _problems({"host": "b", "password": "p"})
    assert "mqtt.port = 0: must be a whole number from 1 to 65535" in _problems({"host": "b", "port": 0})


def test_command_topics_and_payloads():
    t, ids = Topics("evfuse"), ["garage", "car/port"]
    assert parse_command(t, "evfuse/charger/garage/weight/set", b" 2.5 ", ids) == ("garage", "weight", 2.5)
    assert parse_command(t, "evfuse/charger/car_port/priority/set", b"2.0", ids) == ("car/port", "priority", 2)
    assert parse_command(t, "evfuse/charger/garage/mode/set", b"excess", ids) == ("garage", "mode", "excess")
    assert parse_command(t, "evfuse/pause/set", b"on", ids) == ("site", "pause", True)
    assert parse_command(t, "evfuse/pause/set", b"OFF", ids) == ("site", "pause", False)
    assert parse_command(t, "evfuse/overrides/clear", b"PRESS", ids)[0] == "clear"
    for topic, payload, why in (("evfuse/charger/garage/weight/set", b"heavy", "must be a number"),
                                ("evfuse/charger/garage/weight/set", b"nan", "finite"),
                                ("evfuse/charger/garage/priority/set", b"1.5", "whole number"),
                                ("evfuse/charger/garage/mode/set", b"turbo", "must be one of standard"),
                                ("evfuse/charger/porch/mode/set", b"off", "no charger 'porch'"),
                                ("evfuse/charger/garage/fuse_a/set", b"30", "unknown command topic"),
                                ("evfuse/pause/set", b"maybe", "must be ON or OFF"),
                                ("evfuse/pause/set", b"\xff", "not UTF-8")):
        with pytest.raises(BadCommand, match=why):
            parse_command(t, topic, payload, ids)


def test_discovery_is_one_device_with_stable_ids_and_current_conventions():
    cfg = parse_config({**BASE, "charger": [{"id": "garage", "max_a": 32}]})
    d = Discovery("homeassistant", Topics("evfuse"), "1.0")
    site, charger = d.site(cfg), d.charger(cfg.charger("garage"))
    assert d.site_topic() == "homeassistant/device/evfuse/site/config"
    assert d.charger_topic("garage") == "homeassistant/device/evfuse/charger_garage/config"
    assert site["device"]["identifiers"] == charger["device"]["identifiers"] == ["evfuse_evfuse"]
    for msg in (site, charger):
        assert msg["availability_topic"] == "evfuse/status"
        for oid, comp in msg["components"].items():
            assert comp["unique_id"] == f"evfuse_{oid}"
            assert comp["default_entity_id"] == f"{comp['platform']}.{oid}"
            assert "object_id" not in comp
    platforms = {oid: c["platform"] for oid, c in {**site["components"], **charger["components"]}.items()}
    assert platforms == {
        "evfuse_phase_a_load": "sensor", "evfuse_phase_b_load": "sensor", "evfuse_phase_c_load": "sensor",
        "evfuse_phase_a_headroom": "sensor", "evfuse_phase_b_headroom": "sensor",
        "evfuse_phase_c_headroom": "sensor", "evfuse_pause": "switch", "evfuse_faults": "binary_sensor",
        "evfuse_meter": "sensor", "evfuse_clear_overrides": "button",
        "evfuse_garage_limit": "sensor", "evfuse_garage_draw": "sensor", "evfuse_garage_state": "sensor",
        "evfuse_garage_reason": "sensor", "evfuse_garage_link": "binary_sensor", "evfuse_garage_mode": "select",
        "evfuse_garage_priority": "number", "evfuse_garage_weight": "number", "evfuse_garage_max_a": "number"}
    max_a = charger["components"]["evfuse_garage_max_a"]
    assert (max_a["min"], max_a["max"], max_a["command_topic"]) == (6.0, 32.0, "evfuse/charger/garage/max_a/set")
    assert d.site(cfg) == site  # the same config gives the same messages


# ------------------------------------------------------------------ against a real broker

TWO = (SimCharger("garage"), SimCharger("carport"))


def _mqtt_config(port: int, **extra) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, **extra)


class Bridged:
    """A Controller on a LiveSite with an MqttBridge to the broker, all stopped on exit."""

    def __init__(self, tmp_path, broker: Broker, chargers=TWO, **mqtt):
        self.tmp_path, self.broker, self.chargers, self.mqtt = tmp_path, broker, chargers, mqtt

    async def __aenter__(self):
        self._running = running(self.tmp_path, self.chargers)
        self.site, self.controller = await self._running.__aenter__()
        self.bridge = MqttBridge(_mqtt_config(self.broker.port, **self.mqtt), lambda: self.controller)
        self.controller.observers.append(self.bridge.changed)
        await self.bridge.start()
        return self

    async def __aexit__(self, *exc):
        try:
            await self.bridge.stop()
        finally:
            await self._running.__aexit__(*exc)

    def limit(self, cid):
        return self.site.points[cid].composite_limit_a()


def _json(sub: Subscriber, topic: str):
    raw = sub.last.get(topic)
    return json.loads(raw) if raw else None


async def test_discovery_state_and_status_are_retained(tmp_path):
    async with Broker(tmp_path) as broker, Bridged(tmp_path, broker) as b:
        await until(lambda: b.limit("garage") == b.limit("carport") == 10.5, "an even share", 60)
        await until(lambda: b.bridge.connected and b.bridge.published > 3, "state published")
        # a subscriber that comes later gets everything from the broker's retained store
        async with Subscriber(broker.port, "evfuse/#", "homeassistant/#") as sub:
            retained = ("evfuse/status", "evfuse/site", "evfuse/charger/garage", "evfuse/charger/carport",
                        "homeassistant/device/evfuse/site/config",
                        "homeassistant/device/evfuse/charger_carport/config")
            await sub.until(lambda: all(t in sub.last for t in retained), "the retained topics")
            first = {}
            for topic, _, retain in sub.messages:
                first.setdefault(topic, retain)
            assert all(first[t] for t in retained), first  # what it got first came from the store
            assert sub.last["evfuse/status"] == b"online"
            # Under load the controller may see a real overload at start and hold the garage
            # at 10.5 A as its cap (state "charging") for a while: wait for the even share to
            # settle as the share it is ("limited"), however long that takes.
            await sub.until(lambda: (_json(sub, "evfuse/charger/garage") or {}).get("state") == "limited" and
                            _json(sub, "evfuse/charger/garage")["limit_a"] == 10.5 and
                            _json(sub, "evfuse/charger/garage")["draw_a"] is not None,
                            "garage limited to its share, with a draw", 60)
            garage = _json(sub, "evfuse/charger/garage")
            assert {k: garage[k] for k in ("connected", "state", "mode", "priority", "weight", "max_a")} == \
                {"connected": True, "state": "limited", "mode": "standard", "priority": 1, "weight": 1.0,
                 "max_a": 16.0}
            assert garage["reason"] and garage["car"] == "charging" and garage["draw_a"] is not None
            site = _json(sub, "evfuse/site")
            assert site["paused"] is False and site["meter"] == "ok" and set(site["phases"]) == {"A", "B", "C"}
            assert site["phases"]["A"]["headroom_a"] is not None
            config = _json(sub, "homeassistant/device/evfuse/charger_carport/config")
            assert config["state_topic"] == "evfuse/charger/carport"
            assert "evfuse_carport_mode" in config["components"]
            assert _json(sub, "homeassistant/device/evfuse/site/config")["components"]["evfuse_pause"][
                "command_topic"] == "evfuse/pause/set"


async def test_commands_change_the_limits_and_persist_as_overrides(tmp_path):
    async with Broker(tmp_path) as broker, Bridged(tmp_path, broker) as b, \
            Subscriber(broker.port, "evfuse/#") as sub:
        await until(lambda: b.limit("garage") == b.limit("carport") == 10.5, "an even share", 60)
        await until(lambda: b.bridge.connected, "the bridge connected")
        await sub.publish("evfuse/charger/garage/weight/set", "2")
        await until(lambda: b.limit("garage") == 14.0 and b.limit("carport") == 7.0, "a 2:1 share", 60)
        await sub.until(lambda: (_json(sub, "evfuse/charger/garage") or {}).get("weight") == 2.0,
                        "the new weight in the state")
        assert _json(sub, "evfuse/charger/garage")["overrides"] == {"weight": 2.0}
        await sub.publish("evfuse/charger/carport/mode/set", "off")
        await until(lambda: b.limit("carport") == 0, "carport off")
        await sub.publish("evfuse/pause/set", "ON")
        await until(lambda: b.limit("garage") == 0, "everything paused")
        await sub.until(lambda: (_json(sub, "evfuse/site") or {}).get("pause_reason") == "paused over MQTT",
                        "the pause in the site state")
        assert b.controller.overrides == {"garage": {"weight": 2.0}, "carport": {"mode": "off"},
                                          "site": {"pause": True}}
        await sub.publish("evfuse/overrides/clear", "PRESS")
        # both cars restart together: a household estimate a little high for a moment may leave
        # them within the dead band (0.5 A) below 10.5 A, a gap closed only after BAND_HOLD_S
        await until(lambda: all(abs(b.limit(c) - 10.5) <= 0.5 for c in ("garage", "carport")),
                    "the file's share again", 60,
                    show=lambda: f"limits {b.limit('garage')}/{b.limit('carport')}; {decisions(b.controller)}")
        assert b.controller.overrides == {}
        await sub.until(lambda: (_json(sub, "evfuse/site") or {}).get("overrides") == {} and
                        _json(sub, "evfuse/site")["paused"] is False, "no overrides in the state")


async def test_bad_payloads_change_nothing_are_logged_once_and_the_service_runs_on(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with Broker(tmp_path) as broker, Bridged(tmp_path, broker) as b, \
            Subscriber(broker.port, "evfuse/#") as sub:
        await until(lambda: b.limit("garage") == b.limit("carport") == 10.5, "an even share", 60)
        await until(lambda: b.bridge.connected, "the bridge connected")
        for topic, payload in (("evfuse/charger/garage/weight/set", "heavy"),
                               ("evfuse/charger/garage/weight/set", "-1"),
                               ("evfuse/charger/garage/weight/set", "0"),
                               ("evfuse/charger/garage/max_a/set", "99"),
                               ("evfuse/charger/porch/mode/set", "off"),
                               ("evfuse/charger/garage/mode/set", "turbo"),
                               ("evfuse/pause/set", "perhaps")):
            await sub.publish(topic, payload)
        await sub.publish("evfuse/charger/carport/weight/set", "3")  # a good one after them all
        await until(lambda: b.controller.overrides == {"carport": {"weight": 3.0}}, "the good command")
        refused = [r for r in caplog.records if getattr(r, "FAULT", None) == "mqtt-command"]
        topics = [r.TOPIC for r in refused]
        assert topics.count("evfuse/charger/garage/weight/set") == 1  # three bad ones, logged once
        assert set(topics) == {"evfuse/charger/garage/weight/set", "evfuse/charger/garage/max_a/set",
                               "evfuse/charger/porch/mode/set", "evfuse/charger/garage/mode/set",
                               "evfuse/pause/set"}
        assert any("to 16 A" in r.REASON for r in refused)
        await until(lambda: b.limit("carport") > b.limit("garage"), "the weight applied", 60)


async def test_a_retained_command_is_not_replayed_at_connect(tmp_path, caplog):
    async with Broker(tmp_path) as broker:
        async with Subscriber(broker.port) as pub:  # someone published a command with retain
            await pub.publish("evfuse/charger/carport/mode/set", "off", retain=True)
        async with Bridged(tmp_path, broker) as b:
            await until(lambda: b.limit("garage") == b.limit("carport") == 10.5, "an even share", 60)
            assert b.controller.overrides == {}
            assert any("retained command ignored" in getattr(r, "REASON", "") for r in caplog.records)


async def test_a_removed_charger_loses_its_entities(tmp_path):
    async with Broker(tmp_path) as broker, Bridged(tmp_path, broker) as b, \
            Subscriber(broker.port, "evfuse/#", "homeassistant/#") as sub:
        topic = "homeassistant/device/evfuse/charger_carport/config"
        await sub.until(lambda: sub.last.get(topic), "carport announced")
        await sub.until(lambda: sub.last.get("evfuse/charger/carport"), "carport's state")
        path = tmp_path / "evfuse.toml"
        text = path.read_text()
        path.write_text(text.replace('[[charger]]\nid = "carport"', '[[charger]]\nid = "street"'))
        await b.controller.retune(load_config(path))
        await sub.until(lambda: sub.last.get(topic) == b"" and sub.last.get("evfuse/charger/carport") == b"",
                        "carport's config and state cleared")
        await sub.until(lambda: sub.last.get("homeassistant/device/evfuse/charger_street/config"),
                        "street announced")


async def test_entities_left_from_a_charger_removed_while_stopped_are_cleared(tmp_path):
    async with Broker(tmp_path) as broker:
        async with Subscriber(broker.port, "evfuse/#", "homeassistant/#") as sub:
            stale = "homeassistant/device/evfuse/charger_old/config"
            await sub.publish(stale, json.dumps({"state_topic": "evfuse/charger/old", "components": {}}),
                              retain=True)
            await sub.publish("evfuse/charger/old", "{}", retain=True)
            async with Bridged(tmp_path, broker):
                await sub.until(lambda: sub.last.get(stale) == b"" and sub.last.get("evfuse/charger/old") == b"",
                                "the stale config and state cleared")
                assert sub.last.get("homeassistant/device/evfuse/charger_garage/config")


async def test_a_dead_broker_changes_nothing_in_control_and_state_comes_back(tmp_path):
    async with Broker(tmp_path) as broker, Bridged(tmp_path, broker) as b:
        await until(lambda: b.limit("garage") == b.limit("carport") == 10.5, "an even share", 60)
        await until(lambda: b.bridge.connected, "the bridge connected")
        await broker.kill()
        await until(lambda: not b.bridge.connected, "the bridge noticed")
        cycles = b.controller.cycles
        await asyncio.sleep(3.0)
        assert b.controller.cycles > cycles + 5  # the control loop went on
        assert b.limit("garage") == b.limit("carport") == 10.5
        b.controller.set_override("garage", "weight", 2, "web")  # changed while the broker is away
        await broker.start()  # same port, empty: no retained messages survived
        async with Subscriber(broker.port, "evfuse/#", "homeassistant/#") as sub:
            await sub.until(lambda: sub.last.get("evfuse/status") == b"online" and
                            (_json(sub, "evfuse/charger/garage") or {}).get("weight") == 2.0,
                            "status and the current state published again", 60)
            await sub.until(lambda: sub.last.get("homeassistant/device/evfuse/site/config"),
                            "discovery again")


async def test_stop_ends_the_bridge_even_when_a_publish_loses_the_cancel(tmp_path):
    # Python 3.11's asyncio.wait_for (in every aiomqtt publish) returns the publish's result
    # instead of raising when the cancel and the broker's confirmation come in the same moment:
    # `evfuse run` then hung on SIGTERM now and then. Here one pass loses the cancel for sure.
    async with Broker(tmp_path) as broker, Subscriber(broker.port, "evfuse/status") as sub, \
            Bridged(tmp_path, broker) as b:
        await until(lambda: b.bridge.connected and b.bridge.published > 0, "state published")
        await sub.until(lambda: sub.last.get("evfuse/status") == b"online", "online")
        real, parked, lost = b.bridge._publish_pass, asyncio.Event(), []

        async def pass_that_loses_a_cancel(client):
            await real(client)
            if lost:
                return
            parked.set()
            try:
                await asyncio.sleep(60)  # the stop's cancel lands here ...
            except asyncio.CancelledError:
                lost.append(True)  # ... and is lost, as in that wait_for

        b.bridge._publish_pass = pass_that_loses_a_cancel
        await asyncio.wait_for(parked.wait(), 30)
        await asyncio.wait_for(b.bridge.stop(), 20)
        assert lost == [True]  # the cancel was lost, and the bridge stopped all the same
        await sub.until(lambda: sub.last.get("evfuse/status") == b"offline", "offline on stop", 10)


async def test_username_and_password(tmp_path, caplog):
    async with Broker(tmp_path, users={"evfuse": "s3cret"}) as broker, \
            Bridged(tmp_path, broker, username="evfuse", password="s3cret") as b:
        await until(lambda: b.bridge.connected, "connected with a password", 30)
    async with Broker(tmp_path, users={"evfuse": "s3cret"}) as broker, \
            Bridged(tmp_path, broker, username="evfuse", password="wrong") as b:
        await until(lambda: "authori" in caplog.text.lower(), "the login refused", 30)
        assert not b.bridge.connected
        assert b.controller.cycles > 0


async def test_tls_checks_the_brokers_certificate(tmp_path, monkeypatch, caplog):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    async with Broker(tmp_path, tls=(cert, key)) as broker:
        async with Bridged(tmp_path, broker, tls=True) as b:  # not signed by a CA it trusts
            await until(lambda: "certificate verify failed" in caplog.text, "the certificate refused", 30)
            assert not b.bridge.connected
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now it is: the system's CA file
        async with Bridged(tmp_path, broker, tls=True) as b:
            await until(lambda: b.bridge.connected, "connected over TLS", 30)


async def test_last_will_on_sigkill_and_offline_on_stop(tmp_path):
    async with Broker(tmp_path) as broker, Subscriber(broker.port, "evfuse/status") as sub:
        mqtt = f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        async with Service((SimCharger("garage"),), control=FAST + mqtt, tmp_path=tmp_path) as svc:
            await sub.until(lambda: sub.last.get("evfuse/status") == b"online", "online", 30)
            await svc.until(lambda: svc.limit("garage") == 16.0, "charging")
            svc.proc.kill()  # SIGKILL: no goodbye; the broker sends the will
            await svc.until(lambda: svc.proc.returncode is not None, "killed", 10, service_may_exit=True)
            await sub.until(lambda: sub.last.get("evfuse/status") == b"offline", "the last will", 30)
        sub.last.clear()
        async with Service((SimCharger("garage"),), control=FAST + mqtt, tmp_path=tmp_path) as svc:
            await sub.until(lambda: sub.last.get("evfuse/status") == b"online", "online again", 30)
            assert await svc.signal(signal.SIGTERM) == 0
            await sub.until(lambda: sub.last.get("evfuse/status") == b"offline", "offline on stop", 10)


# ------------------------------------------------------------------ connectors

def test_a_connector_is_one_level_below_its_charger():
    t, ids = Topics("evfuse"), ["twin/1", "twin/2", "garage"]
    assert t.charger("twin/2") == "evfuse/charger/twin/2"
    assert t.command("twin/2", "mode") == "evfuse/charger/twin/2/mode/set"
    assert "evfuse/charger/+/+/+/set" in t.subscriptions
    assert parse_command(t, "evfuse/charger/twin/2/weight/set", b"3", ids) == ("twin/2", "weight", 3.0)
    assert parse_command(t, "evfuse/charger/garage/mode/set", b"off", ids) == ("garage", "mode", "off")
    for topic in ("evfuse/charger/twin/weight/set", "evfuse/charger/twin/3/weight/set"):
        with pytest.raises(BadCommand, match="no charger"):
            parse_command(t, topic, b"3", ids)


async def test_a_twins_connectors_have_their_own_state_and_commands(tmp_path):
    from controller.sim.chargepoint import SimOptions
    from controller.sim.live_site import SimConnector

    twin = (SimCharger("twin", options=SimOptions(connectors=2), max_a=21,
                       connectors=(SimConnector(1, "ABC", 16), SimConnector(2, "ABC", 16))),)
    async with Broker(tmp_path) as broker, Bridged(tmp_path, broker, chargers=twin) as b, \
            Subscriber(broker.port, "evfuse/#") as sub:
        points = lambda: b.site.points["twin"].draws_a()  # noqa: E731
        await until(lambda: b.bridge.connected and points() == {1: 10.5, 2: 10.5}, "an even share of 21 A", 60)
        await sub.until(lambda: (_json(sub, "evfuse/charger/twin/2") or {}).get("limit_a") == 10.5,
                        "connector 2's own state")
        assert _json(sub, "evfuse/charger/twin/2")["id"] == "twin/2"
        await sub.publish("evfuse/charger/twin/2/weight/set", "2")
        await until(lambda: points() == {1: 7.0, 2: 14.0}, "a 1:2 share inside the twin's 21 A", 60)
        assert b.controller.overrides == {"twin/2": {"weight": 2.0}}
