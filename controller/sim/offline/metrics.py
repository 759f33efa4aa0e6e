"""Time above the main fuse, measured on the simulated meter samples.

A sample is above the fuse when any phase's current exceeds site.fuse_a (not the control
limit fuse_a - margin_a: the margin is ours, the fuse is physics). Each sample stands for the
step of dt seconds that follows it, so:

  seconds_above     dt x number of samples above the fuse
  amp_seconds       sum over samples and phases of (current - fuse_a) x dt
  longest_s         dt x the longest run of consecutive samples above the fuse
  excursions        number of such runs
  late_s            dt x samples above the fuse that come `grace_s` or more after the
                    latest trigger: the start of the excursion, or a rise of the household
                    load (net of PV) by RISE_A or more on any phase during it

No controller can undo an overload faster than the cars follow a new limit: an excursion
may last the cars' response delay + the link latency + one sample after whatever caused it.
When a second cause (a kettle switched on while the cars are still obeying the first cut)
arrives inside an excursion, the excursion may rightly last longer; late_s counts only what
outlasts the response to the latest cause, so it is 0 for a controller that reacts at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RISE_A = 1.0  # a household step this large during an excursion is a new cause (drift is not)


@dataclass(frozen=True)
class FuseReport:
    seconds_above: float
    amp_seconds: float
    longest_s: float
    excursions: int
    late_s: float


class FuseWatch:
    def __init__(self, fuse_a: float, dt: float, grace_s: float = math.inf):
        self.fuse_a = fuse_a
        self.dt = dt
        self.grace_s = grace_s
        self._samples_above = 0
        self._amp_seconds = 0.0
        self._run = 0
        self._longest = 0
        self._excursions = 0
        self._late = 0
        self._since_trigger = 0  # samples since the latest trigger, inside an excursion
        self._household: tuple[float, float, float] | None = None

    def add(self, current_a: tuple[float, float, float],
            household_a: tuple[float, float, float] | None = None) -> None:
        """One meter sample; household_a (net of PV) lets a household rise restart the grace."""
        rose = False
        if household_a is not None:
            before = self._household
            rose = before is not None and any(h - b >= RISE_A for h, b in zip(household_a, before))
            self._household = household_a
        fuse = self.fuse_a
        a, b, c = current_a
        if a <= fuse and b <= fuse and c <= fuse:
            self._run = 0
            return
        self._samples_above += 1
        self._amp_seconds += sum(x - fuse for x in current_a if x > fuse) * self.dt
        if self._run == 0:
            self._excursions += 1
        if self._run == 0 or rose:
            self._since_trigger = 0
        if self._since_trigger * self.dt >= self.grace_s - 1e-9:
            self._late += 1
        self._run += 1
        self._since_trigger += 1
        self._longest = max(self._longest, self._run)

    def report(self) -> FuseReport:
        return FuseReport(
            seconds_above=self._samples_above * self.dt,
            amp_seconds=self._amp_seconds,
            longest_s=self._longest * self.dt,
            excursions=self._excursions,
            late_s=self._late * self.dt,
        )
