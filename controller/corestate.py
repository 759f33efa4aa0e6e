"""core.json in the state directory: what each charger holds when a process ends, so the next
one resumes from it (controller/core/resume.py) instead of starting every car at its fallback.

    {"format": "evfuse-core/1", "planned": true, "saved_at": <unix time>, "site": <meter address>,
     "chargers": {"garage": {"limit_a": 16.0, "held_a": 16.0, "lease_until": <unix time>,
                             "carry": true, "mode": "standard", "max_a": 16.0,
                             "protocol": "ocpp", "paused_at": null}}}

limit_a is the limit commanded last, held_a the most the charger may hold until lease_until
(the higher of commanded and acknowledged, and a higher one it may still follow), lease_until
when its own lease or watchdog takes it to its fallback (carry false: only counted, never
resumed, e.g. a charger still holding a crashed process's limit). `planned` is true only when written
by a planned stop, after every lease was shortened (controller/runtime.py `stop`); written
while running (on limit changes, and as leases are renewed) it is false: after a crash the
next process counts what the chargers hold but starts them at their fallback.

`site` is where the main meter is (its host:port or serial device): a file left by another
site sharing the state directory (`evfuse demo` run by hand, a test) is foreign, never resumed.
Times in the file are wall clock (the next process has its own monotonic clock); they become
monotonic here. A missing, damaged or foreign file means a fresh start, logged once; a lease
never counts as longer than ocpp.lease_s from now, whatever the clock did in between.
"""

from __future__ import annotations

import logging
import math

from controller.core.draw import LoadMemory, high_now
from controller.core.resume import Saved
from controller.statedir import read_json, write_json

log = logging.getLogger("evfuse.state")

FILE = "core.json"
FORMAT = "evfuse-core/1"
CLOCK_SKEW_S = 5.0  # a file "saved" further in the future than this: the clock jumped back


def load(config, now: float, wall: float) -> dict[str, Saved]:
    """Per charger id, what the last process left it holding; {} for a fresh start."""
    data = read_json(FILE)
    if data is None:
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("chargers"), dict) \
            or data.get("site") != site_key(config):
        log.warning("%s is not a state file of this evfuse: ignored, fresh start", FILE,
                    extra={"FAULT": "state-file"})
        return {}
    saved_at = data.get("saved_at")
    if not _number(saved_at) or saved_at > wall + CLOCK_SKEW_S:
        log.warning("%s was saved at a time after now (clock set back?): ignored, fresh start", FILE,
                    extra={"FAULT": "state-file"})
        return {}
    planned = data.get("planned") is True
    chargers = {c.id: c for c in config.chargers}
    out: dict[str, Saved] = {}
    for cid, e in data["chargers"].items():
        c = chargers.get(cid)
        if c is None or not isinstance(e, dict) or e.get("protocol") != c.protocol:
            continue  # removed, or another device under the same name now
        limit, held, until = e.get("limit_a"), e.get("held_a"), e.get("lease_until")
        if not (_number(limit) and _number(held) and _number(until)) or limit < 0 or held < limit:
            continue
        left = min(until - wall, config.ocpp.lease_s)
        if left <= 0:
            continue
        paused = e.get("paused_at")
        paused_for = wall - paused if _number(paused) and paused <= wall else None
        carry = planned and e.get("carry", True) is not False
        out[cid] = Saved(float(limit), float(held), now + left, carry, paused_for)
        verb = "resumed at" if carry and c.mode != "off" else "counted at"
        log.info("%s: %s %.1f A from the last process (its lease runs %.0f s more)%s", cid, verb,
                 min(limit, c.max_a), left, "" if carry else ": no planned stop, so its fallback first",
                 extra={"CHARGER_ID": cid, "LIMIT_A": limit, "STATE": "resumed" if carry else "counted"})
    if not out:
        log.info("%s: no charger holds a limit from the last process: fresh start", FILE)
    return out


def snapshot(site, loads: tuple[LoadMemory, ...], drivers, config, planned: bool,
             now: float, wall: float) -> dict:
    """The file's content for what the core and the drivers know now."""
    chargers = {}
    by_id = {c.id: c for c in config.chargers}
    for spec, mem, driver in zip(site.chargers, loads, drivers):
        r = mem.resume
        limit, carry = mem.limit_a, True
        if limit < 0 and r is not None:  # stopped before its first decision: as it was saved
            limit, carry = (r.limit_a, True) if r.carry else (r.held_a, False)
        if limit < 0:
            continue  # not known (just started or reconnected): nothing to resume
        end = driver.lease_end()
        acked = driver.reading(now).acked_a
        held = max(limit, acked or 0.0, high_now(mem, now))
        if r is not None and now < r.until and (end is None or end < r.until):
            end, held = r.until, max(held, r.held_a)  # not talked to yet: it holds what was saved
        if end is None or end <= now:
            continue
        c = by_id.get(spec.id)
        chargers[spec.id] = {
            "limit_a": limit, "held_a": held, "carry": carry, "lease_until": math.ceil(wall + end - now),
            "mode": spec.mode, "max_a": spec.max_a, "protocol": c.protocol if c else "",
            "paused_at": None if mem.paused_at is None else round(wall - (now - mem.paused_at)),
        }
    return {"format": FORMAT, "planned": planned, "saved_at": round(wall, 3), "site": site_key(config),
            "chargers": chargers}


def site_key(config) -> str:
    link = config.meter.link
    return link.device if link.transport == "rtu" else f"{link.host}:{link.port}"


def save(data: dict) -> bool:
    return write_json(FILE, data)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
