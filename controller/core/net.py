"""Invariant 2's net: an overload the model cannot explain is still removed.

The fast path and the persistent-overload pause cut the loads the model places on a phase.
When the model is wrong (a charger wired to another phase than `phases` says, a rotated
installation, a 1-phase car on a line the config does not expect), cutting those does not
clear the phase. Per site phase, once an overload has lasted `overload_pause_s` and what the
model's own loads there may still come down by (each counted at the most it may draw, minus
its new limit) cannot cover the measured excess, the net cuts further, in stages:

 1. the loads whose own changes the meter links to that phase (controller/core/wiring.py),
 2. if none is linked, or `response_s` after stage 1 the phase is still over: every load that
    may still draw, lowest priority first, except loads the meter shows wired elsewhere.

Every load it cuts gets Cause.NET (a stop: restart_delay_s applies) with the phase as
detail, and the decision carries a NetFault naming the phase and what was cut. The cuts go
out in the decision that finds the overload due, so with one wrong load (the common
miswiring) the overload is gone within `overload_pause_s + response_s`.

Cost: O(phases) per decision while no phase is over; O(loads) on a phase that is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controller.core.causes import Cause
from controller.core.draw import ATTRIBUTION_SLACK_S, Draw, LoadMemory
from controller.core.ramp import commanded
from controller.core.site import SiteModel, phase_name
from controller.model import Phases

EPS = 1e-6


@dataclass(frozen=True, slots=True)
class NetPhase:
    """One site phase over its limit: since when, and what the net did about it."""

    since: float  # over its limit without a break since
    cut_at: float | None = None  # the net's last cut for it
    stage: int = 0  # 0: nothing cut yet, 1: linked loads cut, 2: every load cut
    cut: tuple[str, ...] = ()  # ids of the loads the net cut for it, in cut order


NetState = tuple[NetPhase | None, NetPhase | None, NetPhase | None]
NO_NET: NetState = (None, None, None)


@dataclass(frozen=True, slots=True)
class NetFault:
    """An overload the model cannot explain (while the net acts on it)."""

    phase: int
    excess_a: float  # measured excess over the limit now
    unexplained_a: float  # what the model's own loads there cannot come down by
    cut: tuple[str, ...]  # loads cut by the net for it so far (empty: nothing left to cut)

    @property
    def constraint(self) -> str:
        return f"phase {phase_name(self.phase)}"

    def text(self) -> str:
        what = ("cut " + ", ".join(self.cut)) if self.cut else "no load left to cut"
        return (f"overload the model cannot explain on {self.constraint}: {self.excess_a:.1f} A over, "
                f"{self.unexplained_a:.1f} A not on the loads configured there; {what} "
                "(check the chargers' `phases` wiring)")


class Links(Protocol):
    """What the meter says about where a load draws (controller/core/wiring.py)."""

    def any(self) -> bool: ...  # there is evidence at all
    def linked(self, i: int, p: int) -> bool: ...  # its changes show on site phase p
    def elsewhere(self, i: int, p: int) -> bool: ...  # its changes show, and never on p


def apply(site: SiteModel, state: NetState, meter: Phases, draw: list[Draw], decisions: list,
          memories: list[LoadMemory], now: float, links: Links | None = None,
          make=None) -> tuple[NetState, tuple[NetFault, ...]]:
    """The net for one decision: updates `decisions` and `memories` in place for the loads it
    cuts (`make(spec, limit, cause, detail)` builds a decision) and returns its new state and
    the faults standing now."""
    limit = site.limit_a
    if state is NO_NET and all(meter[p] <= limit for p in site.phase_range):
        return NO_NET, ()
    ctl = site.control
    new: list[NetPhase | None] = [None, None, None]
    faults: list[NetFault] = []
    for p in site.phase_range:
        excess = meter[p] - limit
        if excess <= EPS:
            continue  # cleared (or a dip): the next overload starts afresh
        ph = state[p] or NetPhase(since=now)
        new[p] = ph
        if now - ph.since < ctl.overload_pause_s - EPS:
            continue  # the fast path and the pause have this long first
        unexplained = excess - _may_fall(site, p, draw, decisions, links)
        if unexplained <= EPS:
            if ph.cut:  # it was unexplained: keep saying so while it lasts
                faults.append(NetFault(p, excess, 0.0, ph.cut))
            continue
        if ph.cut_at is not None and now < ph.cut_at + ctl.response_s + ATTRIBUTION_SLACK_S:
            faults.append(NetFault(p, excess, unexplained, ph.cut))
            continue  # the last cut has not had time to show yet
        victims = _victims(site, p, draw, decisions, links, stage1=ph.stage == 0)
        stage = 1 if ph.stage == 0 and victims and links is not None and \
            all(links.linked(i, p) for i in victims) else 2
        name = f"phase {phase_name(p)}"
        for i in victims:
            spec = site.chargers[i]
            m = memories[i]
            memories[i] = commanded(m._replace(paused_at=now, hold_since=None, cause=Cause.NET),
                                    max(m.limit_a, 0.0), 0.0, now, ctl.response_s)
            decisions[i] = make(spec, 0.0, Cause.NET, name)
        cut = ph.cut + tuple(site.chargers[i].id for i in victims)
        new[p] = NetPhase(ph.since, now if victims else ph.cut_at, stage if victims else max(ph.stage, 2), cut)
        faults.append(NetFault(p, excess, unexplained, cut))
    out: NetState = (new[0], new[1], new[2])
    return (NO_NET if out == NO_NET else out), tuple(faults)


def _may_fall(site: SiteModel, p: int, draw: list[Draw], decisions: list, links: Links | None) -> float:
    """How far the loads the model places on p may still come down there: each from the limit
    it may still follow to its new limit. Not from the plan's bound `hi` or from what it is
    believed to draw: those keep a report from before a cut, or a rise the meter credited to
    it on the configured phase, and would 'explain' the overload by a load that was cut long
    ago. A load that takes no orders comes down by nothing, nor one the meter shows on other
    phases only (its cut shows there, not here)."""
    total = 0.0
    ask = links is not None and links.any()
    for i in site.phase_members[p]:  # per sample while an overload stands: kept lean
        d = draw[i]
        if d.fixed or ask and links.elsewhere(i, p):
            continue
        limit = decisions[i].limit_a
        fall = d.bound_a - (limit if limit > 0 else 0.0)
        if fall > 0:
            total += fall
    return total


def _victims(site: SiteModel, p: int, draw: list[Draw], decisions: list, links: Links | None,
             stage1: bool) -> list[int]:
    """The loads to cut now, lowest priority (then lowest weight) first: those linked to p
    at the first stage if any is; else every load that may still draw and takes orders,
    except those the meter shows on other phases only."""
    able = [i for i, (d, dec) in enumerate(zip(draw, decisions)) if dec.limit_a > 0 and not d.fixed]
    if links is not None and not links.any():
        links = None
    if not able:
        return able
    if links is not None and stage1:
        linked = [i for i in able if links.linked(i, p)]
        if linked:
            able = linked
    if links is not None:
        able = [i for i in able if not links.elsewhere(i, p)]
    able.sort(key=lambda i: (site.chargers[i].priority, -site.chargers[i].weight, i), reverse=True)
    return able
