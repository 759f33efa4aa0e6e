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

Switchable loads have their own table: what each was left at and since when, so the next
process times min_on_s / min_off_s from the last real switch (controller/core/switch.py):

     "loads": {"boiler": {"on": true, "switched_at": <unix time>, "lease_until": <unix time or null>,
                          "driver": "shelly"}}

`site` is where the main meter is (its host:port or serial device): a file left by another
site sharing the state directory (`evfuse demo` run by hand, a test) is foreign, never resumed.
Times in the file are wall clock (the next process has its own monotonic clock); they become
monotonic here. A missing, damaged or foreign file means a fresh start, logged once; a lease
never counts as longer than ocpp.lease_s from now, whatever the clock did in between.
"""

from __future__ import annotations

import logging
import math

from controller.core.draw import UNKNOWN, LoadMemory, high_now
from controller.core.resume import Saved
from controller.core.switch import Left, Start
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
    if not out and config.chargers:
        log.info("%s: no charger holds a limit from the last process: fresh start", FILE)
    out.update(_load_switches(config, data.get("loads"), now, wall))
    return out


def _load_switches(config, table, now: float, wall: float) -> dict[str, Left]:
    """Per load id, what the last process left it at (a damaged entry is left out: for that
    load the start is as if it had just switched)."""
    if not isinstance(table, dict):
        return {}
    loads = {x.id: x for x in config.loads}
    out: dict[str, Left] = {}
    for lid, e in table.items():
        x = loads.get(lid)
        if x is None or not isinstance(e, dict) or e.get("driver") != x.driver or not isinstance(e.get("on"), bool):
            continue
        at, until = e.get("switched_at"), e.get("lease_until")
        if not _number(at) or at > wall + CLOCK_SKEW_S or not (until is None or _number(until)):
            continue
        lease = None
        if until is not None and e["on"]:
            lease = now + min(until - wall, x.lease_s)  # never longer than a lease it can have
        out[lid] = Left(e["on"], now - max(0.0, wall - at), lease)
        log.info("load %s: the last process left it %s, switched %.0f s before now; its min_on_s / "
                 "min_off_s run from then if the device still reports it so", lid, "on" if e["on"] else "off",
                 max(0.0, wall - at), extra={"LOAD_ID": lid, "STATE": "found"})
    return out


def snapshot(site, loads: tuple[LoadMemory, ...], drivers, config, planned: bool,
             now: float, wall: float) -> dict:
    """The file's content for what the core and the drivers know now."""
    chargers, switches = {}, {}
    by_id = {c.id: c for c in config.chargers}
    for spec, mem, driver in zip(site.chargers, loads, drivers):
        if spec.kind == "switch":
            entry = _switch_entry(mem, driver, now, wall)
            if entry is not None:
                switches[spec.id] = entry
            continue
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
            "chargers": chargers, "loads": switches}


def _switch_entry(mem: LoadMemory, driver, now: float, wall: float) -> dict | None:
    """A switch's state and its last switch time: as the core commanded it, unless the device
    is elsewhere (switched off on stop, by its lease, by hand: then as the driver saw it)."""
    device = driver.switched()  # (on, since) as the device last said, or None
    s = mem.resume
    saved = (s.on, s.switched_at) if isinstance(s, Start) and s.on is not None and s.switched_at is not None else None
    if device is None:  # not heard in this process (a command to it never confirmed): as it was left
        if saved is None:
            return None
        on, at = saved
    elif mem.limit_a == UNKNOWN:  # heard, not decided yet: as the last process left it, if still so
        on, at = saved if saved is not None and saved[0] is device[0] else device
    else:
        on, at = mem.limit_a > 0, mem.changed_at
        if device[0] is not on:
            on, at = device
    if not math.isfinite(at):
        return None
    end = driver.lease_end() if on else None
    return {"on": on, "switched_at": round(wall - (now - at), 3),
            "lease_until": None if end is None else round(wall + end - now, 3), "driver": driver.config.driver}


def site_key(config) -> str:
    link = config.meter.link
    return link.device if link.transport == "rtu" else f"{link.host}:{link.port}"


def save(data: dict) -> bool:
    return write_json(FILE, data)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
