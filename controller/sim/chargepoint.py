"""Simulated OCPP charge points (1.6J and 2.0.1) with a simple car, as real websocket clients.

Built on the ocpp package, so evfuse's central system is tested against an independent
implementation of the protocol. Each SimChargePoint:
- boots, answers configuration requests, and takes charging profiles like a strict charger
  would (rejecting what OCPP 1.6 §3.13 / 2.0.1 K01 forbid, and what its options refuse);
- keeps the profiles it accepted with the replacement rules, and obeys their composite limit
  (controller.chargers.ocpp.composite) in its own clock, which may be off by clock_offset_s;
- has a car that draws min(limit, car_max_a) on every phase, response_delay_s after a profile
  change, and reports MeterValues per phase while a transaction runs;
- with `connectors=2` (or more) it is a twin: a car per connector, each with its own
  transaction, status and MeterValues, following the profiles with OCPP's per-connector
  semantics (a connector-0 TxDefault applies to EACH connector, one on N to that one, and the
  station cap limits what they draw together).

Used by the tests, the benchmark and `evfuse demo`:

    cp = SimChargePoint("garage", f"ws://127.0.0.1:{port}", SimOptions(version="2.0.1"))
    await cp.start()
    await cp.plug_in()
    ...
    await cp.stop()
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import ssl as ssl_module
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ocpp.charge_point import snake_to_camel_case
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import connect

from controller.chargers.ocpp.clock import format_time
from controller.chargers.ocpp.composite import (
    MAX_PURPOSES, HeldProfile, composite_limit_a, install, share_cap, station_limits_a)

WIRE_LOG = logging.getLogger("controller.sim.chargepoint.wire")
WIRE_LOG.setLevel(logging.WARNING)  # the ocpp package logs every frame at INFO


@dataclass
class SimOptions:
    version: str = "1.6"  # "1.6" | "2.0.1"
    unit: str = "A"  # the only schedule unit it takes: "A", "W", or "A,W"
    reject_purposes: frozenset[str] = frozenset()  # e.g. {"TxDefaultProfile"}
    reject_kinds: frozenset[str] = frozenset()  # e.g. {"Absolute"}: a charger with no clock
    reject_targets: frozenset[int] = frozenset()  # connector/EVSE ids it refuses profiles on
    ignore_limits: bool = False  # says Accepted, lets the car draw car_max_a anyway
    password: str = ""
    ssl: ssl_module.SSLContext | None = None  # for wss:// (security profile 2)
    car_max_a: float = 16.0
    response_delay_s: float = 0.0  # car follows a new limit this much later
    meter_interval_s: float = 5.0  # until the central system sets its own
    clock_offset_s: float = 0.0  # the charger's clock minus true UTC
    phases: int = 3
    voltage_v: float = 230.0
    max_stack_level: int = 8
    boot: bool = True  # send BootNotification on start (False = a reconnect without reboot)
    connectors: int = 1  # connectors (1.6) / EVSEs (2.0.1), ids 1..n, a car each
    answers_trigger: bool = True  # TriggerMessage MeterValues: reports at once (else NotImplemented)
    ignores_trigger: bool = False  # a TriggerMessage gets no answer at all (firmware that drops it)
    refuses_below_a: float = 0.0  # refuses any limit below this (some refuse a 0 A pause)


@dataclass
class ProfileRequest:
    """One SetChargingProfile as received, accepted or not."""

    target: int
    profile: dict
    accepted: bool
    frame_at: float  # time.perf_counter() when the raw frame arrived (for benchmarks)


class SimChargePoint:
    def __init__(self, cp_id: str, url: str, options: SimOptions | None = None):
        self.id = cp_id
        self.url = url.rstrip("/") + "/" + cp_id
        self.options = options or SimOptions()
        self.held: list[HeldProfile] = []  # profiles the charger holds (survive reconnects)
        self.requests: list[ProfileRequest] = []  # every SetChargingProfile seen
        self.config_changes: dict[str, str] = {}
        self.tx: dict[int, str] = {}  # connector -> its running transaction
        self.tx_start: dict[int, datetime] = {}  # connector -> when it started (charger clock)
        self.energy_wh = 0.0
        self.meter_interval_s = self.options.meter_interval_s
        self._previous_held: list[HeldProfile] = []
        self._held_changed_at = 0.0
        self._received = asyncio.Event()
        self._ws = None
        self._cp = None
        self._tasks: list[asyncio.Task] = []
        self._seq = itertools.count()
        self._frame_at = 0.0
        self.triggers = 0  # TriggerMessage requests received

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        o = self.options
        headers = {}
        if o.password:
            token = base64.b64encode(f"{self.id}:{o.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        protocol = "ocpp1.6" if o.version == "1.6" else "ocpp2.0.1"
        self._ws = await connect(self.url, subprotocols=[protocol], additional_headers=headers,
                                 ssl=o.ssl, open_timeout=10, max_size=2**20, compression=None)
        cls = _Sim16 if o.version == "1.6" else _Sim201
        self._cp = cls(self)
        self._tasks = [asyncio.create_task(self._cp.start(), name=f"sim-{self.id}-recv"),
                       asyncio.create_task(self._report_meter_values(), name=f"sim-{self.id}-meter")]
        if o.boot:
            await self._cp.boot()
        else:  # a reconnect: like most chargers, tell the connector state again
            await self._cp.status_again()

    @property
    def connected(self) -> bool:
        """The websocket to the central system is open (the central system may close it)."""
        return self._ws is not None and self._ws.state.name == "OPEN"

    async def stop(self) -> None:
        """Drop the connection (the charger keeps its profiles, like a real one)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    # ------------------------------------------------------------------ the cars

    @property
    def tx_id(self) -> str | None:
        """Connector 1's transaction (a charger with one connector)."""
        return self.tx.get(1)

    @property
    def tx_started_at(self) -> datetime | None:
        return self.tx_start.get(1)

    def now(self) -> datetime:
        """The charger's clock."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.options.clock_offset_s)

    @property
    def volts_per_amp(self) -> float:
        return self.options.voltage_v * self.options.phases

    def composite_limit_a(self, at: datetime | None = None, held: list[HeldProfile] | None = None,
                          connector: int = 1) -> float | None:
        """The limit this charger enforces on a connector at `at` (its own clock), from the
        profiles it holds (the station cap counted as if that connector were alone)."""
        return composite_limit_a(self.held if held is None else held, at or self.now(),
                                 volts_per_amp=self.volts_per_amp, connector=connector,
                                 tx_start=self.tx_start.get(connector))

    def draws_a(self, at: datetime | None = None) -> dict[int, float]:
        """What each connector's car draws per phase now (or at `at`, its own clock, with the
        profiles it holds now: what it does by itself once nobody renews them)."""
        o = self.options
        numbers = range(1, o.connectors + 1)
        if o.ignore_limits:
            return {n: (o.car_max_a if n in self.tx else 0.0) for n in numbers}
        following = at is not None or time.monotonic() - self._held_changed_at >= o.response_delay_s
        held = self.held if following else self._previous_held
        per, cap = station_limits_a(held, at or self.now(), volts_per_amp=self.volts_per_amp,
                                    tx_starts={n: self.tx_start.get(n) for n in numbers})
        wants = {n: (0.0 if n not in self.tx else o.car_max_a if per[n] is None else min(per[n], o.car_max_a))
                 for n in numbers}
        return share_cap(wants, cap)

    def draw_a(self, connector: int = 1) -> float:
        """What the car on a connector draws per phase now."""
        return self.draws_a()[connector]

    async def plug_in(self, id_tag: str = "SIMTAG", connector: int = 1) -> None:
        self.tx_start[connector] = self.now()
        await self._cp.start_transaction(id_tag, connector)

    async def unplug(self, connector: int = 1) -> None:
        await self._cp.stop_transaction(connector)
        self.tx.pop(connector, None)
        self.tx_start.pop(connector, None)

    async def send_meter_values(self, connector: int = 1) -> None:
        await self._cp.meter_values(self.draw_a(connector), connector)

    def trigger(self, requested_message: str) -> str:
        """The answer to a TriggerMessage (the report follows, see `triggered`)."""
        self.triggers += 1
        if requested_message != "MeterValues" or not self.options.answers_trigger:
            return "NotImplemented"
        return "Accepted"

    async def triggered(self, requested_message: str, number: int | None) -> None:
        """After an accepted TriggerMessage MeterValues: a report of that connector (of each
        with a transaction when none is named)."""
        if requested_message != "MeterValues" or not self.options.answers_trigger:
            return
        for n in ([number] if number else sorted(self.tx)):
            if n in self.tx:
                await self._cp.triggered_meter_values(self.draw_a(n), n)

    async def wait_for_profile(self, predicate, timeout: float = 10.0) -> ProfileRequest:
        """The first received SetChargingProfile (including earlier ones) matching predicate."""
        async def first():
            while True:
                for r in self.requests:
                    if predicate(r):
                        return r
                event = self._received
                await event.wait()
        return await asyncio.wait_for(first(), timeout)

    # ------------------------------------------------------------------ for the protocol classes

    def sampled_values(self, draw: float, numbers: bool, connector: int = 1) -> list[dict]:
        """Per-phase current, offered current, power and energy (1.6 sends numbers as text)."""
        offered = self.composite_limit_a(connector=connector)
        fmt = (lambda x: round(x, 1)) if numbers else (lambda x: f"{x:.1f}")
        unit_key = (lambda u: {"unitOfMeasure": {"unit": u}}) if numbers else (lambda u: {"unit": u})
        values = [{"value": fmt(draw), "measurand": "Current.Import", "phase": f"L{i + 1}", **unit_key("A")}
                  for i in range(self.options.phases)]
        if offered is not None:
            values.append({"value": fmt(offered), "measurand": "Current.Offered", **unit_key("A")})
        values.append({"value": fmt(draw * self.volts_per_amp), "measurand": "Power.Active.Import",
                       **unit_key("W")})
        values.append({"value": fmt(self.energy_wh), "measurand": "Energy.Active.Import.Register",
                       **unit_key("Wh")})
        return [{"timestamp": format_time(self.now()), "sampledValue": values}]

    def take_profile(self, target: int, profile: dict) -> bool:
        """Accept or reject one profile like a strict charger, and store it if accepted."""
        accepted = self._allowed(target, profile)
        self.requests.append(ProfileRequest(target, profile, accepted, self._frame_at))
        if accepted:
            self._previous_held = self.held
            self._held_changed_at = time.monotonic()
            self.held = install(self.held, HeldProfile(target, profile, self.now()))
        self._received.set()
        self._received = asyncio.Event()
        return accepted

    def clear_profile(self, profile_id) -> bool:
        """ClearChargingProfile by id: True when it held one."""
        before = len(self.held)
        self.held = [p for p in self.held if p.id != profile_id]
        if len(self.held) != before:
            self._previous_held = self.held
        return len(self.held) != before

    def _allowed(self, target: int, p: dict) -> bool:
        o = self.options
        purpose, kind = p.get("chargingProfilePurpose"), p.get("chargingProfileKind")
        schedule = p["chargingSchedule"][0] if isinstance(p["chargingSchedule"], list) else p["chargingSchedule"]
        periods = schedule.get("chargingSchedulePeriod", [])
        rules = [
            purpose not in MAX_PURPOSES or target == 0,  # station-wide only on 0
            not (purpose == "ChargingStationMaxProfile" and kind == "Relative"),
            purpose != "TxProfile" or (target in self.tx and p.get("transactionId", self.tx[target]) == self.tx[target]),
            0 <= target <= o.connectors,
            bool(periods) and periods[0]["startPeriod"] == 0,
            not periods or schedule.get("chargingRateUnit") != "A" or float(periods[0]["limit"]) >= o.refuses_below_a,
            p.get("stackLevel", 0) <= o.max_stack_level,
            schedule.get("chargingRateUnit") in o.unit.split(","),
            purpose not in o.reject_purposes, kind not in o.reject_kinds, target not in o.reject_targets,
        ]
        return all(rules)

    async def _report_meter_values(self) -> None:
        while True:
            await asyncio.sleep(self.meter_interval_s)
            for n, amps in self.draws_a().items():
                if n in self.tx:
                    self.energy_wh += amps * self.volts_per_amp * self.meter_interval_s / 3600
                    await self.send_meter_values(n)


class _SimSession:
    """Both versions: the session on the sim's websocket, noting when a profile frame arrives."""

    def __init__(self, sim: SimChargePoint):
        super().__init__(sim.id, sim._ws, response_timeout=10, logger=WIRE_LOG)
        self.sim = sim

    async def route_message(self, raw_msg):
        if '"SetChargingProfile"' in raw_msg:
            self.sim._frame_at = time.perf_counter()
        if '"TriggerMessage"' in raw_msg and self.sim.options.ignores_trigger:
            self.sim.triggers += 1
            return
        await super().route_message(raw_msg)


class _Sim16(_SimSession, ChargePoint16):

    async def _status(self, connector, status):
        await self.call(call16.StatusNotification(connector_id=connector, error_code="NoError", status=status,
                                                  timestamp=format_time(self.sim.now())))

    async def boot(self):
        await self.call(call16.BootNotification(charge_point_model="Sim16", charge_point_vendor="evfuse"))
        for n in range(1, self.sim.options.connectors + 1):
            await self._status(n, "Available")

    async def status_again(self):
        for n in range(1, self.sim.options.connectors + 1):
            await self._status(n, "Charging" if n in self.sim.tx else "Available")

    async def start_transaction(self, id_tag, connector=1):
        s = self.sim
        await self._status(connector, "Preparing")
        result = await self.call(call16.StartTransaction(connector_id=connector, id_tag=id_tag, meter_start=0,
                                                         timestamp=format_time(s.now())))
        s.tx[connector] = str(result.transaction_id)
        await self._status(connector, "Charging")

    async def stop_transaction(self, connector=1):
        s = self.sim
        await self.call(call16.StopTransaction(meter_stop=int(s.energy_wh), timestamp=format_time(s.now()),
                                               transaction_id=int(s.tx[connector])))
        await self._status(connector, "Available")

    async def meter_values(self, draw, connector=1):
        tx = int(self.sim.tx[connector]) if connector in self.sim.tx else None
        await self.call(call16.MeterValues(connector_id=connector, transaction_id=tx,
                                           meter_value=self.sim.sampled_values(draw, False, connector)))

    triggered_meter_values = meter_values

    @on("TriggerMessage")
    def on_trigger_message(self, requested_message, connector_id=None, **kwargs):
        return result16.TriggerMessage(status=self.sim.trigger(requested_message))

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message, connector_id=None, **kwargs):
        await self.sim.triggered(requested_message, connector_id)

    @on("GetConfiguration")
    def on_get_configuration(self, key=None, **kwargs):
        o = self.sim.options
        unit = {"A": "Current", "W": "Power", "A,W": "Current,Power"}[o.unit]
        known = {"ChargingScheduleAllowedChargingRateUnit": unit,
                 "ChargeProfileMaxStackLevel": str(o.max_stack_level),
                 "ChargingScheduleMaxPeriods": "24",
                 "MeterValueSampleInterval": str(int(self.sim.meter_interval_s)),
                 "MeterValuesSampledData": self.sim.config_changes.get("MeterValuesSampledData", "Energy.Active.Import.Register")}
        keys = key or list(known)
        return result16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": False, "value": known[k]} for k in keys if k in known],
            unknown_key=[k for k in keys if k not in known] or None)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key, value, **kwargs):
        if key not in ("MeterValueSampleInterval", "MeterValuesSampledData"):
            return result16.ChangeConfiguration(status="NotSupported")
        self.sim.config_changes[key] = value
        if key == "MeterValueSampleInterval":
            self.sim.meter_interval_s = max(1, int(value))
        return result16.ChangeConfiguration(status="Accepted")

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, id=None, **kwargs):
        return result16.ClearChargingProfile(status="Accepted" if self.sim.clear_profile(id) else "Unknown")

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id, cs_charging_profiles, **kwargs):
        ok = self.sim.take_profile(connector_id, snake_to_camel_case(cs_charging_profiles))
        return result16.SetChargingProfile(status="Accepted" if ok else "Rejected")


class _Sim201(_SimSession, ChargePoint201):

    async def boot(self):
        await self.call(call201.BootNotification(
            charging_station={"model": "Sim201", "vendor_name": "evfuse"}, reason="PowerUp"))
        for n in range(1, self.sim.options.connectors + 1):
            await self._status("Available", n)

    async def status_again(self):
        for n in range(1, self.sim.options.connectors + 1):
            await self._status("Occupied" if n in self.sim.tx else "Available", n)

    async def _status(self, status, evse=1):
        await self.call(call201.StatusNotification(timestamp=format_time(self.sim.now()), connector_status=status,
                                                   evse_id=evse, connector_id=1))

    async def _event(self, event_type, trigger, state, connector, **extra):
        s = self.sim
        await self.call(call201.TransactionEvent(
            event_type=event_type, timestamp=format_time(s.now()), trigger_reason=trigger, seq_no=next(s._seq),
            transaction_info={"transaction_id": s.tx[connector], "charging_state": state}, **extra))

    async def start_transaction(self, id_tag, connector=1):
        await self._status("Occupied", connector)
        self.sim.tx[connector] = uuid.uuid4().hex
        await self._event("Started", "CablePluggedIn", "Charging", connector,
                          evse={"id": connector, "connector_id": 1},
                          id_token={"id_token": id_tag, "type": "ISO14443"})

    async def stop_transaction(self, connector=1):
        await self._event("Ended", "EVCommunicationLost", "Idle", connector)
        await self._status("Available", connector)

    async def meter_values(self, draw, connector=1):
        # later events name no EVSE: the central system knows the transaction's
        await self._event("Updated", "MeterValuePeriodic", "Charging", connector,
                          meter_value=self.sim.sampled_values(draw, True, connector))

    async def triggered_meter_values(self, draw, connector):
        await self.call(call201.MeterValues(evse_id=connector,
                                            meter_value=self.sim.sampled_values(draw, True, connector)))

    @on("TriggerMessage")
    def on_trigger_message(self, requested_message, evse=None, **kwargs):
        return result201.TriggerMessage(status=self.sim.trigger(requested_message))

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message, evse=None, **kwargs):
        await self.sim.triggered(requested_message, (evse or {}).get("id"))

    @on("GetVariables")
    def on_get_variables(self, get_variable_data, **kwargs):
        o = self.sim.options
        known = {"RateUnit": o.unit, "ProfileStackLevel": str(o.max_stack_level), "PeriodsPerSchedule": "24",
                 "TxUpdatedInterval": str(int(self.sim.meter_interval_s)),
                 "TxUpdatedMeasurands": self.sim.config_changes.get("TxUpdatedMeasurands", "")}
        results = []
        for d in get_variable_data:
            name = d["variable"]["name"]
            found = name in known
            results.append({"attribute_status": "Accepted" if found else "UnknownVariable",
                            "component": d["component"], "variable": d["variable"],
                            **({"attribute_value": known[name]} if found else {})})
        return result201.GetVariables(get_variable_result=results)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data, **kwargs):
        results = []
        for d in set_variable_data:
            name, value = d["variable"]["name"], d["attribute_value"]
            ok = d["component"]["name"] == "SampledDataCtrlr" and name in ("TxUpdatedInterval", "TxUpdatedMeasurands")
            if ok:
                self.sim.config_changes[name] = value
                if name == "TxUpdatedInterval":
                    self.sim.meter_interval_s = max(1, int(value))
            results.append({"attribute_status": "Accepted" if ok else "Rejected",
                            "component": d["component"], "variable": d["variable"]})
        return result201.SetVariables(set_variable_result=results)

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, charging_profile_id=None, **kwargs):
        ok = self.sim.clear_profile(charging_profile_id)
        return result201.ClearChargingProfile(status="Accepted" if ok else "Unknown")

    @on("SetChargingProfile")
    def on_set_charging_profile(self, evse_id, charging_profile, **kwargs):
        ok = self.sim.take_profile(evse_id, snake_to_camel_case(charging_profile))
        return result201.SetChargingProfile(status="Accepted" if ok else "Rejected")
