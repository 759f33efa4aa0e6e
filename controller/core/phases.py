"""Active phases (DESIGN.md invariant 8): which of its wired phases each car really uses.

A 1-phase car on a 3-phase charger draws on one line only; counting it on all three
reserves two phases' worth of current nobody uses (three such chargers wired ABC, BCA and
CAB would each hold all three phases to the fullest phase's room). Where the charger reports
per line, the lines that carry current say which site phases the car uses; the plan then
counts the load on those phases only.

A charger that does not report per line (power only, nothing, or a report that has not come
yet) is learned from the meter's response to the load's own changes (controller/core/wiring.py
gathers it, robust to household noise and to other loads changing): one phase responding
alone, with weight ONE_PHASE of it, is a 1-phase car on that phase (one clean 5 A step); any
change seen on several phases at once puts the car back on every wired phase for as long as
it stays plugged in.

Until a report or the meter shows it, a load counts on every wired phase (for a reservation,
the most). What a car was seen to use is kept while it stays plugged in, and only grows (a car
that switches to more phases is counted on them as soon as a report or the meter shows it; one
that uses fewer keeps the reservation it had): it is forgotten when the car leaves, faults, or
the controller restarts. Meanwhile invariant 2's net bounds any overload it causes.

`untested(...)`: loads whose car's phases are not known yet restart without the restart
hysteresis (decide.py), so that one whose floor fits beside the others' floors gets its start,
and with it the meter step that says where it draws (else a phase full of another car's
current would keep it waiting for ever, counted on a phase it may not use).

`phases_in_use(...)`: for a limit sent in watts, how many phases each car is known to use; a
W limit assumes the fewest (one) until then, as the fallback profile does (a 1-phase car on a
3-phase watt charger would otherwise take three times its limit).

`effective(site, active)` is the site with each such load's `phase_idx` narrowed to the
phases in use: the draw model, the fast path, the allocator and the net all run on it
unchanged. It is rebuilt only when an active set changes.
"""

from __future__ import annotations

from dataclasses import replace

from controller.core.site import SiteModel
from controller.core.wiring import ZERO3, EvidenceState
from controller.model import CarState, ChargerReading

ACTIVE_A = 1.0  # a line carrying at least this much is in use
ONE_PHASE = 1.0  # meter evidence for a 1-phase car: one clean step of 5 A on that phase alone
ONE_SHARE = 0.8  # ... with this share of the single-phase responses on that phase
ActiveSets = tuple[tuple[int, ...] | None, ...]  # per load: site phases in use, None = not known


def active_phases(site: SiteModel, readings: list[ChargerReading], prev: ActiveSets,
                  evidence: EvidenceState = ()) -> ActiveSets:
    """Per load, the site phases its car is seen to use (None: not known, count them all)."""
    if not prev:
        prev = (None,) * len(site.chargers)
    out = None
    no_car, fault = CarState.NO_CAR, CarState.FAULT
    n_ev = len(evidence)
    for spec, r in zip(site.chargers, readings):
        lines = r.draw_lines_a
        i = spec.index
        was = prev[i]
        e = evidence[i] if i < n_ev else None
        meter = e is not None and (e.car_many or e.car_one is not ZERO3)
        if lines is None and was is None and not meter:
            continue  # the common case for a charger that does not report per line
        now = was
        if r.car is no_car or r.car is fault:
            now = None  # the next car may use other lines
        elif meter and e.car_many:
            now = None  # the meter saw it draw on several phases: every wired phase
        elif meter and lines is None and was is None and len(spec.line_phase) > 1 and spec.kind != "switch":
            now = _one_phase(spec, e)  # (a switched load is no car: its elements may come on by themselves)
        elif was is None and lines is not None and len(lines) == len(spec.line_phase) and \
                (min(lines) >= ACTIVE_A or max(lines) < ACTIVE_A):
            pass  # the common cases, without a call: every line in use, or none (no news)
        elif lines is not None and r.online and len(spec.line_phase) > 1 and _news(spec, lines, was):
            seen = {spec.line_phase[k] for k, amps in enumerate(r.draw_lines_a[:len(spec.line_phase)])
                    if amps >= ACTIVE_A} | set(was or ())
            now = None if len(seen) >= spec.n_phases else tuple(sorted(seen))
        if now != was:
            if out is None:
                out = list(prev)
            out[i] = now
    return prev if out is None else tuple(out)


def _one_phase(spec, e) -> tuple[int, ...] | None:
    """The phase the meter shows a car on alone, or None while the evidence is short."""
    one = e.car_one
    total = one[0] + one[1] + one[2]
    if total < ONE_PHASE:
        return None
    p = max(spec.phase_idx, key=lambda q: one[q])
    return (p,) if one[p] >= ONE_SHARE * total else None


def phases_in_use(site: SiteModel, active: ActiveSets, evidence: EvidenceState) -> tuple[int | None, ...]:
    """Per load, how many phases its car is known to use, for a limit in watts (None: not known,
    so a W limit assumes the fewest: one). The active set where it is narrowed; else the most
    phases a report or the meter showed it on at once (a car on every wired phase keeps the
    active set None, counted on all of them, but draws on all of them too)."""
    n_ev = len(evidence)
    out: list[int | None] = []
    for spec in site.chargers:
        i = spec.index
        a = active[i] if i < len(active) else None
        if a is not None:
            out.append(len(a))
            continue
        seen = evidence[i].car_phases if i < n_ev else 0
        out.append(min(seen, spec.n_phases) if seen >= 2 else None)
    return tuple(out)


class Untested:
    """Loads on several phases whose car's phases neither a report nor the meter has shown
    (`i in untested`): asked only of a load about to restart, so nothing runs per load."""

    __slots__ = ("site", "active", "evidence")

    def __init__(self, site: SiteModel, active: ActiveSets, evidence: EvidenceState):
        self.site, self.active, self.evidence = site, active, evidence

    def __contains__(self, i: int) -> bool:
        spec = self.site.chargers[i]
        if len(spec.line_phase) < 2 or spec.kind == "switch":
            return False
        if self.active and self.active[i] is not None:
            return False
        if i >= len(self.evidence):
            return True  # the first decision: no evidence yet
        e = self.evidence[i]
        return not e.car_many and e.car_one is ZERO3


def untested(site: SiteModel, active: ActiveSets, evidence: EvidenceState) -> Untested:
    return Untested(site, active, evidence)


def _news(spec, lines: tuple[float, ...], was: tuple[int, ...] | None) -> bool:
    """Whether a report adds to what is known (no allocation: this runs per load per sample).
    A car drawing nothing says nothing about its lines; one on every line keeps None."""
    n = len(spec.line_phase)
    if was is None:
        if len(lines) == n and min(lines) >= ACTIVE_A:
            return False  # the common case: every line in use, as counted
        unused = len(lines) < n
        used = False
        for amps in lines[:n]:
            if amps >= ACTIVE_A:
                used = True
            else:
                unused = True
        return used and unused
    for phase, amps in zip(spec.line_phase, lines):
        if amps >= ACTIVE_A and phase not in was:
            return True
    return False


_memo: dict[tuple[int, ActiveSets], tuple[SiteModel, SiteModel]] = {}


def effective(site: SiteModel, active: ActiveSets) -> SiteModel:
    """The site as the plan counts it: every load on the phases its car uses."""
    if not active or all(a is None for a in active):
        return site
    key = (id(site), active)
    hit = _memo.get(key)
    if hit is not None and hit[0] is site:
        return hit[1]
    chargers = tuple(spec if a is None else replace(spec, phase_idx=a)
                     for spec, a in zip(site.chargers, active))
    eff = replace(site, chargers=chargers)
    if len(_memo) > 8:
        _memo.clear()
    _memo[key] = (site, eff)
    return eff
