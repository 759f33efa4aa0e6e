"""Switchable loads (boilers, heat pumps, pumps on a smart plug or relay): all or nothing.

A switch is a ChargerSpec of kind "switch" with min_a = max_a = its current when on, so the
allocator can only give it all of that or shed it, and every other rule of the core (the draw
model, break before make, shedding, the fast path, persistent-overload pauses, the blind
fallback of 0) applies to it as to a charger. What differs lives here:

- min_off_s instead of control.restart_delay_s: once off (for any reason) it stays off that
  long. After a start or a reconnect (its limit unknown) a device that reports itself off is
  treated as just switched off: what the device says is all evfuse knows of its history.
- min_on_s: once on, it is served before every other load (its priority rises above all) so
  the slow path does not switch it off to give its room to someone else. An overload measured
  on any constraint it is on removes that: it is cut by its configured priority at once, as
  the fast path cuts any load. A solar mode's "no surplus" waits for min_on_s too.

After a start (a restart of evfuse, DESIGN.md invariant 9) a switch is what its device says:
- until its device is heard it counts as on (it may be), unless the last process left it off,
  and for a device with a lease no longer than that lease (its driver says until when);
- before the first valid meter sample nothing is sent to it: a device found on stays on (a
  lease is not renewed, so without a sample it goes off by itself), for at most
  stale_after_s, then the blind rule (off);
- its first decision keeps it as found where its share allows (no off/on cycle); min_on_s and
  min_off_s run from the time the last process saved for that state (core.json), else from
  the start (as if it had just switched: the hold in full, the safe side for a compressor).
  An overload cuts it at once as ever.

Plain functions of plain data; time is passed in.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from controller.core.causes import Cause
from controller.core.draw import UNKNOWN, LoadMemory
from controller.core.fill import Constraint, Want
from controller.core.site import ChargerSpec, SiteModel
from controller.model import ChargerReading

HELD_PRIORITY = -1_000_000  # above every configured priority (they are 1..100)


class Left(NamedTuple):
    """A switch as the last process left it (core.json, controller/corestate.py)."""

    on: bool
    switched_at: float  # when it last switched to that state, on this process's monotonic clock
    until: float | None = None  # left on under a lease: when the device switches itself off


class Start(NamedTuple):
    """Kept in LoadMemory.resume from the start until the switch's first decision went out."""

    on: bool | None  # the state the last process left it in (None: nothing saved)
    switched_at: float | None  # ... since then (this process's clock)
    until: float  # without a meter sample it is left as its device is until then
    heard_on: bool | None = None  # what its device said last, before that first decision


def first_memory(spec: ChargerSpec, left, site: SiteModel, now: float) -> LoadMemory:
    """A switch's memory at the start: it may be on (its bound) unless it was left off, until
    its device is heard. `left`: a Left, a resume.Saved (the offline simulator) or None."""
    if left is not None and not isinstance(left, Left):  # a charger-style Saved: state, no time
        left = Left(left.limit_a > 0, -math.inf, left.until)
    if left is not None and left.on and left.until is not None and left.until <= now:
        left = Left(False, left.until)  # its lease switched it off meanwhile
    if left is None or left.on:
        high_until = math.inf if left is None or left.until is None else left.until
        high = spec.max_a
    else:
        high, high_until = 0.0, -math.inf
    switched_at = None if left is None or not math.isfinite(left.switched_at) else left.switched_at
    return LoadMemory(high_a=high, high_until=high_until,
                      resume=Start(None if left is None else left.on, switched_at, now + site.stale_after_s))


def starting(mem: LoadMemory) -> bool:
    return isinstance(mem.resume, Start)


def untouched(spec: ChargerSpec, mem: LoadMemory, now: float) -> bool:
    """Before the first meter sample after a start: nothing is sent to it (left as found)."""
    return spec.kind == "switch" and mem.limit_a == UNKNOWN and isinstance(mem.resume, Start) \
        and now < mem.resume.until


def relink(spec: ChargerSpec, mem: LoadMemory, reading: ChargerReading, now: float,
           response_s: float) -> LoadMemory:
    """Before a decision, for a switch still starting: note what its device says (the first
    word also ends its 'may be on' bound, but for response_s); once its first decision went
    out, its switch time is the saved one if that decision kept the state found (no switching
    happened), and the start is over."""
    s = mem.resume
    if mem.limit_a == UNKNOWN:
        if not (reading.online and reading.acked_a is not None):
            return mem
        on = reading.acked_a > 0
        if s.heard_on is None:
            return mem._replace(resume=s._replace(heard_on=on), high_until=min(mem.high_until, now + response_s))
        return mem if s.heard_on is on else mem._replace(resume=s._replace(heard_on=on))
    if s.heard_on is not None and (mem.limit_a > 0) is s.heard_on and s.on is s.heard_on \
            and s.switched_at is not None:
        return mem._replace(resume=None, changed_at=s.switched_at)
    return mem._replace(resume=None)


def is_on(mem: LoadMemory, reading: ChargerReading) -> bool:
    """It is switched on: commanded on, or (limit unknown) the device says it is on."""
    if mem.limit_a == UNKNOWN:
        return (reading.acked_a or 0.0) > 0
    return mem.limit_a > 0


def _since(mem: LoadMemory, on: bool, now: float) -> float:
    """When it switched to the state it is in."""
    if mem.limit_a != UNKNOWN:
        return mem.changed_at
    s = mem.resume
    if isinstance(s, Start) and s.on is on and s.switched_at is not None:
        return s.switched_at  # found as the last process left it: since then
    return now  # start or reconnect, nothing else known: as if it had just switched


def off_left(spec: ChargerSpec, mem: LoadMemory, reading: ChargerReading, now: float) -> float:
    """Seconds it must still stay off (0: it may switch on)."""
    if spec.min_off_s <= 0 or is_on(mem, reading):
        return 0.0
    return max(0.0, spec.min_off_s - (now - _since(mem, False, now)))


def on_left(spec: ChargerSpec, mem: LoadMemory, reading: ChargerReading, now: float) -> float:
    """Seconds it must still stay on unless an overload cuts it (0: it may switch off)."""
    if spec.min_on_s <= 0 or not is_on(mem, reading):
        return 0.0
    return max(0.0, spec.min_on_s - (now - _since(mem, True, now)))


def delays(spec: ChargerSpec, mem: LoadMemory, reading: ChargerReading, now: float) -> dict[int, float]:
    """The restart delay of a switch for decide's targets pass: {index: seconds} or {}."""
    left = off_left(spec, mem, reading, now)
    return {spec.index: left} if left > 0 else {}


def hold_on(site: SiteModel, wants: list[Want], targets: dict, memories: list[LoadMemory],
            readings: list[ChargerReading], constraints: list[Constraint],
            overloads: dict[str, float], now: float) -> list[Want]:
    """The wants with every switch inside its min_on_s served first. A switch its solar mode
    would stop (target 0 for lack of surplus) keeps its want meanwhile. Not while an overload
    is measured on a constraint it is on: then its configured priority decides, at once."""
    if not site.switches:
        return wants
    over = {i for c in constraints if c.name in overloads for i, _ in c.members}
    out = []
    for w in wants:
        spec = site.chargers[w.index]
        if spec.kind == "switch" and w.index not in over and \
                on_left(spec, memories[w.index], readings[w.index], now) > 0:
            w = w._replace(priority=HELD_PRIORITY)
        out.append(w)
    for i, (amps, cause, _) in list(targets.items()):
        spec = site.chargers[i]
        if spec.kind != "switch" or cause is not Cause.SURPLUS or i in over:
            continue
        if on_left(spec, memories[i], readings[i], now) > 0:
            del targets[i]
            out.append(Want(i, spec.min_a, spec.max_a, spec.weight, HELD_PRIORITY, running=True))
    return out
