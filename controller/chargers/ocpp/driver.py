"""OcppCharger: the ChargerDriver of one OCPP load — a charger, or one connector of a charger
with several (its Station holds the link and what the connectors share).

It outlives connections. The central system attaches a Link (one websocket session) to the
station when the charger connects and detaches it when it drops; everything the runtime reads
(draw, car state, compliance, lease) stays here, so a charger that drops keeps its last
measured draw and the time its leased profile expires.

Contract with the runtime: `apply(limit)` records the desired limit and, when the charger is
online, returns whether it accepted it. The latest desired limit is what the charger gets on
every (re)connect and every lease renewal; before the first `apply` it is the charger's
fallback (config.charger_fallback_a: 0 for mode "off", else control.fallback_a capped at max_a).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from controller.chargers.base import ChargerDriver, DriverStatus, QuietGate
from controller.chargers.ocpp.compliance import ComplianceWatch
from controller.chargers.ocpp.meter import parse_meter_values
from controller.chargers.ocpp.profiles import round_down_a
from controller.chargers.ocpp.station import OcppSettings, Station
from controller.core.ask import ASK_EVERY_S
from controller.config import ChargerConfig, charger_fallback_a
from controller.model import CarState, ChargerReading

if TYPE_CHECKING:
    from controller.chargers.ocpp.link import Link

__all__ = ["OcppCharger", "OcppSettings"]

log = logging.getLogger("controller.chargers.ocpp")

# How long close() may spend leaving a charger at the fallback limit.
CLOSE_TIMEOUT_S = 5.0


class OcppCharger(ChargerDriver):
    def __init__(self, config: ChargerConfig, station: Station | OcppSettings, clock=None):
        super().__init__(config)
        if isinstance(station, OcppSettings):  # a charger of its own (tests, tools)
            station = Station(config.station, station, clock)
            station.add(self)
        self.station = station
        # what its base profile holds once evfuse is gone, and its limit before the first apply
        self.fallback_a = round_down_a(charger_fallback_a(config, station.settings.control))
        self.notes: dict[str, str] = {}  # this connector's own (the station's are beside them)
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
        self.plugs: dict[int, CarState] = {}  # 2.0.1: what each connector of this EVSE last reported
        self.tx_id: str | None = None
        self.tx_started_mono: float | None = None
        self._watch = ComplianceWatch(self.settings.ocpp.compliance_tolerance_a,
                                      self.settings.ocpp.compliance_allowance_s)
        self._closed = False
        self._quiet = QuietGate(lambda: self.clock.monotonic())  # stay_quiet(): no initialisation before it ends
        self.phases_in_use: int | None = None  # from the core's active phases (use_phases)
        self._asked_at = -math.inf  # last ask_report() sent

    # ------------------------------------------------------------------ what the station shares

    @property
    def settings(self) -> OcppSettings:
        return self.station.settings

    @settings.setter
    def settings(self, value: OcppSettings) -> None:
        self.station.settings = value

    @property
    def link(self) -> Link | None:
        return self.station.link

    @property
    def clock(self):
        return self.station.clock

    @property
    def form(self):
        return self.station.form

    # ------------------------------------------------------------------ runtime API

    def reading(self, now: float) -> ChargerReading:
        online = self.link is not None and self.link.ready
        draw = self._draw
        stray = self.station.stray_draw(self)
        if stray is not None and any(stray):  # an unknown connector's car is counted here
            draw = tuple((draw[k] if draw is not None and k < len(draw) else 0.0) + stray[k]
                         for k in range(max(len(draw or ()), len(self.config.phases))))
        acked = self._limit_a
        extra = self.station.stray_bound(self)  # what unknown connectors may draw beyond the plan
        if extra:
            acked = (acked or 0.0) + extra
        return ChargerReading(online=online, car=self._car, draw_lines_a=draw, draw_at=self._draw_at,
                              lease_until=None if online else self._lease_until,
                              compliant=self._watch.compliant, acked_a=acked,
                              power_w=self._power_w if draw is None else None)

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

    def ask_report(self) -> None:
        """TriggerMessage MeterValues for its connector, at most once per ASK_EVERY_S."""
        now = self.clock.monotonic()
        link = self.link
        if link is None or self._closed or now - self._asked_at < ASK_EVERY_S:
            return
        if link.ask_meter_values(self.config.connector):
            self._asked_at = now

    def use_phases(self, n: int | None) -> None:
        """The phases the core sees the car use (None: not known). A watt limit is converted
        with them, so a change re-sends the limit at once."""
        if n == self.phases_in_use:
            return
        self.phases_in_use = n
        if self.link is not None and self.link.ready:
            self.link.wake()

    def status(self) -> DriverStatus:
        notes = {**self.station.notes, **self.notes}
        form = self.station.describe_form()
        if form is not None:
            notes["profile"] = form
        if abs(self.station.offset.seconds) >= 1:
            notes["clock_offset_s"] = f"{self.station.offset.seconds:+.0f}"
        return DriverStatus(protocol=self.station.protocol, connected=self.link is not None,
                            limit_a=self._limit_a, compliant=self._watch.compliant,
                            fallback_protected=self.station.fallback_protected, notes=notes)

    async def close(self, fallback_a: float | None) -> None:
        """Leave the charger at fallback_a (if given and reachable), then stop renewing."""
        if fallback_a is not None and self.link is not None and self.link.ready:
            try:
                await asyncio.wait_for(self.apply(fallback_a), CLOSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.event(logging.WARNING, "fallback limit not confirmed before shutdown",
                           REASON="close-timeout")
        self._closed = True
        if self.link is not None and self.station.closed:
            await self.link.stop_maintaining()

    async def leave(self, fallback_a: float, stop_lease_s: float) -> None:
        """Planned stop: the dynamic profile at the limit it holds, valid stop_lease_s only
        (never longer than lease_s); below it the base profile at the fallback takes over by
        itself. Not connected: it keeps what it holds until its lease ends anyway."""
        link = self.link
        self._closed = True
        if link is None or not link.ready or self.form is None:
            if link is not None:
                await link.stop_maintaining()
            return
        await link.stop_maintaining()
        lease = min(stop_lease_s, self.settings.ocpp.lease_s)
        try:
            ok, detail = await asyncio.wait_for(link.send_dynamic(self.form, lease), CLOSE_TIMEOUT_S)
        except Exception as e:  # a timeout or a dead link: its normal lease runs out
            ok, detail = False, repr(e)
        if ok:
            self.event(logging.INFO, f"limit kept for {lease:g} s more (planned stop)",
                       LIMIT_A=self._limit_a, LEASE_UNTIL=self._lease_until, REASON="stop")
        else:
            self.event(logging.WARNING, f"short lease not confirmed ({detail}): it keeps its limit "
                       f"until its lease ends", REASON="stop", LEASE_UNTIL=self._lease_until)

    def lease_end(self) -> float | None:
        return self._lease_until if self._limit_a is not None else None

    def stay_quiet(self, until: float | None) -> None:
        self._quiet.hold(until)

    async def quiet(self) -> None:
        """Wait while stay_quiet() holds (the link calls this before initialising)."""
        await self._quiet.wait()

    def retune_watch(self) -> None:
        """New compliance settings (a reload): judged afresh from now on."""
        self._watch = ComplianceWatch(self.settings.ocpp.compliance_tolerance_a,
                                      self.settings.ocpp.compliance_allowance_s)

    # ------------------------------------------------------------------ for the link

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def acked_a(self) -> float | None:
        return self._limit_a

    @property
    def lease_until(self) -> float | None:
        return self._lease_until

    def own_draw(self) -> tuple[float, ...] | None:
        return self._draw

    def tx_age(self, now: float) -> float:
        return now - self.tx_started_mono if self.tx_started_mono is not None else 0.0

    def wanted_limit(self) -> tuple[float, int]:
        """(limit to hold the charger at, generation of that wish)."""
        target = self.fallback_a if self._target_a is None else self._target_a
        return min(round_down_a(target), self.config.max_a), self._target_gen

    def obeyed_a(self) -> float | None:
        """The limit its car must keep to: the one it acknowledged, or a lower one we sent that
        it refused (None: nothing acknowledged yet)."""
        if self._limit_a is None:
            return None
        return self._limit_a if self._target_a is None else min(self._limit_a, self.wanted_limit()[0])

    def limit_sent(self, gen: int, limit_a: float, accepted: bool, lease_until: float | None) -> None:
        if accepted:
            if self._limit_a != limit_a:
                self.event(logging.INFO, "limit accepted", LIMIT_A=limit_a)
            self._limit_a = limit_a
            self._lease_until = lease_until
        self._acked_gen = max(self._acked_gen, gen)
        self._acked_ok = accepted
        self.release_waiters()

    def release_waiters(self) -> None:
        """Let apply() calls re-check: acknowledged, or link down / not ready any more."""
        self._ack_event.set()
        self._ack_event = asyncio.Event()

    def event(self, level: int, message: str, **fields) -> None:
        """One structured log line about a state change of this charger (connector)."""
        log.log(level, "%s: %s", self.id, message, extra={"CHARGER_ID": self.id, **fields})

    # ------------------------------------------------------------------ from handlers

    def set_car(self, car: CarState) -> None:
        if car != self._car:
            self._car = car
            self.event(logging.INFO, f"car {car.value}", CAR=car.value)

    @property
    def car(self) -> CarState:
        return self._car

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
            self.station.offset.observe(stamp, wall)
        if report.offered_a is not None:
            self.notes["offered_a"] = f"{report.offered_a:g}"
        if report.lines_a is None:
            if report.power_w is not None and self._draw is None:
                self._power_w = report.power_w  # the core uses it where the wiring says how
                self._draw_at = self.clock.monotonic()
            return
        self._draw = report.lines_a
        self._draw_at = self.clock.monotonic()
        limit = self.station.compliance_limit(self)
        if self._watch.observe(self.clock.monotonic(), limit, report.lines_a):
            if self._watch.compliant:
                self.event(logging.INFO, "draws within its limit again", REASON="compliant")
            else:
                self.event(logging.ERROR, "draws above its limit: counted as fixed load",
                           FAULT="non-compliant", LIMIT_A=limit, DRAW_A=max(report.lines_a))
