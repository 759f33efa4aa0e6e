"""MQTT topics and payloads of evfuse (the public contract of DESIGN.md section 3).

State, retained, JSON (built from the `evfuse status` snapshot, rounded so meter noise does
not republish every sample):
  <topic>/status                 "online"; "offline" on stop and as the last will
  <topic>/site                   paused, meter, per-phase load/headroom, faults, overrides
  <topic>/charger/<id>           connected, state, car, limit_a, draw_a, reason, mode, ...
  <topic>/load/<id>              a switchable load: connected, state (on/off/...), power_w, ...
Commands, not retained (a retained one is ignored: it would replay at every connect):
  <topic>/charger/<id>/mode/set      standard | solar-priority | solar-only | excess | off
  <topic>/charger/<id>/priority/set  whole number 1-100
  <topic>/charger/<id>/weight/set    number above 0 to 100
  <topic>/charger/<id>/max_a/set     number from the charger's min_a to its max_a in the file
  <topic>/load/<id>/mode/set         as for a charger
  <topic>/load/<id>/priority/set     as for a charger (a load has no weight or max_a)
  <topic>/pause/set                  ON | OFF
  <topic>/overrides/clear            any payload: every override cleared, back to the file
A charger id becomes one topic level: "+" and "#" in it are replaced by "_". A connector of a
charger with several ("twin/2") is one level below its charger: <topic>/charger/twin/2, and
its commands under that (<topic>/charger/twin/2/mode/set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.config import MODES

CHARGER_COMMANDS = ("mode", "priority", "weight", "max_a")
LOAD_COMMANDS = ("mode", "priority")


def segment(charger_id: str) -> str:
    """A charger id as one topic level."""
    return "".join("_" if c in "/+#" else c for c in charger_id) or "_"


def levels(load_id: str) -> str:
    """A charger's topic levels: one, or for a connector ("twin/2") its charger's and its number."""
    charger, _, connector = load_id.rpartition("/")
    if charger and connector.isdigit():
        return f"{segment(charger)}/{connector}"
    return segment(load_id)


@dataclass(frozen=True)
class Topics:
    base: str

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def site(self) -> str:
        return f"{self.base}/site"

    def charger(self, charger_id: str) -> str:
        return f"{self.base}/charger/{levels(charger_id)}"

    def command(self, charger_id: str, key: str) -> str:
        return f"{self.charger(charger_id)}/{key}/set"

    def load(self, load_id: str) -> str:
        return f"{self.base}/load/{segment(load_id)}"

    @property
    def pause(self) -> str:
        return f"{self.base}/pause/set"

    @property
    def clear(self) -> str:
        return f"{self.base}/overrides/clear"

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return (f"{self.base}/charger/+/+/set", f"{self.base}/charger/+/+/+/set", f"{self.base}/load/+/+/set",
                self.pause, self.clear)


class BadCommand(ValueError):
    """A command payload that is not a value of its kind (the message says what is allowed)."""


def parse_command(topics: Topics, topic: str, payload: bytes, charger_ids,
                  load_ids=()) -> tuple[str, str, object]:
    """(target, key, value) for Controller.set_override, or target "clear" for clear_overrides.
    Raises BadCommand for an unknown topic or a payload that is not a value of its kind; the
    range checks are the controller's (OverrideError)."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadCommand("payload is not UTF-8 text") from None
    if topic == topics.clear:
        return "clear", "", None
    if topic == topics.pause:
        value = {"ON": True, "OFF": False}.get(text.upper())
        if value is None:
            raise BadCommand(f"{text!r}: must be ON or OFF")
        return "site", "pause", value
    prefix = f"{topics.base}/charger/"
    if topic.startswith(f"{topics.base}/load/"):
        return _load_command(topics, topic, text, load_ids)
    rest = topic[len(prefix):].split("/") if topic.startswith(prefix) else []
    if len(rest) not in (3, 4) or rest[-1] != "set" or rest[-2] not in CHARGER_COMMANDS:
        raise BadCommand("unknown command topic; see docs/home-assistant.md")
    by_levels = {levels(i): i for i in charger_ids}
    target = "/".join(rest[:-2])  # a charger, or a charger and its connector
    if target not in by_levels:
        raise BadCommand(f"no charger {target!r} (known: {', '.join(sorted(by_levels)) or 'none'})")
    key = rest[-2]
    return by_levels[target], key, _value(key, text)


def _load_command(topics: Topics, topic: str, text: str, load_ids) -> tuple[str, str, object]:
    rest = topic[len(f"{topics.base}/load/"):].split("/")
    if len(rest) != 3 or rest[2] != "set" or rest[1] not in LOAD_COMMANDS:
        raise BadCommand("unknown load command topic; a load takes " + ", ".join(f"{k}/set" for k in LOAD_COMMANDS))
    by_segment = {segment(i): i for i in load_ids}
    if rest[0] not in by_segment:
        raise BadCommand(f"no load {rest[0]!r} (known: {', '.join(sorted(by_segment)) or 'none'})")
    return by_segment[rest[0]], rest[1], _value(rest[1], text)


def load_state(load: dict, overrides: dict) -> dict:
    """One switchable load from the snapshot."""
    return {k: load[k] for k in ("id", "connected", "state", "limit_a", "power_w", "measured_w", "learned_w",
                                 "reason", "mode", "priority", "min_on_s", "min_off_s", "fallback_protected")} | {
        "overrides": overrides.get(load["id"], {})}


def _value(key: str, text: str):
    if key == "mode":
        if text not in MODES:
            raise BadCommand(f"{text!r}: must be one of " + ", ".join(MODES))
        return text
    try:
        number = float(text)
    except ValueError:
        raise BadCommand(f"{text!r}: must be a number") from None
    if not math.isfinite(number):
        raise BadCommand(f"{text!r}: must be a finite number")
    if key == "priority":  # Home Assistant numbers may come as "2.0"
        if not number.is_integer():
            raise BadCommand(f"{text!r}: must be a whole number")
        return int(number)
    return number


# ---------------------------------------------------------------------- state payloads

def _r(x):
    return None if x is None else round(x, 1)


def site_state(snap: dict) -> dict:
    return {
        "paused": snap["paused"] is not None,
        "pause_reason": snap["paused"],
        "slow_mode": snap["slow_mode"],
        "meter": snap["meter"]["state"],
        "limit_a": snap["site"]["limit_a"],
        "phases": {p["phase"]: {"load_a": _r(p["load_a"]), "household_a": _r(p["household_a"]),
                                "headroom_a": _r(p["headroom_a"])} for p in snap["phases"]},
        "overloads": snap["overloads"],
        "fault": bool(snap["faults"]),
        "faults": snap["faults"],
        "overrides": snap.get("overrides", {}).get("site", {}),
    }


def charger_state(charger: dict, spec, overrides: dict) -> dict:
    """One charger from the snapshot, with the sharing keys the core runs on (file + overrides)."""
    draw = charger["draw_a"]
    return {
        "id": charger["id"],
        "connected": charger["connected"],
        "state": charger["state"],
        "car": charger["car"],
        "limit_a": _r(charger["limit_a"]),
        "draw_a": _r(max(draw)) if draw else None,  # the highest line
        "draw_lines_a": [_r(x) for x in draw] if draw else None,
        "reason": charger["reason"],
        "compliant": charger["compliant"],
        "mode": spec.mode,
        "priority": spec.priority,
        "weight": spec.weight,
        "max_a": spec.max_a,
        "min_a": spec.min_a,
        "overrides": overrides.get(charger["id"], {}),
    }
