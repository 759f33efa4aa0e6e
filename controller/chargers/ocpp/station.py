"""Station: one OCPP charge point — one identity, one websocket at a time — and its
connectors, each an OcppCharger (the ChargerDriver of one load).

A charger without connector tables has one connector and is kept exactly as before: one
TxDefault profile on connector 0 (or the form it accepts), its state from whatever connector
it reports as 1. A charger with several connectors (a twin, a pillar) is kept per connector:
its StatusNotification, transactions and MeterValues go to the connector they name (1.6
connectorId, 2.0.1 evseId), and its limits go out in one of two forms (profiles.twin_forms):

- per connector: a TxDefault profile on each connector N (never one on 0, which OCPP 1.6
  applies to EACH connector), plus a station cap (ChargePointMaxProfile /
  ChargingStationMaxProfile) at what the connectors may draw together, where it takes one;
- station cap only, for a charger that refuses per-connector profiles: the cap alone, so
  the connectors together never draw more than their limits allow (profiles.station_cap_a).

In both, what the charger holds once evfuse is gone (the base profiles) is what the core
assumes: each connector its fallback, or the cap at what those fallbacks allow together.

A connector the charger reports that the config does not have is logged once and followed
like a configured one; what it draws, and the most it may draw beyond the plan while a car is
on it (nothing under a station cap; a connector-0 TxDefault's limit; else the charger's
max_a), are counted with the charger's first connector: never ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from controller.chargers.ocpp.clock import ClockOffset, SystemClock, parse_time
from controller.chargers.ocpp.profiles import (
    BASE_PROFILE_ID, CAP_PROFILE_IDS, DYNAMIC_PROFILE_ID, EACH, MAX_PURPOSE, TX_DEFAULT, ProfileForm,
    candidate_forms, profile_ids, station_cap_a, twin_forms)
from controller.config import ChargerConfig, ControlConfig, OcppConfig
from controller.model import CarState

if TYPE_CHECKING:
    from controller.chargers.ocpp.driver import OcppCharger
    from controller.chargers.ocpp.link import Link

log = logging.getLogger("controller.chargers.ocpp")

UNPLACED = 10_000  # the unknown connector of reports that name none (above any real id)


@dataclass(frozen=True)
class OcppSettings:
    """What every OCPP driver needs beyond its own [[charger]] table."""

    ocpp: OcppConfig
    control: ControlConfig
    voltage_v: float
    grid: str = "TN"  # [site] grid: "IT" converts amps to watts phase-to-phase


@dataclass(frozen=True)
class Item:
    """One profile evfuse keeps on the charger: where, in what form, at what limit, and
    whose limit it carries (their acknowledgements wait for it)."""

    key: str  # "c2" (connector 2), "cap", "one" (a charger with one connector)
    form: ProfileForm  # its purpose, target and stack levels
    ids: tuple[int, int]  # (base, dynamic) profile ids
    limit_a: float
    fallback_a: float  # what its base profile holds
    phases: int  # phases in use, for W
    loads: tuple  # the OcppChargers whose limit it carries
    age_s: float = 0.0  # Relative: how long ago the connector's transaction started
    required: bool = True  # False: the station cap beside per-connector profiles


class Station:
    def __init__(self, identity: str, settings: OcppSettings, clock=None):
        self.id = identity
        self.settings = settings
        self.clock = clock or SystemClock()
        self.offset = ClockOffset()
        self.form: ProfileForm | None = None  # the profile form this charger accepted last
        self.cap_held = False  # per-connector form: the station cap was accepted too
        self.notes: dict[str, str] = {}
        self.protocol = "ocpp"
        self.fallback_protected = False  # base profile(s) accepted at the latest initialisation
        self.link: Link | None = None
        self.connectors: dict[int, OcppCharger] = {}  # configured, in file order
        self.unknown: dict[int, OcppCharger] = {}  # reported by the charger, not configured

    # ------------------------------------------------------------------ shape

    @property
    def several(self) -> bool:
        """The config gives it connector tables: kept per connector."""
        return any(c.config.charger_id for c in self.connectors.values())

    @property
    def config(self) -> ChargerConfig:
        """The keys every connector shares (password, profile_kind): the first one's."""
        return next(iter(self.connectors.values())).config

    def add(self, charger: OcppCharger) -> None:
        self.connectors[charger.config.connector_id] = charger
        self.unknown.pop(charger.config.connector_id, None)

    @property
    def closed(self) -> bool:
        return all(c.closed for c in self.connectors.values())

    async def quiet(self) -> None:
        """Wait while any of its connectors stays quiet (a resumed charger before the first
        valid sample: its profiles are not touched, so its lease is not extended)."""
        for c in self.loads():
            await c.quiet()

    def loads(self) -> list[OcppCharger]:
        return list(self.connectors.values())

    # ------------------------------------------------------------------ from handlers

    def connector(self, number) -> OcppCharger | None:
        """The connector a message names (a charger without connector tables is connector 1);
        an unknown one is followed and logged once. None for 0 (the whole charger) and nonsense."""
        if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
            return None
        if number in self.connectors:
            return self.connectors[number]
        if number not in self.unknown:
            from controller.chargers.ocpp.driver import OcppCharger  # a cycle at import time
            first = next(iter(self.connectors.values()), None)
            shape = first.config if first is not None else ChargerConfig(id=self.id)
            stray = ChargerConfig(**{**shape.__dict__, "id": f"{self.id}/{number}", "connector": number,
                                     "charger_id": self.id})
            self.unknown[number] = OcppCharger(stray, self)
            self.notes["unknown_connectors"] = ", ".join("?" if n == UNPLACED else str(n)
                                                         for n in sorted(self.unknown))
            counted = first.id if first else "nothing"
            if number == UNPLACED:
                self.event(logging.WARNING, "reports a transaction on a connector it never named: what it "
                           f"draws is counted with {counted}", FAULT="unknown-connector")
            else:
                self.event(logging.WARNING, f"reports connector {number}, which the config does not have: "
                           f"followed, and what it draws is counted with {counted} "
                           f"(add a [[charger.connector]] with id = {number})",
                           FAULT="unknown-connector", CONNECTOR=number)
        return self.unknown[number]

    def unplaced(self) -> OcppCharger:
        """Where a report goes that names no connector the charger has told us of (a 2.0.1
        transaction begun before evfuse knew it): followed like an unknown connector, so what
        it draws is counted, never given to a connector it may not be on."""
        if UNPLACED not in self.unknown:
            self.connector(UNPLACED)
        return self.unknown[UNPLACED]

    def by_transaction(self, tx_id) -> OcppCharger | None:
        for c in list(self.connectors.values()) + list(self.unknown.values()):
            if c.tx_id is not None and c.tx_id == str(tx_id):
                return c
        return None

    def everyone(self) -> list[OcppCharger]:
        return list(self.connectors.values()) + list(self.unknown.values())

    def saw_timestamp(self, text: str | None) -> None:
        self.offset.observe(parse_time(text), self.clock.wall())

    def stray_draw(self, charger: OcppCharger) -> tuple[float, ...] | None:
        """What unknown connectors draw, per line, for the first configured connector to count."""
        if not self.unknown or next(iter(self.connectors.values()), None) is not charger:
            return None
        lines = [0.0, 0.0, 0.0]
        for stray in self.unknown.values():
            for k, amps in enumerate(stray.own_draw() or ()):
                lines[k] += amps
        return tuple(lines)

    def stray_bound(self, charger: OcppCharger) -> float:
        """The most unknown connectors with a car may draw beyond the plan, per phase, for the
        first configured connector to be counted at (its bound, not its draw: what it draws is
        in stray_draw). 0 when a station cap holds them inside the plan's sum; a connector-0
        TxDefault gives each of them the same limit as this one; with nothing on them, the
        charger's max_a."""
        if not self.unknown or next(iter(self.connectors.values()), None) is not charger:
            return 0.0
        present = [c for c in self.unknown.values() if c.car not in (CarState.NO_CAR, CarState.FAULT)]
        if not present or self.form is None:
            return 0.0 if not present else len(present) * self._max_a()
        capped = self.form.purpose != TX_DEFAULT or (self.several and self.form.target == EACH and self.cap_held)
        if capped:
            return 0.0
        if self.form.target == 0:  # a TxDefault on 0 applies to EACH connector
            return len(present) * (charger.acked_a or 0.0)
        return len(present) * self._max_a()

    def _max_a(self) -> float:
        first = self.config
        return first.charger_max_a or first.max_a

    # ------------------------------------------------------------------ for the link

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
        leases = [c.lease_until for c in self.connectors.values()]
        self.event(logging.WARNING, "disconnected", REASON="disconnect",
                   LEASE_UNTIL=min((x for x in leases if x is not None), default=None))

    def release_waiters(self) -> None:
        for c in self.connectors.values():
            c.release_waiters()

    def event(self, level: int, message: str, **fields) -> None:
        """One structured log line about a state change of the whole charger."""
        log.log(level, "%s: %s", self.id, message, extra={"CHARGER_ID": self.id, **fields})

    def forms(self, version: str, max_stack_level: int | None) -> list[ProfileForm]:
        kind = self.config.profile_kind.capitalize()
        forms = (twin_forms if self.several else candidate_forms)(version, kind, max_stack_level)
        if self.form in forms:  # what it took last time first
            forms.remove(self.form)
            forms.insert(0, self.form)
        return forms

    def describe_form(self) -> str | None:
        if self.form is None:
            return None
        text = self.form.describe()
        if not self.several:
            return text
        if self.form.target == EACH:
            return text + (" + station cap" if self.cap_held else " (no station cap: the charger refused it)")
        return text + ": station cap only, its connectors share it (the charger refuses per-connector profiles)"

    def items(self, form: ProfileForm, version: str) -> list[Item]:
        """The profiles to keep on the charger in `form`, in the order to send them: decreases
        first, then the station cap, then increases, so the charger never holds more than the
        plan in between."""
        now = self.clock.monotonic()
        loads = self.loads()
        if not self.several:
            c = loads[0]
            return [Item("one", form, (BASE_PROFILE_ID, DYNAMIC_PROFILE_ID), c.wanted_limit()[0], c.fallback_a,
                         len(c.config.phases), (c,), c.tx_age(now))]
        station_phases = len({p for c in loads for p in c.config.phases})
        cap_form = ProfileForm(MAX_PURPOSE[version], 0, "Absolute", form.base_level, form.dynamic_level)
        cap = Item("cap", cap_form if form.target == EACH else form, CAP_PROFILE_IDS if form.target == EACH
                   else (BASE_PROFILE_ID, DYNAMIC_PROFILE_ID),
                   station_cap_a([(c.config.phases, c.wanted_limit()[0]) for c in loads]),
                   station_cap_a([(c.config.phases, c.fallback_a) for c in loads]),
                   station_phases, tuple(loads) if form.target != EACH else (),
                   required=form.target != EACH)
        if form.target != EACH:
            return [cap]
        down, up = [], []
        for c in loads:
            n = c.config.connector_id
            item = Item(f"c{n}", replace(form.on(n), purpose=TX_DEFAULT), profile_ids(n), c.wanted_limit()[0],
                        c.fallback_a, len(c.config.phases), (c,), c.tx_age(now))
            (down if c.acked_a is not None and item.limit_a < c.acked_a else up).append(item)
        return down + [cap] + up

    def compliance_limit(self, charger: OcppCharger) -> float | None:
        """The limit a connector's draw is judged by: its own, or with the station cap alone
        the cap (the charger may give any connector all of it). Each connector's is the lower
        of what it acknowledged and what we want: a charger that refuses a cut (some refuse a
        0 A pause) and lets its car draw on does not obey, whatever it acknowledged."""
        if self.several and self.form is not None and self.form.target != EACH and charger.acked_a is not None:
            return station_cap_a([(c.config.phases, c.obeyed_a() or 0.0) for c in self.loads()])
        return charger.obeyed_a()

