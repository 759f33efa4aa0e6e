"""OCPP 1.6J: handlers for what a charge point sends, and the requests evfuse makes.

Handlers only record facts in the driver and answer; they never send requests themselves
(see link.py). Every handler takes **kwargs so optional fields a charger adds never break it.
"""

from __future__ import annotations

import itertools

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result

from controller.chargers.ocpp.caps import MEASURANDS, ChargerCaps, pick_unit, request, to_int
from controller.chargers.ocpp.handlers import CentralHandlers, acknowledge
from controller.model import CarState

CAR_STATE = {
    "Available": CarState.NO_CAR,
    "Preparing": CarState.CONNECTED,
    "Charging": CarState.CHARGING,
    "SuspendedEV": CarState.CONNECTED,
    "SuspendedEVSE": CarState.CONNECTED,
    "Finishing": CarState.CONNECTED,
    "Reserved": CarState.NO_CAR,
    "Unavailable": CarState.NO_CAR,
    "Faulted": CarState.FAULT,
}
CONFIG_KEYS = ["ChargingScheduleAllowedChargingRateUnit", "ChargeProfileMaxStackLevel",
               "ChargingScheduleMaxPeriods", "MeterValueSampleInterval", "MeterValuesSampledData"]
_transaction_ids = itertools.count(1)


class CentralCP16(CentralHandlers, ChargePoint):
    version = "1.6"
    results = call_result

    # ------------------------------------------------------------------ charger -> us

    @on("BootNotification")
    def on_boot(self, charge_point_vendor, charge_point_model, **kwargs):
        return self.booted(f"{charge_point_vendor} {charge_point_model}", kwargs.get("firmware_version"))

    @on("StatusNotification")
    def on_status(self, connector_id, status, error_code, timestamp=None, **kwargs):
        self.station.saw_timestamp(timestamp)
        car = CAR_STATE.get(status, CarState.UNKNOWN)
        if connector_id == 0:  # the whole charger: only its fault says something of the cars
            if status == "Faulted":
                for connector in self.station.everyone():
                    connector.set_car(car)
        elif (connector := self.station.connector(connector_id)) is not None:
            connector.set_car(car)
        return call_result.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_tag, **kwargs):
        return call_result.Authorize(id_tag_info=self.accepted(id_tag))

    @on("StartTransaction")
    def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        self.station.saw_timestamp(timestamp)
        tx_id = next(_transaction_ids)
        # a transaction on no connector (0, nonsense): a twin's is counted apart, never given to
        # a connector it may not be on (whose own transaction it would overwrite)
        connector = self.station.connector(connector_id) or (
            self.station.unplaced() if self.station.several else self.station.connector(1))
        connector.transaction_started(str(tx_id))
        return call_result.StartTransaction(transaction_id=tx_id, id_tag_info=self.accepted(id_tag))

    @on("StopTransaction")
    def on_stop_transaction(self, meter_stop, timestamp, transaction_id, **kwargs):
        self.station.saw_timestamp(timestamp)
        connector = self.station.by_transaction(transaction_id)
        if connector is not None:
            connector.transaction_ended()
        if kwargs.get("id_tag"):
            return call_result.StopTransaction(id_tag_info=self.accepted(kwargs["id_tag"]))
        return call_result.StopTransaction()

    on_diagnostics_status = acknowledge("DiagnosticsStatusNotification")

    # ------------------------------------------------------------------ us -> charger

    async def read_config(self) -> ChargerCaps:
        result, why = await request(self, call.GetConfiguration(key=CONFIG_KEYS))
        if result is None:
            return ChargerCaps(notes={"config": f"GetConfiguration failed: {why}"})
        values = {k.get("key"): k.get("value") for k in result.configuration_key or []
                  if isinstance(k, dict)}
        notes = {"unit_allowed": str(values.get("ChargingScheduleAllowedChargingRateUnit"))}
        return ChargerCaps(unit=pick_unit(values.get("ChargingScheduleAllowedChargingRateUnit")),
                           max_stack_level=to_int(values.get("ChargeProfileMaxStackLevel")),
                           notes=notes)

    async def configure_meter_values(self, interval_s: float) -> dict[str, str]:
        # MeterValueSampleInterval is whole seconds in 1.6.
        wanted = {"MeterValueSampleInterval": str(max(1, round(interval_s))),
                  "MeterValuesSampledData": MEASURANDS}
        refused = []
        for key, value in wanted.items():
            result, why = await request(self, call.ChangeConfiguration(key=key, value=value))
            status = result.status if result is not None else why
            if status not in ("Accepted", "RebootRequired"):
                refused.append(f"{key}: {status}")
        return {"meter_config": "; ".join(refused) or "accepted"}

    async def set_profile(self, connector_id: int, profile: dict) -> tuple[bool, str]:
        # Built by profiles.py, whose output the tests validate against the 1.6 schema.
        result, why = await request(self, call.SetChargingProfile(connector_id=connector_id,
                                                                  cs_charging_profiles=profile), validate=False)
        if result is None:
            return False, why
        return result.status == "Accepted", str(result.status)

    async def trigger_meter_values(self, connector_id: int) -> str:
        """The charger's answer to TriggerMessage MeterValues (connector 0: all of them)."""
        payload = (call.TriggerMessage(requested_message="MeterValues", connector_id=connector_id) if connector_id
                   else call.TriggerMessage(requested_message="MeterValues"))
        result, why = await request(self, payload)
        return why if result is None else str(result.status)

    async def clear_profile(self, profile_id: int) -> bool:
        result, _ = await request(self, call.ClearChargingProfile(id=profile_id))
        # "Unknown": it holds none by that id (another profile may have replaced it): gone too
        return result is not None and result.status in ("Accepted", "Unknown")
