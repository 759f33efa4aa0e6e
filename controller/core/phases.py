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
    for spec, r in zip(site.chargers, readings):
        i = spec.index
        was = prev[i]
        now = was
        if r.car in (CarState.NO_CAR, CarState.FAULT):
            now = None  # the next car may use other lines
        elif r.online and r.draw_lines_a is not None and spec.n_phases > 1:
            used = [spec.line_phase[k] for k, amps in enumerate(r.draw_lines_a[:len(spec.line_phase)])
                    if amps >= ACTIVE_A]
            if used:  # a car drawing nothing says nothing about its lines
                seen = set(used) | set(was or ())
                now = None if len(seen) >= spec.n_phases else tuple(sorted(seen))
        if now != was:
            if out is None:
                out = list(prev)
            out[i] = now
    return prev if out is None else tuple(out)


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
