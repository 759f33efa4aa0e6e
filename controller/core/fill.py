"""Sharing capacity between chargers: weighted water-filling with floors, caps and shedding.

A problem is a set of chargers and linear constraints ("phase A", "circuit garage-board
phase B", "max import"): each constraint has a capacity and a coefficient for every charger
it touches (1 A per A on a phase, volts x phases in watts for an import cap). The result
gives each charger a current that is 0 (shed) or between its floor `lo` and its cap `hi`, and
never makes any constraint exceed its capacity.

1. Shedding. Every charger that runs needs at least its floor. While the floors do not fit,
   the charger to shed is chosen among those touching an over-full constraint: lowest
   priority (highest number) first, then lowest weight, then one not yet running (a car
   that is charging keeps charging rather than trade places with a new one: no start/stop
   churn), then the last in config order. Then
   shed chargers are offered back, best first, where their floor fits: no charger stays shed
   that could have run.
2. Filling, tier by tier (priority 1 first) over what the floors leave: within a tier every
   charger gets clamp(weight x level, lo, hi) and the level rises until a constraint is full
   (its chargers freeze there) or every charger reaches its cap. Lower tiers get what is left.

The level rises through sorted breakpoints with each constraint's usage kept as
const + slope x level and the next constraint to fill found from a heap, so a decision
over n chargers costs about O(n log n): a thousand chargers decide in milliseconds.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from typing import NamedTuple

EPS = 1e-9


class Constraint(NamedTuple):
    name: str  # for reasons: "phase A", "circuit garage-board", "max import"
    capacity: float
    members: tuple[tuple[int, float], ...]  # (charger index, coefficient > 0)
    phases: tuple[int, ...] = ()  # site phases it covers (for whoever built it; unused here)
    indices: tuple[int, ...] | None = None  # the members' indices when every coefficient is 1


class Want(NamedTuple):
    """One charger's part in a problem (NamedTuples: a thousand are built per decision)."""

    index: int
    lo: float  # floor when it runs (min_a, or more for a restart with hysteresis)
    hi: float  # cap (max_a, mode cap); hi >= lo
    weight: float
    priority: int
    running: bool = True  # it has current now

    def shed_key(self) -> tuple:
        # Larger sheds first: lowest priority, lowest weight, not running, last configured.
        return (self.priority, -self.weight, not self.running, self.index)


@dataclass(frozen=True, slots=True)
class Allocation:
    current: dict[int, float]  # charger index -> amps (0 for shed)
    shed: frozenset[int]
    limited_by: dict[int, str]  # charger index -> constraint name, or "cap" when at hi


Touch = Sequence[Sequence[tuple[int, float]]] | dict[int, list[tuple[int, float]]]


def allocate(wants: list[Want], constraints: list[Constraint], touch: Touch | None = None) -> Allocation:
    """Share the constraints' capacity between `wants` (see module docstring). `touch`: per
    charger index, the (position in `constraints`, coefficient) of every constraint it is a
    member of, where the caller has it (SiteModel.constraint_touch); else it is found here."""
    if touch is None:
        touch = touching(wants, constraints)
    running = _shed(wants, constraints, touch)
    current = {w.index: 0.0 for w in wants}
    limited_by: dict[int, str] = {}
    used = [0.0] * len(constraints)
    for w in wants:
        if w.index in running:
            current[w.index] = w.lo
            for k, coef in touch[w.index]:
                used[k] += coef * w.lo
    tiers: dict[int, list[Want]] = {}
    for w in wants:
        if w.index in running:
            tiers.setdefault(w.priority, []).append(w)
    for priority in sorted(tiers):
        _fill_tier(tiers[priority], constraints, touch, used, current, limited_by)
    shed = frozenset(w.index for w in wants if w.index not in running)
    return Allocation(current=current, shed=shed, limited_by=limited_by)


def touching(wants: list[Want], constraints: list[Constraint]) -> dict[int, list[tuple[int, float]]]:
    """Per want: (position, coefficient) of every constraint it is a member of."""
    touch: dict[int, list[tuple[int, float]]] = {w.index: [] for w in wants}
    for k, con in enumerate(constraints):
        for idx, coef in con.members:
            if idx in touch:
                touch[idx].append((k, coef))
    return touch


def floor_room(running: list[Want], constraints: list[Constraint], touch: Touch | None = None) -> Callable[[Want], bool]:
    """A test of whether one more load's floor fits beside the floors of `running` on every
    constraint it is on (each candidate on its own, not cumulatively). The room is summed once,
    so testing many waiting loads costs one pass over the constraints, not one each. `touch`
    as for allocate()."""
    floor = {w.index: w.lo for w in running}
    left = [con.capacity - sum(c * floor[i] for i, c in con.members if i in floor) for con in constraints]
    if touch is None:
        touch = defaultdict(list)
        for k, con in enumerate(constraints):
            for i, coef in con.members:
                touch[i].append((k, coef))

    def fits(extra: Want) -> bool:
        return all(coef * extra.lo <= left[k] + EPS for k, coef in touch[extra.index])
    return fits


def _shed(wants: list[Want], constraints: list[Constraint], touch: Touch) -> set[int]:
    """The set of chargers whose floors fit, chosen as the module docstring says."""
    usage = [0.0] * len(constraints)
    for w in wants:
        for k, coef in touch[w.index]:
            usage[k] += coef * w.lo
    running = {w.index for w in wants}
    shed: list[Want] = []
    # Over-full constraints that running chargers still load (household alone can overfill a
    # phase: then everything on it is shed and nothing more helps).
    over = {k for k, con in enumerate(constraints) if usage[k] > con.capacity + EPS and usage[k] > EPS}
    # Shedding only ever empties constraints, so a charger touching no over-full constraint
    # when its turn comes never will: one pass in shed order picks the same victims as
    # re-scanning for the worst candidate after every shed.
    for victim in sorted(wants, key=Want.shed_key, reverse=True):
        if not over:
            break
        if not any(k in over for k, _ in touch[victim.index]):
            continue
        running.discard(victim.index)
        shed.append(victim)
        for k, coef in touch[victim.index]:
            usage[k] -= coef * victim.lo
            if k in over and not (usage[k] > constraints[k].capacity + EPS and usage[k] > EPS):
                over.discard(k)
    for w in sorted(shed, key=Want.shed_key):
        if all(usage[k] + coef * w.lo <= constraints[k].capacity + EPS for k, coef in touch[w.index]):
            running.add(w.index)
            for k, coef in touch[w.index]:
                usage[k] += coef * w.lo
    return running


def _fill_tier(tier: list[Want], constraints: list[Constraint],
               touch: Touch, used: list[float],
               current: dict[int, float], limited_by: dict[int, str]) -> None:
    """Raise one tier's common level from its floors; updates used/current/limited_by."""
    const = list(used)
    slope = [0.0] * len(constraints)
    members_of: defaultdict[int, list[Want]] = defaultdict(list)
    events: list[tuple[float, int, int]] = []  # (level, 0=start 1=stop, position in tier)
    for pos, w in enumerate(tier):
        for k, _ in touch[w.index]:
            members_of[k].append(w)
        if w.hi - w.lo > EPS:
            events.append((w.lo / w.weight, 0, pos))
            events.append((w.hi / w.weight, 1, pos))
        else:
            limited_by[w.index] = "cap"
    events.sort()
    rising: set[int] = set()
    done: set[int] = set()  # frozen or capped: their current is final
    # Heap of (level at which constraint k fills, version, k); stale versions are skipped. A
    # constraint that changed is pushed once, when the heap is next read, with the version of
    # its last change: the same live entries as pushing at every change, far fewer pushes (a
    # constraint binding freezes a hundred loads, each changing the same few constraints).
    heap: list[tuple[float, int, int]] = []
    version = [0] * len(constraints)
    dirty: set[int] = set()
    capacity = [c.capacity for c in constraints]
    push, pop = heapq.heappush, heapq.heappop

    level = 0.0
    i = 0
    n_events = len(events)
    while i < n_events or rising:
        next_event = events[i][0] if i < n_events else math.inf
        if dirty:
            for k in dirty:
                if slope[k] > EPS:
                    push(heap, ((capacity[k] - const[k]) / slope[k], version[k], k))
            dirty.clear()
        while heap and heap[0][1] != version[heap[0][2]]:
            pop(heap)
        bind_level, _, bind_k = heap[0] if heap else (math.inf, 0, -1)
        if bind_k >= 0 and bind_level <= next_event:
            level = max(level, bind_level)
            name = constraints[bind_k].name
            for w in members_of.get(bind_k, ()):
                j = w.index
                if j in done:
                    continue
                if j in rising:
                    rising.discard(j)
                    amps = current[j] = min(w.hi, max(w.lo, w.weight * level))
                    for k, coef in touch[j]:
                        slope[k] -= coef * w.weight
                        const[k] += coef * amps
                        if k != bind_k:
                            version[k] += 1
                            dirty.add(k)
                done.add(j)
                limited_by[j] = name
            slope[bind_k] = 0.0  # every rising member of it is frozen now; drop float residue
            version[bind_k] += 1
            dirty.add(bind_k)
            continue
        level, kind, pos = events[i]
        i += 1
        w = tier[pos]
        j = w.index
        if j in done:
            continue
        if kind == 0:
            rising.add(j)
            for k, coef in touch[j]:
                const[k] -= coef * w.lo
                slope[k] += coef * w.weight
                version[k] += 1
                dirty.add(k)
        else:
            rising.discard(j)
            done.add(j)
            current[j] = w.hi
            limited_by[j] = "cap"
            for k, coef in touch[j]:
                slope[k] -= coef * w.weight
                const[k] += coef * w.hi
                version[k] += 1
                dirty.add(k)
    for k in range(len(constraints)):
        used[k] = const[k]
