"""Active phases (DESIGN.md invariant 8): which of its wired phases each car really uses.

A 1-phase car on a 3-phase charger draws on one line only; counting it on all three
reserves two phases' worth of current nobody uses (three such chargers wired ABC, BCA and
CAB would each hold all three phases to the fullest phase's room). Where the charger reports
per line, the lines that carry current say which site phases the car uses; the plan then
counts the load on those phases only.

Until a report shows it, a load counts on every wired phase (for a reservation, the most).
What a car was seen to use is kept while it stays plugged in, and only grows (a car that
switches to more phases is counted on them at its next report; one that uses fewer keeps the
reservation it had): it is forgotten when the car leaves, faults, or the controller restarts.
A charger that does not report per line keeps every wired phase.

`effective(site, active)` is the site with each such load's `phase_idx` narrowed to the
phases in use: the draw model, the fast path, the allocator and the net all run on it
unchanged. It is rebuilt only when an active set changes.
"""

from __future__ import annotations

from dataclasses import replace

from controller.core.site import SiteModel
from controller.model import CarState, ChargerReading

ACTIVE_A = 1.0  # a line carrying at least this much is in use
ActiveSets = tuple[tuple[int, ...] | None, ...]  # per load: site phases in use, None = not known


def active_phases(site: SiteModel, readings: list[ChargerReading], prev: ActiveSets) -> ActiveSets:
    """Per load, the site phases its car is seen to use (None: not known, count them all)."""
    if not prev:
        prev = (None,) * len(site.chargers)
    out = None
    no_car, fault = CarState.NO_CAR, CarState.FAULT
    for spec, r in zip(site.chargers, readings):
        lines = r.draw_lines_a
        was = prev[spec.index]
        if lines is None and was is None:
            continue  # the common case for a charger that does not report per line
        i = spec.index
        now = was
        if r.car is no_car or r.car is fault:
            now = None  # the next car may use other lines
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
