"""Wiring as measured (DESIGN.md invariant 8): which site phase each load's lines really are
on, and whether a current clamp reads backwards, from the meter's response to the load's own
changes.

An *episode* opens when the controller changes a load's limit by at least MIN_STEP_A (a start,
a stop, a cut, a raise); further changes the same way extend it (a start then a raise); it
closes when the load had time to follow (response_s + the attribution slack after its last
change) or when a change turns back (a cut right after a start: what moved until then is read).
It counts only while no other load's limit changed (a change of another load that the meter
already showed followed before the episode opened does not count: break before make starts a
load right after the cut it waited for). The meter's change over the episode, per site phase,
is the evidence:
- the load's own size of step: its per-line report before and after where it reports lines,
  else only the direction and at most the commanded change;
- a phase *responds* when it moved the same way by at least half that step (and not by far
  more, which is a household step); it responds *inverted* when it moved the other way as much;
- one responding phase and one changed line (a 1-phase load, or L1 of a 1-phase car): that
  line is on that phase; as many phases as lines (a 3-phase car): each line is on one of them.
Episodes that overlap another load's change, show no response (the car did not follow) or
an ambiguous one score nothing. Each scoring episode weighs min(step, 15 A) / 5.

The same episodes say how many of its lines the car plugged in now uses (controller/core/phases.py):
one phase responding alone to a multi-phase load's change is a 1-phase car on that phase, more
than one is a car on several (`car_one`, `car_many`, and how many at most: `car_phases`;
forgotten when the car leaves).

Conclusions per load, for L1 (the line every car uses, and the one whose site phase matters
for a 1-phase car; a car on every line says nothing of which is where, so it is left out):
*leaning* once its score reaches NOTIFY with SHARE_LEAN of it on one phase, *strong* at STRONG
with SHARE_STRONG. A strong conclusion that contradicts the configured
wiring is a remap: the runtime rebuilds the site with it (`remapped`). A clamp is *inverted*
on a phase when opposite responses there reach the same thresholds against normal ones.
Until a conclusion is strong, the configured wiring stands and invariant 2's net keeps the
site safe; a phase whose clamp leans or is known backwards is read as |current|, the larger of
both readings (`corrected`).

Cost per decision: O(loads) comparisons; allocation only when an episode opens or closes.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import NamedTuple

from controller.core.draw import ATTRIBUTION_SLACK_S, FOLLOW_TOLERANCE_A, LoadMemory, high_now
from controller.core.site import ChargerSpec, SiteModel, phase_name
from controller.model import PHASE_INDEX, SITE_PHASES, CarState, ChargerReading, MeterSample, Phases

MIN_STEP_A = 2.0  # a change smaller than this says nothing against household noise
MIN_MOVE_A = 1.0  # a phase that moved less than this did not respond
MAX_WEIGHT_A = 15.0
NOTIFY = 6.0
STRONG = 15.0
SHARE_LEAN = 0.7
SHARE_STRONG = 0.8
ZERO9 = (0.0,) * 9
ZERO3: Phases = (0.0, 0.0, 0.0)


class Evidence(NamedTuple):
    """What the meter said about one load's lines so far, and its open episode."""

    score: tuple[float, ...] = ZERO9  # [line * 3 + phase]: that line responded on that site phase
    inverted: Phases = (0.0, 0.0, 0.0)  # per site phase: responses with the opposite sign
    normal: Phases = (0.0, 0.0, 0.0)  # per site phase: responses with the right sign
    samples: int = 0  # episodes that scored
    open_at: float | None = None  # an episode runs since
    last_at: float = 0.0  # ... and its last change in the same direction came then
    m0: Phases = (0.0, 0.0, 0.0)  # the meter when it opened
    lines0: tuple[float, ...] | None = None  # its per-line report when it opened
    step_a: float = 0.0  # the commanded change over the episode
    busy0: bool = False  # another load's change was still in flight when it opened
    car_one: Phases = ZERO3  # the car plugged in now: weight of changes seen on this phase alone
    car_many: float = 0.0  # ... and of changes seen on several phases at once
    even: float = 0.0  # of `score`, what every line got on every phase: a car on all the site's
    # phases (the same on each line) says nothing of which line is where (conclude leaves it out)
    car_phases: int = 0  # the car plugged in now: the most phases it was seen on at once (a W limit's)


EvidenceState = tuple[Evidence, ...]


def observe(site: SiteModel, ev: EvidenceState, meter: Phases, memories: list[LoadMemory],
            readings: list[ChargerReading], now: float) -> EvidenceState:
    """One decision's evidence: closes due episodes, opens new ones. `memories` as the
    decision leaves them (a limit changed now has changed_at == now); `meter` as read (never
    corrected: the evidence is what the clamps say)."""
    n = len(site.chargers)
    if len(ev) != n:
        ev = (Evidence(),) * n
    window = site.control.response_s + ATTRIBUTION_SLACK_S
    out = None
    changes: list[float] | None = None  # sorted times of every load's last real change (when needed)
    for spec, mem, r in zip(site.chargers, memories, readings):
        i = spec.index
        e = ev[i]
        new = e
        step = mem.limit_a - mem.prev_a if mem.changed_at == now and mem.limit_a >= 0 else 0.0
        if (r.car is _NO_CAR or r.car is _FAULT) and (e.car_many or e.car_one is not ZERO3):
            new = e = e._replace(car_one=ZERO3, car_many=0.0, car_phases=0)  # the next car may use other lines
        elif r.draw_lines_a is not None and (not e.car_many or e.car_phases < len(r.draw_lines_a)) \
                and _several(r.draw_lines_a):  # its report shows several lines in use
            used = sum(1 for amps in r.draw_lines_a[:len(spec.line_phase)] if amps >= 1.0)
            if not e.car_many or used > e.car_phases:
                new = e = e._replace(car_many=e.car_many or 1.0, car_phases=max(used, e.car_phases))
        if e.open_at is not None:
            if step * e.step_a > 0:  # more of the same (a ramp, a start then a raise): one episode
                new = e._replace(last_at=now, step_a=e.step_a + step)
                step = 0.0
            elif step or now >= e.last_at + window or now >= e.open_at + 4 * window:
                # the load had time to follow, or turns back: what moved so far is the evidence
                if changes is None:
                    changes = sorted(m.changed_at for m in memories
                                     if abs(m.limit_a - m.prev_a) >= MIN_STEP_A / 2)
                new = _close(site, spec, e, meter, r, mem, changes, now, window)
        if step and abs(step) >= MIN_STEP_A and new.open_at is None and r.online:
            new = new._replace(open_at=now, last_at=now, m0=meter, step_a=step, lines0=r.draw_lines_a,
                               busy0=in_flight(site, memories, i, now, window))
        if new is not ev[i]:  # (a car's reset above renews e itself)
            if out is None:
                out = list(ev)
            out[i] = new
    return ev if out is None else tuple(out)


_NO_CAR, _FAULT = CarState.NO_CAR, CarState.FAULT


def _several(lines: tuple[float, ...]) -> bool:
    """Two or more lines carrying current (written out: it runs per load per sample)."""
    n = len(lines)
    if n < 2:
        return False
    k = (lines[0] >= 1.0) + (lines[1] >= 1.0)
    return k > 1 or (n > 2 and k == 1 and lines[2] >= 1.0)


def in_flight(site: SiteModel, memories: list[LoadMemory], i: int, now: float, window: float,
              ignore: list[int] | tuple[int, ...] = ()) -> bool:
    """Whether another load may still be moving after a change of ours: a cut the meter has not
    shown followed yet, a raise it has not reached. Runs only when an episode opens (and when
    controller/core/turns.py asks whether an untested load may change now)."""
    for spec, mem in zip(site.chargers, memories):
        if spec.index == i or not now - window < mem.changed_at <= now or spec.index in ignore:
            continue
        limit = max(mem.limit_a, 0.0)
        if abs(limit - mem.prev_a) < MIN_STEP_A / 2:
            continue
        if mem.changed_at == now:
            return True
        if limit < mem.prev_a:
            if high_now(mem, now) > limit:
                return True
        elif max(mem.seen[p] for p in spec.phase_idx) < limit - FOLLOW_TOLERANCE_A:
            return True
    return False


def _close(site: SiteModel, spec: ChargerSpec, e: Evidence, meter: Phases, r: ChargerReading,
           mem: LoadMemory, changes: list[float], now: float, window: float) -> Evidence:
    done = e._replace(open_at=None, lines0=None)
    t0 = e.open_at
    if abs(e.step_a) < MIN_STEP_A:
        return done
    # Another load changed meanwhile, or was still following a change when this one opened: the
    # meter's change is not this one's alone.
    if e.busy0:
        return done
    during = bisect_right(changes, now) - bisect_right(changes, t0 - 1e-9)
    own = t0 - 1e-9 < mem.changed_at <= now and abs(mem.limit_a - mem.prev_a) >= MIN_STEP_A / 2
    if during > (1 if own else 0):
        return done
    sign = 1.0 if e.step_a > 0 else -1.0
    lines: list[int] | None = None
    size = abs(e.step_a)
    fresh = r.draw_at is None or r.draw_at > e.last_at  # a report from after its last change
    if r.draw_lines_a is not None and e.lines0 is not None and r.online and fresh:
        deltas = [(a - b) * sign for a, b in zip(r.draw_lines_a, e.lines0)]
        lines = [k for k, d in enumerate(deltas) if d >= MIN_STEP_A / 2 and k < len(spec.line_phase)]
        if not lines:
            return done  # it did not follow: nothing to learn
        size = sum(deltas[k] for k in lines) / len(lines)
    least = max(MIN_MOVE_A, 0.5 * size) if lines is not None else MIN_MOVE_A
    most = 1.5 * size + MIN_MOVE_A
    right, wrong = [], []
    for p in site.phase_range:
        moved = (meter[p] - e.m0[p]) * sign
        if least <= moved <= most:
            right.append(p)
        elif least <= -moved <= most:
            wrong.append(p)
        elif abs(moved) > most:
            return done  # a household step bigger than ours: unreadable
    phases = right + wrong
    if not phases:
        return done
    if right and not wrong and len(spec.line_phase) > 1:
        done = _car_lines(done, right, sum(abs(meter[p] - e.m0[p]) for p in right) / len(right))
    if lines is None:  # no per-line report: one phase = L1 (a 1-phase load or car), all = every line
        if len(phases) == 1:
            lines = [0]
        elif len(phases) == len(spec.line_phase):
            lines = list(range(len(spec.line_phase)))
        else:
            return done
    if len(lines) != len(phases):
        return done
    moved_by = sum(abs(meter[p] - e.m0[p]) for p in phases) / len(phases)
    w = min(moved_by, MAX_WEIGHT_A) / 5.0
    score = list(e.score)
    share = w / len(phases)
    for k in lines:
        for p in phases:
            score[k * 3 + p] += share
    inv, norm = list(e.inverted), list(e.normal)
    for p in wrong:
        inv[p] += w
    for p in right:
        norm[p] += w
    even = e.even + (share if len(phases) == site.phases and len(lines) == len(spec.line_phase) else 0.0)
    return done._replace(score=tuple(score), inverted=(inv[0], inv[1], inv[2]),
                         normal=(norm[0], norm[1], norm[2]), samples=e.samples + 1, even=even)


def _car_lines(e: Evidence, right: list[int], moved_by: float) -> Evidence:
    w = min(moved_by, MAX_WEIGHT_A) / 5.0
    if len(right) > 1:
        return e._replace(car_many=e.car_many + w, car_phases=max(e.car_phases, len(right)))
    one = list(e.car_one)
    one[right[0]] += w
    return e._replace(car_one=(one[0], one[1], one[2]))


# ---------------------------------------------------------------------- conclusions

@dataclass(frozen=True, slots=True)
class WiringConclusion:
    id: str
    configured: str  # the wiring the site runs on now
    detected: str  # what the evidence says (== configured: confirmed)
    strength: str  # "leaning" | "strong"
    score: float  # L1's total score
    share: float  # of it on the detected phase
    samples: int

    @property
    def contradicts(self) -> bool:
        return self.detected != self.configured

    def text(self) -> str:
        verdict = "contradicts" if self.contradicts else "confirms"
        return (f"{self.id}: meter {verdict} phases = \"{self.configured}\" ({self.strength}): L1 on "
                f"{self.detected[0]}, detected \"{self.detected}\" from {self.samples} changes, score "
                f"{self.score:.1f}, {self.share:.0%} on phase {self.detected[0]}")


@dataclass(frozen=True, slots=True)
class InversionConclusion:
    phase: int
    strength: str
    score: float
    share: float

    def text(self) -> str:
        name = phase_name(self.phase)
        return (f"the current clamp on phase {name} reads backwards ({self.strength}: score "
                f"{self.score:.1f}, {self.share:.0%} of the responses there had the opposite sign); "
                f"fix: [meter] invert = \"{name}\" or turn the clamp")


def _grade(total: float, share: float) -> str | None:
    if total >= STRONG and share >= SHARE_STRONG:
        return "strong"
    if total >= NOTIFY and share >= SHARE_LEAN:
        return "leaning"
    return None


def conclude(site: SiteModel, ev: EvidenceState) -> tuple[WiringConclusion, ...]:
    """Every load whose L1 evidence leans one way, with what it says."""
    out = []
    for spec, e in zip(site.chargers, ev):
        if not e.samples:
            continue
        row = tuple(max(0.0, x - e.even) for x in e.score[0:3])  # what tells the lines apart
        total = row[0] + row[1] + row[2]
        if total <= 0:
            continue
        best = max(site.phase_range, key=lambda p: row[p])
        grade = _grade(total, row[best] / total)
        if grade is None:
            continue
        out.append(WiringConclusion(spec.id, spec.wiring, _with_l1(spec.wiring, SITE_PHASES[best]),
                                    grade, total, row[best] / total, e.samples))
    return tuple(out)


def _with_l1(wiring: str, phase: str) -> str:
    """The configured wiring with L1 on `phase`: rotated when that phase is among its lines
    (the usual installation error), else L1 replaced."""
    if wiring[0] == phase:
        return wiring
    if phase in wiring:
        j = wiring.index(phase)
        return wiring[j:] + wiring[:j]
    return phase + wiring[1:]


def inversions(site: SiteModel, ev: EvidenceState) -> tuple[InversionConclusion, ...]:
    out = []
    for p in site.phase_range:
        inv = sum(e.inverted[p] for e in ev)
        norm = sum(e.normal[p] for e in ev)
        if inv <= 0:
            continue
        grade = _grade(inv, inv / (inv + norm))
        if grade is not None:
            out.append(InversionConclusion(p, grade, inv, inv / (inv + norm)))
    return tuple(out)


def corrected(sample: MeterSample, flips: tuple[InversionConclusion, ...]) -> MeterSample:
    """Never act on a backwards clamp's reading as if it were true: a phase whose clamp leans or
    is known backwards counts at the larger of both readings, |current|. That is the truth while
    the clamp is backwards and the site imports there, and never less than the truth once it is
    turned round (before the evidence catches up) or while that phase exports: a loaded phase
    never looks idle."""
    if not flips:
        return sample
    a = list(sample.current_a)
    for c in flips:
        a[c.phase] = abs(a[c.phase])
    return replace(sample, current_a=(a[0], a[1], a[2]))


# ---------------------------------------------------------------------- for the net

class Links:
    """What the evidence says of where each load draws (controller/core/net.py's Links)."""

    __slots__ = ("ev", "_any")

    def __init__(self, ev: EvidenceState):
        self.ev = ev
        self._any: bool | None = None  # any evidence at all (looked at only when the net asks)

    def any(self) -> bool:
        if self._any is None:
            self._any = any(e.samples for e in self.ev)
        return self._any

    def _on(self, i: int, p: int) -> tuple[float, float]:
        if not self.any() or i >= len(self.ev):
            return 0.0, 0.0
        s = self.ev[i].score
        if s is ZERO9:
            return 0.0, 0.0
        return s[p] + s[3 + p] + s[6 + p], sum(s)

    def linked(self, i: int, p: int) -> bool:
        on, total = self._on(i, p)
        return total >= NOTIFY and on >= 0.25 * total

    def elsewhere(self, i: int, p: int) -> bool:
        on, total = self._on(i, p)
        return total >= NOTIFY and on <= 0.05 * total


def remapped(site: SiteModel, wiring: dict[str, str]) -> SiteModel:
    """The site with these loads' wiring replaced (id -> wiring as detected)."""
    if not any(spec.id in wiring and wiring[spec.id] != spec.wiring for spec in site.chargers):
        return site
    chargers = []
    for spec in site.chargers:
        w = wiring.get(spec.id)
        if w is None or w == spec.wiring or len(w) != len(spec.wiring):
            chargers.append(spec)
            continue
        chargers.append(replace(spec, wiring=w, phase_idx=tuple(sorted({PHASE_INDEX[x] for x in w})),
                                line_phase=tuple(PHASE_INDEX[x] for x in w)))
    return replace(site, chargers=tuple(chargers))
