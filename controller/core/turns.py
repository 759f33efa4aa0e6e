"""Changes the meter can tell apart (DESIGN.md invariant 8): loads whose car's phases are not
known start and rise one at a time.

A charger that reports no per-line currents (power only, or nothing) is learned from the
meter's response to the load's own changes (controller/core/wiring.py): one phase responding
alone to a start is a 1-phase car on that phase (controller/core/phases.py). That needs each
change to stand alone on the meter for response_s + the attribution slack. Three cars plugged
in at once would otherwise start in the same second, the meter could not tell them apart, and
every later step of each would be counted as household: each held on every wired phase to the
fullest phase's room for as long as it charges.

So, for the loads in `untested` (controller/core/phases.py: several wired phases, not known)
that have no per-line report (one that has will say where its car draws once it draws):
- a start or raise of one goes out only while no other load's change is in flight (a cut the
  meter has not shown followed, a raise it has not reached, or a cut made now); other loads'
  raises due in the same decision then wait for the next, and the other untested loads wait
  their turn, best priority, then the one that changed longest ago, first (while something
  else is in flight the untested ones wait and the others go on: a busy site keeps moving);
- while the meter reads one's start or raise (its episode is open), every other increase
  waits, so nothing else moves the meter meanwhile;
- a car that does not draw yet while its charger holds a limit no change of ours gave it (its
  own fallback at start or after a reconnect, the blind fallback) is set to 0 first, then
  started in its turn: a start from its fallback is no step the meter could read. That is a
  pause like any other (Cause.START_ALONE: restart_delay_s applies), since a car plugged in
  just then may have begun on its charger's fallback before the 0 reached it.
Decreases never wait (invariants 1 and 2), and reservations are untouched: until known, a
load counts on every wired phase. A car that is charging is never stopped here (invariant 9).
Cost: nothing unless some load's limit rises in this decision; then O(loads).
"""

from __future__ import annotations

from collections.abc import Container

from controller.core.causes import Cause
from controller.core.draw import ATTRIBUTION_SLACK_S, UNKNOWN, Draw, LoadMemory, renew
from controller.core.ramp import step
from controller.core.site import SiteModel
from controller.core.wiring import MIN_STEP_A, EvidenceState, in_flight
from controller.model import CarState, ChargerReading


def in_turn(site: SiteModel, evidence: EvidenceState, untested: Container[int], readings: list[ChargerReading],
            draw: list[Draw], before: list[LoadMemory], decisions: list, memories: list[LoadMemory],
            now: float, after_blind: bool) -> None:
    """Holds back, in `decisions` and `memories` (as the decision's passes left them; `before`
    as they were before its steps), the increases that would blur an untested load's change.
    `after_blind`: the decision before had no sample (a limit held may be the blind fallback)."""
    rising = [i for i, (dec, mem) in enumerate(zip(decisions, before)) if dec.limit_a > mem.limit_a]
    if after_blind:
        seen = set(rising)
        rising += [i for i, mem in enumerate(before) if mem.cause is not None and mem.cause.fallback
                   and mem.limit_a > 0 and i not in seen]
    if not rising:
        return
    window = site.control.response_s + ATTRIBUTION_SLACK_S
    raised, ready = [], []
    for i in rising:
        mem = before[i]
        if mem.limit_a == UNKNOWN or mem.cause is not None and mem.cause.fallback:
            # Its limit is one it holds by itself: no step of ours the meter could read.
            if decisions[i].limit_a > 0 and readings[i].car is CarState.CONNECTED and not any(draw[i].lo) \
                    and readings[i].draw_lines_a is None and i in untested:
                _zero_first(site, i, draw, before, decisions, memories, now)
        elif decisions[i].limit_a > mem.limit_a:
            raised.append(i)
            if decisions[i].limit_a - mem.limit_a >= MIN_STEP_A and readings[i].draw_lines_a is None \
                    and i in untested:  # (a smaller step says nothing against household noise)
                ready.append(i)
    if not raised:
        return
    reading = _reading(evidence, untested, readings)
    if reading is not None:
        _hold(raised, before, decisions, memories, f"the meter reads {site.chargers[reading].id}'s change",
              keep=reading)
        return
    if not ready:
        return
    specs = site.chargers
    best = min(ready, key=lambda i: (specs[i].priority, before[i].changed_at, i))
    others = [i for i in raised if i != best]
    _hold(ready, before, decisions, memories, f"{specs[best].id} changes first", keep=best)
    if in_flight(site, memories, best, now, window, ignore=others):
        # Something else is still moving the meter: the untested loads wait, the others go on
        # (a busy site must not hold every raise for one load's turn).
        _hold([best], before, decisions, memories, "other loads' changes are still showing")
    else:
        _hold(others, before, decisions, memories, f"{specs[best].id} changes first")


def _reading(evidence: EvidenceState, untested: Container[int], readings: list[ChargerReading]) -> int | None:
    """The untested load whose start or raise the meter is reading now, or None. (Its episode
    closes in this decision at the earliest, after this pass: a change now would blur it.)"""
    for i, e in enumerate(evidence):
        if e.open_at is not None and e.step_a > 0 and not e.busy0 and readings[i].draw_lines_a is None \
                and i in untested:  # (an episode that opened beside another change scores nothing anyway)
            return i
    return None


def _hold(loads: list[int], before: list[LoadMemory], decisions: list, memories: list[LoadMemory],
          why: str, keep: int = -1) -> None:
    """These increases (but `keep`'s) wait: each load keeps the limit and timers it had (its
    ramp goes on once its turn comes)."""
    for i in loads:
        if i == keep:
            continue
        mem = before[i]
        memories[i] = renew(mem, cause=Cause.WAIT_TURN)
        decisions[i] = decisions[i]._replace(limit_a=mem.limit_a, cause=Cause.WAIT_TURN,
                                             changed=False, detail=why)


def _zero_first(site: SiteModel, i: int, draw: list[Draw], before: list[LoadMemory], decisions: list,
                memories: list[LoadMemory], now: float) -> None:
    """A car that does not draw yet under a limit it holds by itself: 0 now, its start in turn."""
    spec = site.chargers[i]
    limit, memories[i], cause = step(spec, before[i], draw[i].bound_a, 0.0, Cause.START_ALONE, site, now)
    decisions[i] = decisions[i]._replace(limit_a=limit, cause=cause, changed=limit != before[i].limit_a, detail="")
