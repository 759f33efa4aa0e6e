"""A simulated site on loopback, in real time: what `evfuse demo`, the end-to-end tests and
the reaction benchmark run the real controller against.

- a Modbus TCP meter (MeterServer, SDM630 map) reading household + every car's draw,
  refreshed every 50 ms;
- OCPP charge points built with the ocpp package (SimChargePoint), each with a car (a twin: a
  car per connector, each wired its own way);
- a household: a base load per phase plus whatever `household` (a function of seconds since
  start) returns, so a demo script or a test can step it.

    site = LiveSite(chargers=DEMO_CHARGERS)
    meter_port = await site.start_meter()
    config = site.config(meter_port)              # evfuse.toml text for this site
    ... start the controller with it, learn its OCPP port ...
    await site.start_chargers(ocpp_port)
    ...
    await site.stop()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from controller.model import PHASE_INDEX
from controller.sim.chargepoint import SimChargePoint, SimOptions
from controller.sim.meter_server import MeterServer

VOLTS = 230.0
METER_REFRESH_S = 0.05


@dataclass(frozen=True)
class SimConnector:
    """One connector of a charger with several (ids 1, 2, ...), a car of its own."""

    id: int
    wiring: str = "ABC"  # site phases its L1, L2, L3 are wired to
    max_a: float = 16.0
    priority: int = 1
    weight: float = 1.0
    plugged: bool = True


@dataclass(frozen=True)
class SimCharger:
    id: str
    wiring: str = "ABC"  # site phases its L1, L2, L3 are wired to
    options: SimOptions = field(default_factory=SimOptions)
    priority: int = 1
    weight: float = 1.0
    max_a: float = 16.0  # with connectors: the whole charger, per phase
    plugged: bool = True  # a car is plugged in at start
    connectors: tuple[SimConnector, ...] = ()  # a twin: its connectors (ids 1..n)
    sequential: bool = False
    true_wiring: str | None = None  # where its lines really go, if not `wiring` (a miswired bay)

    def sockets(self) -> tuple[SimConnector, ...]:
        """Its connectors, or the one it has."""
        return self.connectors or (SimConnector(1, self.wiring, self.max_a, self.priority, self.weight,
                                                self.plugged),)


DEMO_CHARGERS = (
    SimCharger("garage", "ABC", SimOptions(version="1.6", unit="A", response_delay_s=2.0)),
    SimCharger("carport", "B", SimOptions(version="1.6", unit="W", phases=1, response_delay_s=3.0)),
    SimCharger("street", "BCA", SimOptions(version="2.0.1", unit="A", response_delay_s=2.5), priority=2),
    SimCharger("twin", "ABC", SimOptions(version="1.6", unit="A", response_delay_s=2.0), max_a=20,
               connectors=(SimConnector(1, "ABC", 16), SimConnector(2, "BCA", 16, weight=2))),
)

BASE_LOAD_A = (3.0, 2.0, 2.5)


class LiveSite:
    def __init__(self, chargers=DEMO_CHARGERS, base_load_a=BASE_LOAD_A,
                 household: Callable[[float], tuple[float, float, float]] | None = None):
        self.chargers = tuple(chargers)
        self.base_load_a = base_load_a
        self.household = household or (lambda t: (0.0, 0.0, 0.0))
        self.meter = MeterServer("sdm630")
        self.points: dict[str, SimChargePoint] = {}
        self.started = time.monotonic()
        self.meter_a = (0.0, 0.0, 0.0)  # what the meter shows now
        # Other loads the meter sees, e.g. an emulated Modbus charger's car: each returns
        # amps per site phase.
        self.extra_loads: list[Callable[[], tuple[float, float, float]]] = []
        self._refresh: asyncio.Task | None = None

    # ------------------------------------------------------------------ life cycle

    async def start_meter(self) -> int:
        port = await self.meter.start_tcp()
        self._update_meter()
        self._refresh = asyncio.create_task(self._refresh_forever(), name="sim meter refresh")
        return port

    async def start_chargers(self, ocpp_port: int, host: str = "127.0.0.1") -> None:
        for c in self.chargers:
            await self.start_charger(c, ocpp_port, host)

    async def start_charger(self, c: SimCharger, ocpp_port: int, host: str = "127.0.0.1") -> SimChargePoint:
        # a twin has its connectors, or more (one the config does not have yet)
        options = replace(c.options, connectors=max(c.options.connectors, len(c.connectors)))
        cp = SimChargePoint(c.id, f"ws://{host}:{ocpp_port}", options)
        self.points[c.id] = cp
        await cp.start()
        for socket in c.sockets():
            if socket.plugged:
                await cp.plug_in(connector=socket.id)
        return cp

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
        await asyncio.gather(*(cp.stop() for cp in self.points.values()), return_exceptions=True)
        await self.meter.stop()

    # ------------------------------------------------------------------ the physics

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def car_draw_a(self) -> tuple[float, float, float]:
        """Every car's draw, on the site phases its charger is wired to."""
        out = [0.0, 0.0, 0.0]
        for c in self.chargers:
            cp = self.points.get(c.id)
            if cp is None:
                continue
            draws = cp.draws_a()
            for socket in c.sockets():
                # a miswired bay (true_wiring) is a single charger's: a twin's sockets are as wired
                wiring = c.true_wiring if c.true_wiring and not c.connectors else socket.wiring
                for phase in wiring[: cp.options.phases]:
                    out[PHASE_INDEX[phase]] += draws.get(socket.id, 0.0)
        for load in self.extra_loads:
            for p, amps in enumerate(load()):
                out[p] += amps
        return (out[0], out[1], out[2])

    def _update_meter(self) -> None:
        extra = self.household(self.elapsed())
        cars = self.car_draw_a()
        self.meter_a = tuple(self.base_load_a[p] + extra[p] + cars[p] for p in range(3))
        self.meter.set_all(list(self.meter_a), [VOLTS] * 3, [a * VOLTS for a in self.meter_a])

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(METER_REFRESH_S)
            self._update_meter()

    # ------------------------------------------------------------------ the controller's view

    def config(self, meter_port: int, fuse_a: float = 25.0, ocpp_listen: str = "127.0.0.1:0",
               extra: str = "", ocpp_extra: str = "", lease_s: float = 60) -> str:
        """evfuse.toml text for this site (extra: more TOML, e.g. a [control] table;
        ocpp_extra: more [ocpp] keys)."""
        lines = ["[site]", "phases = 3", f"voltage_v = {VOLTS:g}", f"fuse_a = {fuse_a:g}", "margin_a = 1",
                 "[meter]", 'profile = "sdm630"', 'host = "127.0.0.1"', f"port = {meter_port}",
                 "poll_interval_s = 0.25", "stale_after_s = 3",
                 "[ocpp]", f'listen = "{ocpp_listen}"', f"lease_s = {lease_s:g}", "meter_interval_s = 2",
                 ocpp_extra]
        for c in self.chargers:
            lines += ["[[charger]]", f'id = "{c.id}"', f'phases = "{c.wiring}"', f"max_a = {c.max_a:g}",
                      f"priority = {c.priority}", f"weight = {c.weight:g}"]
            if c.options.password:
                lines.append(f'password = "{c.options.password}"')
            if c.sequential:
                lines.append("sequential = true")
            for k in c.connectors:
                lines += ["  [[charger.connector]]", f"  id = {k.id}", f'  phases = "{k.wiring}"',
                          f"  max_a = {k.max_a:g}", f"  priority = {k.priority}", f"  weight = {k.weight:g}"]
        return "\n".join(lines) + "\n" + extra
