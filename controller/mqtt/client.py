"""MqttBridge: evfuse on an MQTT broker (state out, commands in), beside the control loop.

The control loop never waits for MQTT: after every cycle the controller only marks the slot
"changed" (MqttBridge.changed, no I/O, no allocation). This task wakes on that mark, at most
every PUBLISH_INTERVAL_S, takes one status snapshot of the current controller and publishes
what differs from what it published last (retained). A dead broker only stops this task's
publishing: it reconnects with a bounded backoff and, once back, publishes status, discovery
and the whole state again. Commands become controller overrides (set_override); a bad one
changes nothing and is logged, at most once a minute per topic.

    bridge = MqttBridge(config.mqtt, get_controller, get_slow_mode)
    await bridge.start()    # returns at once; connects in the background
    ...
    await bridge.stop()     # "offline" published (bounded in time), disconnected
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from importlib import metadata

import aiomqtt

from controller.config import MqttConfig
from controller.mqtt.discovery import Discovery
from controller.mqtt.topics import BadCommand, Topics, charger_state, load_state, parse_command, site_state
from controller.overrides import OverrideError
from controller.status import snapshot

log = logging.getLogger("evfuse.mqtt")

PUBLISH_INTERVAL_S = 0.25  # at most four state passes a second
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0
TIMEOUT_S = 10.0  # one broker operation
STOP_TIMEOUT_S = 3.0
BAD_LOG_EVERY_S = 60.0
SOURCE = "mqtt"


def _version() -> str:
    try:
        return metadata.version("evfuse")
    except metadata.PackageNotFoundError:
        return "dev"


class MqttBridge:
    def __init__(self, config: MqttConfig, get_controller, get_slow_mode=lambda: False):
        self.config = config
        self.get_controller = get_controller
        self.get_slow_mode = get_slow_mode
        self.topics = Topics(config.topic)
        self.discovery = Discovery(config.discovery_prefix, self.topics, _version()) \
            if config.discovery_prefix else None
        self.connected = False
        self.published = 0  # state messages sent (for tests and the benchmark)
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._client: aiomqtt.Client | None = None
        self._sent: dict[str, bytes] = {}  # topic -> last payload published on this connection
        self._chargers: dict[str, str] = {}  # charger id -> its discovery topic, as announced
        self._announced = None  # the config whose discovery messages are on the broker
        self._bad_logged: dict[str, float] = {}
        # made once: loading the system's CAs reads files, which must not stall the loop per retry
        self._tls = ssl.create_default_context() if config.tls else None
        self._outage_logged = False
        self._stopping = False

    # ------------------------------------------------------------------ the controller's side

    def changed(self) -> None:
        """Called by the controller after every cycle: no I/O, returns at once."""
        self._changed.set()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run_forever(), name="mqtt")

    async def stop(self) -> None:
        if self._task is None:
            return
        client = self._client
        if client is not None and self.connected:
            try:
                await asyncio.wait_for(client.publish(self.topics.status, b"offline", qos=1, retain=True),
                                       STOP_TIMEOUT_S)
            except (aiomqtt.MqttError, asyncio.TimeoutError):
                pass
        # The cancel alone can be lost: Python 3.11's asyncio.wait_for (inside every aiomqtt
        # publish) returns the publish's result instead of raising when the confirmation comes
        # in the same moment, and the session would go on for good. The flag ends it then.
        self._stopping = True
        self._changed.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run_forever(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                async with self._make_client() as client:
                    self._client = client
                    await self._session(client)
            except aiomqtt.MqttError as e:
                backoff = BACKOFF_MIN_S if self.connected else backoff
                self._lost(str(e))
            except Exception as e:  # a bug here must never end MQTT for good, nor the service
                log.exception("MQTT task failed: reconnecting")
                self._lost(repr(e))
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _lost(self, why: str) -> None:
        """One warning per outage (not per retry)."""
        if self.connected or not self._outage_logged:
            log.warning("MQTT broker %s:%s unreachable (%s): retrying with backoff, control goes on",
                        self.config.host, self.config.port, why,
                        extra={"FAULT": "mqtt", "FAULT_STATE": "started"})
        self._outage_logged = True
        self.connected = False
        self._client = None

    def _make_client(self) -> aiomqtt.Client:
        c = self.config
        return aiomqtt.Client(
            c.host, c.port, username=c.username or None, password=c.password or None,
            identifier=f"evfuse-{self.discovery.node if self.discovery else c.topic.replace('/', '-')}",
            will=aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True),
            timeout=TIMEOUT_S, keepalive=30,
            tls_context=self._tls,
            max_queued_incoming_messages=1000,
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        self._sent.clear()
        self._announced = None
        await client.publish(self.topics.status, b"online", qos=1, retain=True)
        for topic in self.topics.subscriptions:
            await client.subscribe(topic, qos=1)
        if self.discovery is not None:
            await client.subscribe(self.discovery.own_configs, qos=1)
            await client.subscribe(f"{self.discovery.prefix}/status", qos=1)
        self.connected = True
        log.info("MQTT broker %s:%s connected", self.config.host, self.config.port,
                 extra={"FAULT": "mqtt", "FAULT_STATE": "ended"} if self._outage_logged else {})
        self._outage_logged = False
        reader = asyncio.create_task(self._read(client), name="mqtt commands")
        try:
            while not self._stopping:
                await self._publish_pass(client)
                await asyncio.sleep(PUBLISH_INTERVAL_S)
                if reader.done():
                    reader.result()  # raises the MqttError that ended it
                await self._wait_changed(reader)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _wait_changed(self, reader: asyncio.Task) -> None:
        waiter = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait([waiter, reader], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if reader.done():
            reader.result()
        self._changed.clear()

    # ------------------------------------------------------------------ state out

    async def _publish_pass(self, client: aiomqtt.Client) -> None:
        controller = self.get_controller()
        snap = snapshot(controller, self.get_slow_mode())
        effective = controller.effective_config
        specs = {c.id: c for c in effective.chargers}
        if self.discovery is not None and self._announced is not controller.config:
            await self._announce(client, controller.config)
            self._announced = controller.config
        await self._put(client, self.topics.site, site_state(snap))
        overrides = snap.get("overrides", {})
        for charger in snap["chargers"]:
            spec = specs.get(charger["id"])
            if spec is not None:
                await self._put(client, self.topics.charger(charger["id"]), charger_state(charger, spec, overrides))
        for gone in set(self._chargers) - set(specs):  # removed by a reload
            await self._forget(client, gone)
        loads = {x["id"] for x in snap.get("loads", ())}
        for load in snap.get("loads", ()):
            await self._put(client, self.topics.load(load["id"]), load_state(load, overrides))
        for gone in {t for t in self._sent if t.startswith(f"{self.topics.base}/load/")} - \
                {self.topics.load(i) for i in loads}:  # a load removed by a reload
            await client.publish(gone, b"", qos=1, retain=True)
            self._sent.pop(gone, None)

    async def _put(self, client: aiomqtt.Client, topic: str, data, qos: int = 0) -> None:
        payload = data if isinstance(data, bytes) else json.dumps(data, sort_keys=True).encode()
        if self._sent.get(topic) == payload:
            return
        await client.publish(topic, payload, qos=qos, retain=True)
        self._sent[topic] = payload
        self.published += 1

    async def _announce(self, client: aiomqtt.Client, config) -> None:
        d = self.discovery
        await self._put(client, d.site_topic(), d.site(config), qos=1)
        for c in config.chargers:
            topic = d.charger_topic(c.id)
            await self._put(client, topic, d.charger(c), qos=1)
            self._chargers[c.id] = topic
        for x in config.loads:
            await self._put(client, d.load_topic(x.id), d.load(x), qos=1)
        for gone in {t for t in self._sent if t.startswith(f"{d.prefix}/device/{d.node}/load_")} - \
                {d.load_topic(x.id) for x in config.loads}:  # a load removed by a reload: its entities go
            await client.publish(gone, b"", qos=1, retain=True)
            self._sent.pop(gone, None)

    async def _forget(self, client: aiomqtt.Client, charger_id: str) -> None:
        """A removed charger: its entities and its retained state go."""
        topic = self._chargers.pop(charger_id)
        for t in (topic, self.topics.charger(charger_id)):
            await client.publish(t, b"", qos=1, retain=True)
            self._sent.pop(t, None)
        log.info("MQTT: charger %s removed from Home Assistant", charger_id, extra={"CHARGER_ID": charger_id})

    # ------------------------------------------------------------------ commands in

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
            if self.discovery is not None and topic.startswith(f"{self.discovery.prefix}/"):
                await self._discovery_message(client, topic, payload, message.retain)
                continue
            if message.retain:
                self._bad(topic, "retained command ignored (publish commands without the retain flag)")
                continue
            self._command(topic, payload)

    def _command(self, topic: str, payload: bytes) -> None:
        controller = self.get_controller()
        try:
            target, key, value = parse_command(self.topics, topic, payload,
                                               [c.id for c in controller.config.chargers],
                                               [x.id for x in controller.config.loads])
            if target == "clear":
                controller.clear_overrides(SOURCE)
            else:
                controller.set_override(target, key, value, SOURCE)
        except (BadCommand, OverrideError) as e:
            self._bad(topic, str(e))

    def _bad(self, topic: str, why: str) -> None:
        now = time.monotonic()
        if len(self._bad_logged) > 100:  # topics come from outside: keep the memory bounded
            self._bad_logged = {t: at for t, at in self._bad_logged.items() if now - at < BAD_LOG_EVERY_S}
        if now - self._bad_logged.get(topic, -BAD_LOG_EVERY_S) >= BAD_LOG_EVERY_S:
            self._bad_logged[topic] = now
            log.warning("MQTT command on %s refused, nothing changed: %s", topic, why,
                        extra={"FAULT": "mqtt-command", "TOPIC": topic, "REASON": why})

    async def _discovery_message(self, client: aiomqtt.Client, topic: str, payload: bytes,
                                 retained: bool) -> None:
        if topic == f"{self.discovery.prefix}/status":
            if payload.strip() == b"online" and not retained:  # Home Assistant restarted: announce again
                self._sent.clear()
                self._announced = None
                self._changed.set()
            return
        config = self.get_controller().config
        current = {self.discovery.charger_topic(c.id) for c in config.chargers} | \
            {self.discovery.load_topic(x.id) for x in config.loads}
        if not payload or topic == self.discovery.site_topic() or topic in current:
            return
        # A config evfuse left for a charger that is gone (removed while it was stopped).
        await client.publish(topic, b"", qos=1, retain=True)
        try:
            state = json.loads(payload).get("state_topic")
        except (ValueError, AttributeError):
            state = None
        if isinstance(state, str) and state.startswith((f"{self.topics.base}/charger/", f"{self.topics.base}/load/")):
            await client.publish(state, b"", qos=1, retain=True)
        log.info("MQTT: stale Home Assistant entities removed (%s)", topic)
