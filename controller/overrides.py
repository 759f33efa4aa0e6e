"""Overrides of the TOML set while the service runs (over MQTT, on the web page).

An override replaces one charger key of the config file (mode, priority, weight, max_a), or
pauses the whole site. It is validated by the rules the config file has for that key (same
ranges, same allowed values; max_a from the charger's min_a up to the file's max_a: an
override may lower a charger's cap, never raise it above what the installer wrote) and kept
in the state directory as overrides.json, so it survives a restart until it is cleared.

    store = Overrides.load(config)          # what overrides.json holds that still fits
    store.set(config, "garage", "weight", 2, "mqtt")
    effective = store.apply(config)         # the Config the core runs on
    store.as_dict()                         # {"garage": {"weight": 2.0}, "site": {"pause": True}}

Every change is written at once; a file that cannot be written is logged (statedir) and the
override still applies until the process ends.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

from controller import statedir
from controller.config import MODES, Config

log = logging.getLogger("evfuse.overrides")

FILE = "overrides.json"
SITE = "site"
CHARGER_KEYS = ("mode", "priority", "weight", "max_a")
LOAD_KEYS = ("mode", "priority")  # a switchable load ([[load]]) runs all or nothing: no weight, no max_a
PAUSE_REASONS = {"mqtt": "paused over MQTT", "web": "paused on the web page"}


class OverrideError(ValueError):
    """A rejected override: unknown target or key, or a value the config file would refuse."""


def pause_reason(source: str) -> str:
    return PAUSE_REASONS.get(source, f"paused by {source}")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def known(config: Config, target: str, key: str) -> None:
    """OverrideError unless TARGET.KEY is something that can be overridden."""
    if target == SITE:
        if key != "pause":
            raise OverrideError(f'site: unknown override "{key}"; allowed: pause')
        return
    if any(x.id == target for x in config.loads):
        if key not in LOAD_KEYS:
            raise OverrideError(f'load {target}: unknown override "{key}"; allowed: {", ".join(LOAD_KEYS)}')
        return
    if not any(c.id == target for c in config.chargers):
        known_ids = ", ".join(sorted([c.id for c in config.chargers] + [x.id for x in config.loads])) or "none"
        raise OverrideError(f'"{target}" names no charger or load (known: {known_ids}) and is not "site"')
    if key not in CHARGER_KEYS:
        raise OverrideError(f'charger {target}: unknown override "{key}"; allowed: {", ".join(CHARGER_KEYS)}')


def check(config: Config, target: str, key: str, value: Any) -> Any:
    """The value normalised as the config would hold it; OverrideError when it is not allowed."""
    known(config, target, key)
    if target == SITE:
        if not isinstance(value, bool):
            raise OverrideError(f"site.pause = {value!r}: must be true or false")
        return value
    kind = "load" if any(x.id == target for x in config.loads) else "charger"
    where = f"{kind} {target}.{key} = {value!r}"
    if key == "mode":
        if value not in MODES:
            raise OverrideError(f"{where}: must be one of " + ", ".join(f'"{m}"' for m in MODES))
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if key == "priority":  # config.py: whole number 1 to 100
        if not (number and isinstance(value, int) and 1 <= value <= 100):
            raise OverrideError(f"{where}: must be a whole number from 1 to 100")
        return value
    if key == "weight":  # config.py: number above 0 to 100
        if not (number and 0 < value <= 100):
            raise OverrideError(f"{where}: must be a number above 0 to 100")
        return float(value)
    charger = config.charger(target)
    lo, hi = charger.min_a, charger.max_a  # max_a: within [min_a, the file's max_a]
    if not (number and lo <= value <= hi):
        raise OverrideError(f"{where}: must be a number from {_fmt(lo)} (its min_a) to "
                            f"{_fmt(hi)} A (its max_a in {config.source})")
    return float(value)


class Overrides:
    def __init__(self, entries: dict[str, dict[str, tuple[Any, str]]] | None = None):
        self._entries = entries or {}  # target -> key -> (value, source)

    @classmethod
    def load(cls, config: Config) -> "Overrides":
        """What the state directory holds, less what the config no longer allows (logged)."""
        data = statedir.read_json(FILE)
        store = cls()
        if not isinstance(data, dict) or not isinstance(data.get("overrides"), dict):
            return store
        for target, keys in data["overrides"].items():
            for key, entry in (keys.items() if isinstance(keys, dict) else ()):
                try:
                    value, source = entry["value"], str(entry["source"])
                    store._entries.setdefault(target, {})[key] = (check(config, target, key, value), source)
                except (OverrideError, KeyError, TypeError) as e:
                    log.warning("override %s.%s from %s dropped: %s", target, key, FILE, e,
                                extra={"OVERRIDE": f"{target}.{key}", "FAULT": "override"})
        return store

    def refit(self, config: Config) -> list[str]:
        """Drop what a reloaded config no longer allows (a removed charger, a max_a above the
        new file's); the dropped ones, described, for the log."""
        dropped = []
        for target, keys in list(self._entries.items()):
            for key, (value, source) in list(keys.items()):
                try:
                    check(config, target, key, value)
                except OverrideError as e:
                    dropped.append(str(e))
                    del keys[key]
            if not keys:
                del self._entries[target]
        if dropped:
            self.save()
        return dropped

    def set(self, config: Config, target: str, key: str, value: Any, source: str) -> bool:
        """Set (or with value None clear) one override; True when something changed."""
        if target == SITE and value is False:
            check(config, target, key, value)
            value = None  # not paused is no override
        if value is None:
            known(config, target, key)
            if key not in self._entries.get(target, {}):
                return False
            del self._entries[target][key]
            if not self._entries[target]:
                del self._entries[target]
        else:
            value = check(config, target, key, value)
            if self._entries.get(target, {}).get(key, (None,))[0] == value:
                return False
            self._entries.setdefault(target, {})[key] = (value, source)
        self.save()
        return True

    def clear(self) -> bool:
        if not self._entries:
            return False
        self._entries = {}
        self.save()
        return True

    def save(self) -> None:
        statedir.write_json(FILE, {"version": 1, "overrides": {
            t: {k: {"value": v, "source": s} for k, (v, s) in keys.items()}
            for t, keys in self._entries.items()}})

    def pause_source(self) -> str | None:
        """Who paused the site (an override pause = True), else None."""
        value, source = self._entries.get(SITE, {}).get("pause", (False, ""))
        return source if value else None

    def apply(self, config: Config) -> Config:
        """The config with every charger override in place."""
        if not any(t != SITE for t in self._entries):
            return config
        chargers = tuple(replace(c, **{k: v for k, (v, _) in self._entries[c.id].items()})
                         if c.id in self._entries else c for c in config.chargers)
        loads = tuple(replace(x, **{k: v for k, (v, _) in self._entries[x.id].items()})
                      if x.id in self._entries else x for x in config.loads)
        return replace(config, chargers=chargers, loads=loads)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {t: {k: v for k, (v, _) in keys.items()} for t, keys in self._entries.items()}

    def sources(self) -> dict[str, dict[str, str]]:
        return {t: {k: s for k, (_, s) in keys.items()} for t, keys in self._entries.items()}
