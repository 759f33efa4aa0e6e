"""OcppCharger: the ChargerDriver of one configured OCPP charger.

It outlives connections. The central system attaches a Link (one websocket session) when
the charger connects and detaches it when it drops; everything the runtime reads (draw, car
state, compliance, lease) stays here, so a charger that drops keeps its last measured draw
and the time its leased profile expires.

Contract with the runtime: `apply(limit)` records the desired limit and, when the charger is
online, returns whether it accepted it. The latest desired limit is what the charger gets on
every (re)connect and every lease renewal; before the first `apply` it is the charger's
fallback (config.charger_fallback_a: 0 for mode "off", else control.fallback_a capped at max_a).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controller.chargers.base import ChargerDriver, DriverStatus
from controller.chargers.ocpp.clock import ClockOffset, SystemClock, parse_time
from controller.chargers.ocpp.compliance import ComplianceWatch
from controller.chargers.ocpp.meter import parse_meter_values
from controller.chargers.ocpp.profiles import ProfileForm, round_down_a
from controller.config import ChargerConfig, ControlConfig, OcppConfig, charger_fallback_a
from controller.model import CarState, ChargerReading

if TYPE_CHECKING:
    from controller.chargers.ocpp.link import Link

log = logging.getLogger("controller.chargers.ocpp")

# How long close() may spend leaving a charger at the fallback limit.
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class OcppSettings:
    """What every OCPP driver needs beyond its own [[charger]] table."""

    ocpp: OcppConfig
    control: ControlConfig
    voltage_v: float


class OcppCharger(ChargerDriver):
    def __init__(self, config: ChargerConfig, settings: OcppSettings, clock=None):
        super().__init__(config)
        self.settings = settings
        # what its base profile holds once evfuse is gone, and its limit before the first apply
        self.fallback_a = round_down_a(charger_fallback_a(config, settings.control))
        self.clock = clock or SystemClock()
        self.offset = ClockOffset()
        self.form: ProfileForm | None = None  # the profile form this charger accepted last
        self.notes: dict[str, str] = {}
        self.protocol = "ocpp"
        self.fallback_protected = False  # base profile accepted at the latest initialisation
        self.link: Link | None = None
        self._target_a: float | None = None
        self._target_gen = 0
        self._acked_gen = -1
        self._acked_ok = False
        self._ack_event = asyncio.Event()
        self._limit_a: float | None = None  # last limit the charger accepted
        self._lease_until: float | None = None
        self._draw: tuple[float, ...] | None = None
        self._draw_at: float | None = None  # monotonic time of the last MeterValues with currents
        self._power_w: float | None = None  # Power.Active.Import, for a charger that reports no currents
        self._car = CarState.UNKNOWN
        self.tx_id: str | None = None
        self.tx_started_mono: float | None = None
        self._watch = ComplianceWatch(settings.ocpp.compliance_tolerance_a,
                                      settings.ocpp.compliance_allowance_s)
        self._closed = False
        self.phases_in_use: int | None = None  # from the core's active phases (use_phases)

    # ------------------------------------------------------------------ runtime API

    def reading(self, now: float) -> ChargerReading:
        online = self.link is not None and self.link.ready
        return ChargerReading(online=online, car=self._car, draw_lines_a=self._draw, draw_at=self._draw_at,
                              lease_until=None if online else self._lease_until,
                              compliant=self._watch.compliant, acked_a=self._limit_a,
                              power_w=self._power_w if self._draw is None else None)

    async def apply(self, limit_a: float) -> bool:
        limit = min(round_down_a(limit_a), self.config.max_a)
        if self._target_a is not None and limit < self._target_a:
            self._watch.limit_lowered(self.clock.monotonic())
        self._target_a = limit
        self._target_gen += 1
        gen = self._target_gen
        link = self.link
        if link is None or not link.ready or self._closed:
            return False
        link.wake()
        while self._acked_gen < gen:
            await self._ack_event.wait()
            if self.link is not link or not link.ready:
                return False
        return self._acked_ok

    def use_phases(self, n: int | None) -> None:
        """The phases the core sees the car use (None: not known). A watt limit is converted
        with them, so a change re-sends the limit at once."""
        if n == self.phases_in_use:
            return
        self.phases_in_use = n
        if self.link is not None and self.link.ready:
            self.link.wake()

    def status(self) -> DriverStatus:
        notes = dict(self.notes)
        if self.form is not None:
            notes["profile"] = self.form.describe()
        if abs(self.offset.seconds) >= 1:
            notes["clock_offset_s"] = f"{self.offset.seconds:+.0f}"
        return DriverStatus(protocol=self.protocol, connected=self.link is not None,
                            limit_a=self._limit_a, compliant=self._watch.compliant,
                            fallback_protected=self.fallback_protected, notes=notes)

    async def close(self, fallback_a: float | None) -> None:
        """Leave the charger at fallback_a (if given and reachable), then stop renewing."""
        if fallback_a is not None and self.link is not None and self.link.ready:
            try:
                await asyncio.wait_for(self.apply(fallback_a), CLOSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.event(logging.WARNING, "fallback limit not confirmed before shutdown",
                           REASON="close-timeout")
        self._closed = True
        if self.link is not None:
            await self.link.stop_maintaining()

    def retune_watch(self) -> None:
        """New compliance settings (a reload): judged afresh from now on."""
        self._watch = ComplianceWatch(self.settings.ocpp.compliance_tolerance_a,
                                      self.settings.ocpp.compliance_allowance_s)

    # ------------------------------------------------------------------ for the link

    @property
    def closed(self) -> bool:
        return self._closed

    def wanted_limit(self) -> tuple[float, int]:
        """(limit to hold the charger at, generation of that wish)."""
        target = self.fallback_a if self._target_a is None else self._target_a
        return min(round_down_a(target), self.config.max_a), self._target_gen

    def limit_sent(self, gen: int, limit_a: float, accepted: bool, lease_until: float | None) -> None:
        if accepted:
            if self._limit_a != limit_a:
                self.event(logging.INFO, "limit accepted", LIMIT_A=limit_a)
            self._limit_a = limit_a
            self._lease_until = lease_until
        self._acked_gen = max(self._acked_gen, gen)
        self._acked_ok = accepted
        self.release_waiters()

    def attached(self, link: Link) -> None:
        self.link = link
        self.protocol = "ocpp" + link.version
        self.offset.reset()
        self.event(logging.INFO, "connected", REASON="connect", PROTOCOL=self.protocol)

    def detached(self, link: Link) -> None:
        if self.link is not link:
            return
        self.link = None
        self.release_waiters()
        self.event(logging.WARNING, "disconnected", REASON="disconnect", LEASE_UNTIL=self._lease_until)

    def release_waiters(self) -> None:
        """Let apply() calls re-check: acknowledged, or link down / not ready any more."""
        self._ack_event.set()
        self._ack_event = asyncio.Event()

    def event(self, level: int, message: str, **fields) -> None:
        """One structured log line about a state change of this charger."""
        log.log(level, "%s: %s", self.id, message, extra={"CHARGER_ID": self.id, **fields})

    # ------------------------------------------------------------------ from handlers

    def saw_timestamp(self, text: str | None) -> None:
        self.offset.observe(parse_time(text), self.clock.wall())

    def set_car(self, car: CarState) -> None:
        if car != self._car:
            self._car = car
            self.event(logging.INFO, f"car {car.value}", CAR=car.value)

    def transaction_started(self, tx_id: str) -> None:
        self.tx_id = tx_id
        self.tx_started_mono = self.clock.monotonic()
        self.event(logging.INFO, "transaction started", TRANSACTION_ID=tx_id)

    def transaction_ended(self) -> None:
        if self.tx_id is not None:
            self.event(logging.INFO, "transaction ended", TRANSACTION_ID=self.tx_id)
        self.tx_id = None
        self.tx_started_mono = None
        if self._draw is not None:
            self._draw = tuple(0.0 for _ in self._draw)
            self._draw_at = self.clock.monotonic()

    def meter_values(self, meter_value: list) -> None:
        report = parse_meter_values(meter_value, len(self.config.phases))
        wall = self.clock.wall()
        for stamp in report.timestamps:
            self.offset.observe(stamp, wall)
        if report.offered_a is not None:
            self.notes["offered_a"] = f"{report.offered_a:g}"
        if report.lines_a is None:
            if report.power_w is not None and self._draw is None:
                self._power_w = report.power_w  # the core uses it where the wiring says how
                self._draw_at = self.clock.monotonic()
            return
        self._draw = report.lines_a
        self._draw_at = self.clock.monotonic()
        if self._watch.observe(self.clock.monotonic(), self._limit_a, report.lines_a):
            if self._watch.compliant:
                self.event(logging.INFO, "draws within its limit again", REASON="compliant")
            else:
                self.event(logging.ERROR, "draws above its limit: counted as fixed load",
                           FAULT="non-compliant", LIMIT_A=self._limit_a, DRAW_A=max(report.lines_a))
