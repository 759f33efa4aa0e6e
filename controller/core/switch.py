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

Plain functions of plain data; time is passed in.
"""

from __future__ import annotations

from controller.core.causes import Cause
from controller.core.draw import UNKNOWN, LoadMemory
from controller.core.fill import Constraint, Want
from controller.core.site import ChargerSpec, SiteModel
from controller.model import ChargerReading

HELD_PRIORITY = -1_000_000  # above every configured priority (they are 1..100)


def is_on(mem: LoadMemory, reading: ChargerReading) -> bool:
    """It is switched on: commanded on, or (limit unknown) the device says it is on."""
    if mem.limit_a == UNKNOWN:
        return (reading.acked_a or 0.0) > 0
    return mem.limit_a > 0


def off_left(spec: ChargerSpec, mem: LoadMemory, reading: ChargerReading, now: float) -> float:
    """Seconds it must still stay off (0: it may switch on)."""
    if spec.min_off_s <= 0 or is_on(mem, reading):
        return 0.0
    if mem.limit_a == UNKNOWN:  # start or reconnect, the device off: off since now
        return spec.min_off_s
    return max(0.0, spec.min_off_s - (now - mem.changed_at))


def on_left(spec: ChargerSpec, mem: LoadMemory, reading: ChargerReading, now: float) -> float:
    """Seconds it must still stay on unless an overload cuts it (0: it may switch off)."""
    if spec.min_on_s <= 0 or not is_on(mem, reading):
        return 0.0
    if mem.limit_a == UNKNOWN:  # start or reconnect, the device on: on since now
        return spec.min_on_s
    return max(0.0, spec.min_on_s - (now - mem.changed_at))


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
