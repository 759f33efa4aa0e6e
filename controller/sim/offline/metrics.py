"""Time above a limit, measured on the TRUE currents of a simulated site (never on the core's
estimates), and who is to blame for it.

A watch covers a list of constraints (site phases against fuse_a or fuse_a - margin_a,
circuit phases against their limit). Each sample stands for the step of dt seconds that
follows it:

  seconds_above   dt x samples with any constraint above its limit
  amp_seconds     sum over samples and constraints of (current - limit) x dt
  longest_s       dt x the longest run of consecutive samples above
  excursions      number of such runs
  controller_s    dt x samples where some constraint is above its limit for a reason other
                  than a recent household rise (see below): the controller's doing
  standing_s      dt x samples where a constraint has been above its limit for longer than
                  `stand_s` while a car the controller could still cut draws on it

Blame. No controller can undo an overload faster than the cars follow a new limit, so a
household rise (net of PV) excuses what it adds for `grace_s` (link latency + the slowest
car's response + one meter poll). The excuse is counterfactual and per constraint: a sample
is the controller's when the current minus the household's rise over the last grace_s is
still above the limit, while cars draw there. So a kettle switched on during an excursion the
controller caused excuses the kettle's amperes, not the controller's; an excursion that
started without any household rise (freed current granted before a cut took effect, a car
counted below what it may draw) is the controller's from its first sample. A household rise
just before an excursion begins (a step while a raise of ours was in flight: the car's rise
shows a little later) stays an excuse for the first grace_s of that excursion, the time the
cars need to follow the cut it forces. Circuits carry no
household load: every sample above a circuit's limit is the controller's. The first grace_s
of a run are nobody's: the chargers hold whatever they held before the controller started.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

EPS = 1e-6


@dataclass(frozen=True)
class FuseReport:
    seconds_above: float
    amp_seconds: float
    longest_s: float
    excursions: int
    controller_s: float  # above the limit for the controller's reasons (must be 0)
    standing_s: float = 0.0  # overloads left standing while a controllable car draws


class OverWatch:
    def __init__(self, limits: list[float], dt: float, grace_s: float = math.inf,
                 stand_s: float = math.inf, excuse_until: float = -math.inf):
        self.limits = limits
        # Before the controller's first decision took effect the chargers hold what they held
        # (their fallbacks): no controller is to blame for that (invariant 7, check-config's job).
        self.excuse_until = excuse_until
        self.dt = dt
        self.grace_s = grace_s
        self.stand_s = stand_s
        # Household history per constraint: a monotonic deque of (t, h) over the last grace_s
        # + one sample (the sample before a rise must still be in the window to show it).
        self._hist: list[deque[tuple[float, float]]] = [deque() for _ in limits]
        self._over_runs = [0] * len(limits)
        # Household floor of the window when each constraint's excursion began: a household
        # rise just before it stays an excuse for the cars' response to the cut it forces.
        self._floor_at_start: list[float] = [math.inf] * len(limits)
        self._samples = self._run = self._longest = 0
        self._amp_seconds = 0.0
        self._excursions = self._controller = self._standing = 0
        self.blamed_at: list[float] = []  # times of the controller's samples (first 100)

    def add(self, t: float, currents: list[float], households: list[float | None] | None = None,
            ev: list[float] | None = None, controllable: list[float] | None = None) -> None:
        """One sample: per constraint its true current, its household part (None: none, e.g. a
        circuit), the EV draw on it, and the draw of cars the controller can still cut."""
        window = self.grace_s + self.dt + EPS
        above = blamed = standing = False
        for k, (amps, limit) in enumerate(zip(currents, self.limits)):
            h = households[k] if households is not None else None
            if h is not None and window < math.inf:
                hist = self._hist[k]
                while hist and hist[-1][1] >= h:
                    hist.pop()
                hist.append((t, h))
                while hist[0][0] < t - window:
                    hist.popleft()
            if amps <= limit + EPS:
                self._over_runs[k] = 0
                continue
            above = True
            self._amp_seconds += (amps - limit) * self.dt
            rise = 0.0
            if h is not None:
                floor = self._hist[k][0][1] if window < math.inf else -math.inf
                if self._over_runs[k] == 0:
                    self._floor_at_start[k] = floor
                if self._over_runs[k] * self.dt <= self.grace_s + EPS:
                    floor = min(floor, self._floor_at_start[k])
                rise = h - floor
            # Only cars the controller can still cut make an excursion its fault: one whose link
            # is down holds what it held (counted at that in the plan) and takes no order now.
            ev_here = ev[k] if ev is not None else math.inf
            if controllable is not None:
                ev_here = min(ev_here, controllable[k])
            if t >= self.excuse_until and min(amps - max(0.0, rise), limit + ev_here) > limit + EPS:
                blamed = True
            self._over_runs[k] += 1
            if controllable is not None and controllable[k] > EPS and \
                    self._over_runs[k] * self.dt > self.stand_s + EPS:
                standing = True
        if not above:
            self._run = 0
            return
        self._samples += 1
        if self._run == 0:
            self._excursions += 1
        self._run += 1
        self._longest = max(self._longest, self._run)
        if blamed:
            self._controller += 1
            if len(self.blamed_at) < 100:
                self.blamed_at.append(t)
        self._standing += standing

    def report(self) -> FuseReport:
        return FuseReport(
            seconds_above=self._samples * self.dt,
            amp_seconds=self._amp_seconds,
            longest_s=self._longest * self.dt,
            excursions=self._excursions,
            controller_s=self._controller * self.dt,
            standing_s=self._standing * self.dt,
        )
