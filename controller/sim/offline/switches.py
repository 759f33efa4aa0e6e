"""Simulated switchable loads for the closed loop (controller/sim/offline/loop.py): a boiler or
a heat pump behind a smart plug or a relay, beside the simulated chargers and with the same
interface (advance, draw_on_site, reading, command, ...), so the loop and its watches count
them like any load on the TRUE currents.

The relay follows a command at once; the load behind it starts drawing (or stops) after its
response delay (a compressor ramping). When on it draws `draw_w` (at most the configured
power_w: what power_w promises) unless its own thermostat is satisfied (an `idle` interval:
it draws nothing while switched on). With a lease (a Shelly's toggle_after) it switches off by
itself once its link has been down for the lease; without one (a relay board, a Pi pin) it
stays as it is. Its reading: the device's output (CHARGING on, CONNECTED off), acked_a its
whole current when on, and its own measurement where it has one (a 1-phase load per line,
a multi-phase one as power only); one that measures nothing reports 0 A per line while its
relay reads back open, as the drivers do (controller/loads/base.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from controller.core.site import ChargerSpec
from controller.model import CarState, ChargerReading
from controller.sim.offline.cars import INITIAL, Link


@dataclass(frozen=True)
class SwitchPlan:
    draw_w: float  # what it truly draws when switched on and calling for heat
    delay_s: float = 0.5  # relay + load response
    measures: bool = True  # it reports its own power (a Shelly PM), else nothing
    idle: tuple[tuple[float, float], ...] = ()  # (from, to): its thermostat is satisfied


class SimSwitch:
    def __init__(self, spec: ChargerSpec, plan: SwitchPlan, voltage_v: float, link: Link | None = None,
                 leased: bool = True):
        self.spec = spec
        self.plan = plan
        self.plans = [plan]  # the loop reads delay_s of every plan
        self.voltage_v = voltage_v
        self.link = link or Link()
        self.leased = leased
        self.metering = f"{'measures' if plan.measures else 'measures nothing'}, {'lease' if leased else 'no lease'}"
        self.wiring = spec.wiring
        self.on = False  # the relay's output
        self.origin: object = INITIAL
        self.effective_on = False  # what the load behind it does now
        self.effective_origin: object = INITIAL
        self.pending: deque[tuple[float, bool, object]] = deque()
        self.acked_a: float | None = None
        self.draw_a = 0.0
        self.site_phases = spec.phase_idx
        self.energy_wh = 0.0
        self.starts = self.stops = 0
        self.unexplained: list[tuple[float, object]] = []
        self.per_car = [[0, 0, 0]]
        self.cars_plugged = 1
        self._online = True
        self._down_since: float | None = None

    # ---------------------------------------------------------------- link
    def online(self, now: float) -> bool:
        return not any(a <= now < b for a, b in self.link.blips)

    def lease_until(self) -> float | None:
        if self._down_since is None or not self.leased:
            return None
        return self._down_since + self.link.lease_s

    def command(self, limit_a: float, now: float, origin: object = None) -> bool:
        if not self.online(now):
            return False
        self._switch(limit_a > 0, now, origin)
        return True

    def forget(self) -> None:
        self.acked_a = None

    def ask(self, now: float) -> None:
        """Asked for a fresh report (core/ask.py): a switch's driver polls its device every
        second anyway and has nothing else to trigger, as the real drivers (base no-op)."""

    def _switch(self, on: bool, now: float, origin: object) -> None:
        self.on, self.origin = on, origin
        self.pending.append((now + self.plan.delay_s, on, origin))

    # ---------------------------------------------------------------- physics
    def advance(self, now: float, dt: float) -> None:
        online = self.online(now)
        if online != self._online:
            self._online = online
            self._down_since = None if online else now
        lease = self.lease_until()
        if lease is not None and now >= lease and self.on:
            self._switch(False, lease, "lease")  # the device's own timer
        while self.pending and self.pending[0][0] <= now:
            _, self.effective_on, self.effective_origin = self.pending.popleft()
        was = self.draw_a
        calling = not any(a <= now < b for a, b in self.plan.idle)
        n = len(self.site_phases)
        self.draw_a = self.plan.draw_w / (self.voltage_v * n) if self.effective_on and calling else 0.0
        self.energy_wh += self.draw_a * self.voltage_v * n * dt / 3600.0
        if was <= 0 < self.draw_a:
            self.starts += 1
        elif self.draw_a <= 0 < was:
            self.stops += 1

    def draw_on_site(self, out: list[float]) -> None:
        for p in self.site_phases:
            out[p] += self.draw_a

    # ---------------------------------------------------------------- what the runtime knows
    def reading(self, now: float) -> ChargerReading:
        online = self._online
        if online:  # the device says what its output is, whenever it is asked
            self.acked_a = self.spec.max_a if self.on else 0.0
        lines = power = None
        if online and self.plan.measures:
            if len(self.site_phases) == 1:
                lines = (self.draw_a,)
            else:
                power = self.draw_a * self.voltage_v * len(self.site_phases)
        elif online and not self.on:  # an open relay draws nothing: the runtime's drivers say so
            lines = (0.0,) * len(self.spec.wiring)
        known = self.acked_a is not None
        car = CarState.UNKNOWN if not known else CarState.CHARGING if self.acked_a > 0 else CarState.CONNECTED
        return ChargerReading(online=online, car=car, draw_lines_a=lines, power_w=power,
                              lease_until=None if online else self.lease_until(), acked_a=self.acked_a)
