"""Resume after a restart: a load keeps what the last process left it holding (DESIGN.md
section 1, invariants 1, 5, 7 and 9).

A planned stop (SIGTERM) leaves every charger at its limit under a short lease and the runtime
records it in the state directory; on start it hands that back here as `Saved` values, times
already on this process's monotonic clock. For a load whose saved lease still runs:

- it is counted at what it truly holds, the higher of the limit commanded and acknowledged,
  until that lease ends, also while its link is not up yet (invariant 1);
- before the first valid meter sample it is kept at its limit: never raised, and never
  promised beyond the saved lease (the runtime keeps its driver quiet until then), so if no
  sample comes it falls back by itself when that lease ends, as it would with evfuse gone
  (invariants 5 and 7);
- once a valid sample came it carries on at its limit as a running load: no fallback, no
  ramp from min_a, no restart delay. The normal passes cut it at once if the room is not there.

A state saved while running (the process then crashed) is only counted, never resumed: its
lease was not shortened, and the start goes as without it (fallback). The new config wins: a
load removed or now mode "off" is not resumed, and none above its new max_a.

A switchable load is resumed from what its device reports, with its switch time from the saved
state (controller/core/switch.py: `Left`, `Start`); this module hands it over.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

from controller.core import switch
from controller.core.draw import UNKNOWN, LoadMemory
from controller.core.site import SiteModel
from controller.model import ChargerReading


class Saved(NamedTuple):
    """One load as the last process left it."""

    limit_a: float  # the limit it commanded last
    held_a: float  # the most the charger may hold until `until` (commanded, acknowledged, in flight)
    until: float  # when that lease ends, on this process's monotonic clock
    planned: bool  # left by a planned stop (leases shortened): resume; else only count it
    paused_for_s: float | None = None  # paused by the allocator this long ago (restart delay)


class Resume(NamedTuple):
    """Kept in LoadMemory.resume while the load is being resumed or counted."""

    limit_a: float  # carried on at this (UNKNOWN when only counted)
    held_a: float
    until: float
    carry: bool


def memories(site: SiteModel, saved: dict[str, Saved], now: float) -> tuple[LoadMemory, ...]:
    """The core's first memory of every load: a fresh one, or one that remembers what the last
    process left it holding."""
    out = []
    for spec in site.chargers:
        s = saved.get(spec.id)
        if spec.kind == "switch":
            out.append(switch.first_memory(spec, s, site, now))
            continue
        if s is None or not now < s.until or not (s.held_a >= 0 and s.limit_a >= 0) \
                or not all(map(math.isfinite, (s.limit_a, s.held_a, s.until))):
            out.append(LoadMemory())
            continue
        limit = min(s.limit_a, spec.max_a)
        # Mode "off" now, or a limit the charger cannot run at any more (a new min_a): start as
        # without a saved state. Only a planned stop shortened the lease that bounds the resume.
        carry = s.planned and spec.mode != "off" and (limit == 0 or limit >= spec.min_a)
        paused = None
        if carry and limit == 0 and s.paused_for_s is not None and s.paused_for_s >= 0:
            paused = now - s.paused_for_s
        out.append(LoadMemory(high_a=max(s.held_a, limit), high_until=s.until, paused_at=paused,
                              resume=Resume(limit if carry else UNKNOWN, s.held_a, s.until, carry)))
    return tuple(out)


def relink(site: SiteModel, loads: tuple[LoadMemory, ...], first_sample_seen: bool,
           readings: list[ChargerReading], now: float) -> tuple[tuple[LoadMemory, ...], list[ChargerReading]]:
    """Before a decision: the readings and memories of loads being resumed, as they truly are.
    A link this process has not brought up yet holds what was saved until the saved lease ends;
    a link that came up holding exactly the limit this process gave it (its driver sent it on
    connecting) is no unknown reconnect. The resume ends with its lease, or once a valid sample was decided on with the
    link up. Returns the inputs themselves when nothing is being resumed."""
    if not any(m.resume is not None for m in loads):
        return loads, readings
    mems, out = list(loads), list(readings)
    settle = now + site.control.response_s
    for spec, r, m in zip(site.chargers, readings, loads):
        e, i = m.resume, spec.index
        if e is None:
            continue
        if not isinstance(e, Resume):  # a switch starting
            mems[i] = switch.relink(spec, m, r, now, site.control.response_s)
            continue
        if now >= e.until:  # its own fallback now: the normal rules from here
            mems[i] = m._replace(resume=None)
        elif not r.online:
            if r.lease_until is None:  # not talked to since the start: it holds what was saved
                out[i] = replace(r, lease_until=e.until, acked_a=e.held_a if r.acked_a is None else r.acked_a)
        elif r.acked_a is not None and r.acked_a == m.limit_a:
            # Up, holding what this process gave it: it follows that within response_s.
            m = m._replace(high_until=min(m.high_until, settle))
            if m.offline:  # no unknown reconnect: it holds exactly its limit (the car follows)
                m = m._replace(offline=False, lease_until=None)
            mems[i] = m._replace(resume=None) if first_sample_seen else m
    return tuple(mems), out


def kept(mem: LoadMemory, now: float) -> float | None:
    """Before the first valid sample: the limit a resumed load keeps (None: the fallback rules)."""
    e = mem.resume
    if not carried(mem) or now >= e.until:
        return None
    return e.limit_a


def carried(mem: LoadMemory) -> bool:
    """It is being resumed at its saved limit (its driver stays quiet meanwhile)."""
    return isinstance(mem.resume, Resume) and mem.resume.carry
