"""Home Assistant MQTT discovery: one device ("evfuse") with its entities.

Device-based discovery: one retained config message per part of the site, each carrying the
same device identifiers, so Home Assistant shows a single device:
  <prefix>/device/<node>/site/config           per-phase load and headroom, pause switch,
                                               faults binary sensor, clear-overrides button
  <prefix>/device/<node>/charger_<id>/config   limit, draw, state, reason sensors, mode select,
                                               priority / weight / max_a numbers, link sensor
  <prefix>/device/<node>/load_<id>/config      a switchable load: on/off and link binary
                                               sensors, power and reason sensors, mode select,
                                               priority number
<node> is the base topic made safe ([a-zA-Z0-9_-]). A removed charger's message is replaced
by an empty retained one, which removes its entities. Unique ids are derived from the base
topic and the charger id only, so they are stable across restarts; entity ids are suggested
with `default_entity_id` (`object_id` is deprecated).
"""

from __future__ import annotations

import re

from controller.config import MODES, ChargerConfig, Config, LoadConfig
from controller.model import SITE_PHASES
from controller.mqtt.topics import Topics



def slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", text).strip("_").lower() or "x"


class Discovery:
    def __init__(self, prefix: str, topics: Topics, version: str):
        self.prefix = prefix
        self.topics = topics
        self.node = slug(topics.base)
        self.version = version

    def site_topic(self) -> str:
        return f"{self.prefix}/device/{self.node}/site/config"

    def charger_topic(self, charger_id: str) -> str:
        return f"{self.prefix}/device/{self.node}/charger_{slug(charger_id)}/config"

    def load_topic(self, load_id: str) -> str:
        return f"{self.prefix}/device/{self.node}/load_{slug(load_id)}/config"

    @property
    def own_configs(self) -> str:
        """Subscription that finds every config message evfuse left on the broker."""
        return f"{self.prefix}/device/{self.node}/+/config"

    def _device_message(self, state_topic: str, components: dict) -> dict:
        return {
            "device": {"identifiers": [f"evfuse_{self.node}"], "name": "evfuse",
                       "manufacturer": "evfuse", "model": "EV charger load manager",
                       "sw_version": self.version},
            "origin": {"name": "evfuse", "sw_version": self.version},
            "availability_topic": self.topics.status,
            "state_topic": state_topic,
            "components": components,
        }

    def _uid(self, *parts: str) -> str:
        """The suggested object id ("evfuse_garage_limit"); the unique id adds "evfuse_" in
        front so it stays unique whatever the base topic is."""
        return "_".join([self.node, *map(slug, parts)])

    def _entity(self, platform: str, oid: str, name: str, **options) -> tuple[str, dict]:
        return oid, {"platform": platform, "unique_id": f"evfuse_{oid}",
                     "default_entity_id": f"{platform}.{oid}", "name": name, **options}

    def site(self, config: Config) -> dict:
        t = self.topics
        amps = {"device_class": "current", "unit_of_measurement": "A", "state_class": "measurement"}
        components = dict([
            *(self._entity("sensor", self._uid("phase", p, "load"), f"Load {p}",
                           value_template=f"{{{{ value_json.phases.{p}.load_a }}}}", **amps)
              for p in SITE_PHASES[: config.site.phases]),
            *(self._entity("sensor", self._uid("phase", p, "headroom"), f"Headroom {p}",
                           value_template=f"{{{{ value_json.phases.{p}.headroom_a }}}}", **amps)
              for p in SITE_PHASES[: config.site.phases]),
            self._entity("switch", self._uid("pause"), "Pause charging", command_topic=t.pause,
                         value_template="{{ 'ON' if value_json.paused else 'OFF' }}",
                         payload_on="ON", payload_off="OFF", icon="mdi:pause-circle"),
            self._entity("binary_sensor", self._uid("faults"), "Faults", device_class="problem",
                         value_template="{{ 'ON' if value_json.fault else 'OFF' }}",
                         json_attributes_topic=t.site,
                         json_attributes_template="{{ {'faults': value_json.faults} | tojson }}"),
            self._entity("sensor", self._uid("meter"), "Meter", value_template="{{ value_json.meter }}",
                         icon="mdi:meter-electric"),
            self._entity("button", self._uid("clear_overrides"), "Clear overrides",
                         command_topic=t.clear, payload_press="PRESS", icon="mdi:restore"),
        ])
        return self._device_message(t.site, components)

    def charger(self, c: ChargerConfig) -> dict:
        """c: the charger as the file has it (numbers are bounded by the file's max_a)."""
        t, i = self.topics, c.id
        amps = {"device_class": "current", "unit_of_measurement": "A", "state_class": "measurement"}
        components = dict([
            self._entity("sensor", self._uid(i, "limit"), f"{i} limit",
                         value_template="{{ value_json.limit_a }}", **amps),
            self._entity("sensor", self._uid(i, "draw"), f"{i} draw",
                         value_template="{{ value_json.draw_a }}", **amps),
            self._entity("sensor", self._uid(i, "state"), f"{i} state",
                         value_template="{{ value_json.state }}", icon="mdi:ev-station"),
            self._entity("sensor", self._uid(i, "reason"), f"{i} reason",
                         value_template="{{ value_json.reason }}", icon="mdi:information-outline"),
            self._entity("binary_sensor", self._uid(i, "link"), f"{i} link", device_class="connectivity",
                         value_template="{{ 'ON' if value_json.connected else 'OFF' }}"),
            self._entity("select", self._uid(i, "mode"), f"{i} mode", options=list(MODES),
                         command_topic=t.command(i, "mode"), value_template="{{ value_json.mode }}"),
            self._entity("number", self._uid(i, "priority"), f"{i} priority", min=1, max=100, step=1,
                         mode="box", command_topic=t.command(i, "priority"),
                         value_template="{{ value_json.priority }}"),
            self._entity("number", self._uid(i, "weight"), f"{i} weight", min=0.1, max=100, step=0.1,
                         mode="box", command_topic=t.command(i, "weight"),
                         value_template="{{ value_json.weight }}"),
            self._entity("number", self._uid(i, "max_a"), f"{i} max current", min=c.min_a, max=c.max_a,
                         step=0.5, mode="slider", unit_of_measurement="A", device_class="current",
                         command_topic=t.command(i, "max_a"), value_template="{{ value_json.max_a }}"),
        ])
        return self._device_message(t.charger(i), components)

    def load(self, x: LoadConfig) -> dict:
        """A switchable load ([[load]]): all or nothing, so no weight and no max current."""
        t, i = self.topics, x.id
        components = dict([
            self._entity("binary_sensor", self._uid("load", i, "on"), f"{i} on", device_class="power",
                         value_template="{{ 'ON' if value_json.state == 'on' else 'OFF' }}"),
            self._entity("sensor", self._uid("load", i, "power"), f"{i} power", device_class="power",
                         unit_of_measurement="W", state_class="measurement",
                         value_template="{{ value_json.measured_w if value_json.measured_w is not none "
                                        "else value_json.learned_w }}"),
            self._entity("sensor", self._uid("load", i, "reason"), f"{i} reason",
                         value_template="{{ value_json.reason }}", icon="mdi:information-outline"),
            self._entity("binary_sensor", self._uid("load", i, "link"), f"{i} link", device_class="connectivity",
                         value_template="{{ 'ON' if value_json.connected else 'OFF' }}"),
            self._entity("select", self._uid("load", i, "mode"), f"{i} mode", options=list(MODES),
                         command_topic=f"{t.load(i)}/mode/set", value_template="{{ value_json.mode }}"),
            self._entity("number", self._uid("load", i, "priority"), f"{i} priority", min=1, max=100, step=1,
                         mode="box", command_topic=f"{t.load(i)}/priority/set",
                         value_template="{{ value_json.priority }}"),
        ])
        return self._device_message(t.load(i), components)
