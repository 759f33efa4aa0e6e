"""Time above the main fuse, measured on the simulated meter samples.

A sample is above the fuse when any phase's current exceeds site.fuse_a (not the control
limit fuse_a - margin_a: the margin is ours, the fuse is physics). Each sample stands for the
step of dt seconds that follows it, so:

  seconds_above     dt x number of samples above the fuse
  amp_seconds       sum over samples and phases of (current - fuse_a) x dt
  longest_s         dt x the longest run of consecutive samples above the fuse
  excursions        number of such runs
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FuseReport:
    seconds_above: float
    amp_seconds: float
    longest_s: float
    excursions: int


class FuseWatch:
    def __init__(self, fuse_a: float, dt: float):
        self.fuse_a = fuse_a
        self.dt = dt
        self._samples_above = 0
        self._amp_seconds = 0.0
        self._run = 0
        self._longest = 0
        self._excursions = 0

    def add(self, current_a: tuple[float, float, float]) -> None:
        fuse = self.fuse_a
        a, b, c = current_a
        if a <= fuse and b <= fuse and c <= fuse:
            self._run = 0
            return
        self._samples_above += 1
        self._amp_seconds += sum(x - fuse for x in current_a if x > fuse) * self.dt
        if self._run == 0:
            self._excursions += 1
        self._run += 1
        self._longest = max(self._longest, self._run)

    def report(self) -> FuseReport:
        return FuseReport(
            seconds_above=self._samples_above * self.dt,
            amp_seconds=self._amp_seconds,
            longest_s=self._longest * self.dt,
            excursions=self._excursions,
        )
