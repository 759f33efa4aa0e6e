"""What the meter taught about the wiring, kept across restarts (state directory, wiring.json).

The core (controller/core/wiring.py) concludes from the meter's response to each load's own
changes; this edge keeps the conclusions, says each one once (journald: one line per
conclusion, with its evidence), and hands the runtime the wirings to run on:

- a *leaning* conclusion is reported (it may still turn); the configured wiring stands;
- a *strong* one that contradicts the wiring the site runs on is a remap: kept here with the
  `phases` the config had, and the runtime rebuilds its site with it;
- a change of that charger's `phases` in the config clears what was learned for it (the
  installer said something new), as does removing the charger;
- backwards clamps are reported with their fix; the core keeps not believing them.

File format: {"version": 1, "chargers": {id: {"configured", "detected", "score", "share",
"samples"}}}. A missing or damaged file is nothing learned.
"""

from __future__ import annotations

import logging

from controller import statedir
from controller.core.wiring import InversionConclusion, WiringConclusion

FILE = "wiring.json"


class LearnedWiring:
    def __init__(self, config, environ=None):
        self._env = environ
        data = statedir.read_json(FILE, **self._kw()) or {}
        raw = data.get("chargers") if isinstance(data, dict) else None
        self.kept: dict[str, dict] = {}
        for cid, entry in (raw or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("configured"), str) \
                    and isinstance(entry.get("detected"), str):
                self.kept[cid] = entry
        self.said: dict[str, str] = {}  # charger id or "clamp:X" -> the last line said about it
        self.clamps: tuple[InversionConclusion, ...] = ()
        self.leaning: dict[str, WiringConclusion] = {}
        self.cleared = self.refit(config)

    def _kw(self) -> dict:
        return {} if self._env is None else {"environ": self._env}

    def refit(self, config) -> list[str]:
        """Drop what was learned for chargers whose `phases` changed or that are gone."""
        phases = {c.id: c.phases for c in config.chargers}
        gone = [cid for cid, e in self.kept.items() if phases.get(cid) != e["configured"]]
        for cid in gone:
            del self.kept[cid]
        if gone:
            self._save()
        return gone

    def detected(self) -> dict[str, str]:
        """Charger id -> the wiring to run on instead of its configured `phases`."""
        return {cid: e["detected"] for cid, e in self.kept.items() if e["detected"] != e["configured"]}

    def update(self, config, conclusions: tuple[WiringConclusion, ...],
               clamps: tuple[InversionConclusion, ...]) -> tuple[bool, list[tuple[int, str, dict]]]:
        """New evidence: (the site must be rebuilt, log lines (level, text, journald fields))."""
        phases = {c.id: c.phases for c in config.chargers}
        lines: list[tuple[int, str, dict]] = []
        remap = False
        self.leaning = {}
        for c in conclusions:
            key = f"{c.strength}:{c.detected}"
            if self.said.get(c.id) == key:
                if c.strength == "leaning":
                    self.leaning[c.id] = c
                continue
            self.said[c.id] = key
            fields = {"CHARGER_ID": c.id, "WIRING_CONFIGURED": phases.get(c.id, c.configured),
                      "WIRING_DETECTED": c.detected, "WIRING_STRENGTH": c.strength,
                      "WIRING_SCORE": round(c.score, 1), "WIRING_SAMPLES": c.samples}
            if c.strength == "leaning":
                self.leaning[c.id] = c
                if c.contradicts:
                    lines.append((logging.WARNING, c.text() + "; keeping the configured wiring until "
                                  "the evidence is strong", fields))
                continue
            if c.contradicts and c.id in phases:
                self.kept[c.id] = {"configured": phases[c.id], "detected": c.detected,
                                   "score": round(c.score, 1), "share": round(c.share, 3),
                                   "samples": c.samples}
                self._save()
                remap = True
                lines.append((logging.WARNING, c.text() + f"; now running on \"{c.detected}\" (fix the "
                              f"config: phases = \"{c.detected}\")", fields))
            else:
                lines.append((logging.INFO, c.text(), fields))
        for f in clamps:
            key = f"clamp:{f.phase}"
            if self.said.get(key) != f.strength:
                self.said[key] = f.strength
                lines.append((logging.ERROR, f.text(), {"FAULT": "clamp-inverted", "PHASE": "ABC"[f.phase],
                                                        "WIRING_STRENGTH": f.strength,
                                                        "WIRING_SCORE": round(f.score, 1)}))
        self.clamps = clamps
        return remap, lines

    def status(self, config) -> dict:
        """For `evfuse status`: configured vs detected per charger, and backwards clamps."""
        out = {}
        for c in config.chargers:
            e = self.kept.get(c.id)
            lean = self.leaning.get(c.id)
            if e is not None:
                out[c.id] = {"configured": c.phases, "detected": e["detected"], "strength": "strong",
                             "score": e["score"], "samples": e["samples"]}
            elif lean is not None:
                out[c.id] = {"configured": c.phases, "detected": lean.detected, "strength": "leaning",
                             "score": round(lean.score, 1), "samples": lean.samples}
        return {"chargers": out,
                "clamps": [{"phase": "ABC"[f.phase], "strength": f.strength, "score": round(f.score, 1),
                            "fix": f'invert = "{"ABC"[f.phase]}"'} for f in self.clamps]}

    def _save(self) -> None:
        statedir.write_json(FILE, {"version": 1, "chargers": self.kept}, **self._kw())


def describe_kept(config, environ=None) -> list[str]:
    """check-config's lines: configured vs detected wiring learned by the running service."""
    learned = LearnedWiring.__new__(LearnedWiring)
    learned._env = environ
    data = statedir.read_json(FILE, **learned._kw()) or {}
    raw = data.get("chargers") if isinstance(data, dict) else {}
    lines = []
    for c in config.chargers:
        e = (raw or {}).get(c.id)
        if not isinstance(e, dict) or e.get("configured") != c.phases:
            continue
        lines.append(f'wiring: {c.id} configured phases = "{c.phases}", detected "{e.get("detected")}" '
                     f"from {e.get('samples')} changes (score {e.get('score')}); the service runs on the "
                     "detected wiring")
    return lines
