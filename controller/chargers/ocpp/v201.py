"""OCPP 2.0.1: handlers for what a charging station sends, and the requests evfuse makes.

Same rules as v16.py: handlers record facts and answer; requests go out from the link's
maintainer task only; every handler takes **kwargs.
"""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result

from controller.chargers.ocpp.caps import MEASURANDS, ChargerCaps, pick_unit, request, to_int
from controller.chargers.ocpp.handlers import CentralHandlers, acknowledge
from controller.model import CarState

CONNECTOR_STATE = {
    "Available": CarState.NO_CAR,
    "Occupied": CarState.CONNECTED,
    "Reserved": CarState.NO_CAR,
    "Unavailable": CarState.NO_CAR,
    "Faulted": CarState.FAULT,
}
CHARGING_STATE = {
    "Charging": CarState.CHARGING,
    "EVConnected": CarState.CONNECTED,
    "SuspendedEV": CarState.CONNECTED,
    "SuspendedEVSE": CarState.CONNECTED,
    "Idle": CarState.NO_CAR,
}
# An EVSE's state from its connectors': a car on any of them first, then a fault, then not known.
PLUG_RANK = {CarState.CONNECTED: 3, CarState.FAULT: 2, CarState.UNKNOWN: 1, CarState.NO_CAR: 0}


def evse_state(plugs: dict) -> CarState:
    """The state of an EVSE whose connectors last reported `plugs` (connector id -> state)."""
    return max(plugs.values(), key=lambda state: PLUG_RANK.get(state, 1))


CONFIG_VARIABLES = [("SmartChargingCtrlr", "RateUnit"), ("SmartChargingCtrlr", "ProfileStackLevel"),
                    ("SmartChargingCtrlr", "PeriodsPerSchedule"), ("SampledDataCtrlr", "TxUpdatedInterval"),
                    ("SampledDataCtrlr", "TxUpdatedMeasurands")]


class CentralCP201(CentralHandlers, ChargePoint):
    version = "2.0.1"
    results = call_result

    def _id_token_info(self, id_token: dict | None) -> dict:
        return self.accepted((id_token or {}).get("id_token"))

    # ------------------------------------------------------------------ station -> us

    @on("BootNotification")
    def on_boot(self, charging_station, reason, **kwargs):
        station = charging_station if isinstance(charging_station, dict) else {}
        return self.booted(f"{station.get('vendor_name', '?')} {station.get('model', '?')}",
                           station.get("firmware_version"))

    @on("StatusNotification")
    def on_status(self, timestamp, connector_status, evse_id, connector_id, **kwargs):
        self.station.saw_timestamp(timestamp)
        evse = self.station.connector(evse_id)
        if evse is not None:
            # An EVSE's connectors (a socket and a cable) report one by one, the one in use
            # "Occupied", the others "Unavailable": the EVSE's car is on whichever has one.
            evse.plugs[connector_id] = CONNECTOR_STATE.get(connector_status, CarState.UNKNOWN)
            state = evse_state(evse.plugs)
            # "Occupied" says less than a running transaction's charging state: keep that one.
            if not (state == CarState.CONNECTED and evse.tx_id is not None):
                evse.set_car(state)
        return call_result.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_token, **kwargs):
        return call_result.Authorize(id_token_info=self._id_token_info(id_token))

    @on("TransactionEvent")
    def on_transaction_event(self, event_type, timestamp, transaction_info, **kwargs):
        self.station.saw_timestamp(timestamp)
        tx_id = transaction_info.get("transaction_id")
        # The EVSE is named in the first event of a transaction; later ones are found by its id.
        named = kwargs.get("evse") if isinstance(kwargs.get("evse"), dict) else {}
        d = self.station.by_transaction(tx_id) or self.station.connector(named.get("id"))
        if d is None:  # a transaction begun before we knew it, on an EVSE it does not name
            d = self.station.unplaced() if self.station.several else self.station.connector(1)
        if event_type == "Started" or (event_type == "Updated" and d.tx_id is None):
            d.transaction_started(tx_id)
        state = CHARGING_STATE.get(transaction_info.get("charging_state"))
        if state is not None:
            d.set_car(state)
        if kwargs.get("meter_value"):
            d.meter_values(kwargs["meter_value"])
        if event_type == "Ended":
            d.transaction_ended()
        if kwargs.get("id_token"):
            return call_result.TransactionEvent(id_token_info=self._id_token_info(kwargs["id_token"]))
        return call_result.TransactionEvent()

    on_notify_event = acknowledge("NotifyEvent")
    on_notify_report = acknowledge("NotifyReport")
    on_log_status = acknowledge("LogStatusNotification")

    # ------------------------------------------------------------------ us -> station

    async def read_config(self) -> ChargerCaps:
        data = [{"component": {"name": c}, "variable": {"name": v}} for c, v in CONFIG_VARIABLES]
        result, why = await request(self, call.GetVariables(get_variable_data=data))
        if result is None:
            return ChargerCaps(notes={"config": f"GetVariables failed: {why}"})
        values = {}
        for r in result.get_variable_result or []:
            if isinstance(r, dict) and r.get("attribute_status") == "Accepted":
                values[r.get("variable", {}).get("name")] = r.get("attribute_value")
        return ChargerCaps(unit=pick_unit(values.get("RateUnit")),
                           max_stack_level=to_int(values.get("ProfileStackLevel")),
                           notes={"unit_allowed": str(values.get("RateUnit"))})

    async def configure_meter_values(self, interval_s: float) -> dict[str, str]:
        wanted = {"TxUpdatedInterval": str(max(1, round(interval_s))), "TxUpdatedMeasurands": MEASURANDS}
        data = [{"component": {"name": "SampledDataCtrlr"}, "variable": {"name": k}, "attribute_value": v}
                for k, v in wanted.items()]
        result, why = await request(self, call.SetVariables(set_variable_data=data))
        if result is None:
            return {"meter_config": f"SetVariables failed: {why}"}
        refused = [f"{r.get('variable', {}).get('name')}: {r.get('attribute_status')}"
                   for r in result.set_variable_result or []
                   if isinstance(r, dict) and r.get("attribute_status") not in ("Accepted", "RebootRequired")]
        return {"meter_config": "; ".join(refused) or "accepted"}

    async def set_profile(self, evse_id: int, profile: dict) -> tuple[bool, str]:
        # Built by profiles.py, whose output the tests validate against the 2.0.1 schema.
        result, why = await request(self, call.SetChargingProfile(evse_id=evse_id, charging_profile=profile),
                                    validate=False)
        if result is None:
            return False, why
        if result.status == "Accepted":
            return True, "Accepted"
        reason = (result.status_info or {}).get("reason_code") if isinstance(result.status_info, dict) else None
        return False, f"{result.status}" + (f" ({reason})" if reason else "")

    async def trigger_meter_values(self, evse_id: int) -> str:
        """The charging station's answer to TriggerMessage MeterValues (EVSE 0: all of them)."""
        payload = (call.TriggerMessage(requested_message="MeterValues", evse={"id": evse_id}) if evse_id
                   else call.TriggerMessage(requested_message="MeterValues"))
        result, why = await request(self, payload)
        return why if result is None else str(result.status)

    async def clear_profile(self, profile_id: int) -> bool:
        result, _ = await request(self, call.ClearChargingProfile(charging_profile_id=profile_id))
        # "Unknown": it holds none by that id (another profile may have replaced it): gone too
        return result is not None and result.status in ("Accepted", "Unknown")
