"""What both OCPP versions answer alike: the session set-up, Heartbeat, MeterValues, boot
bookkeeping, id tag checks, and the notifications we only acknowledge.

CentralCP16 and CentralCP201 put this first in their bases, before the ocpp package's
ChargePoint of their version, and name that version's `call_result` module as `results`.
"""

from __future__ import annotations

from types import ModuleType

from ocpp.routing import on

from controller.chargers.ocpp.caps import CALL_TIMEOUT_S, WIRE_LOG
from controller.chargers.ocpp.clock import format_time


def acknowledge(action: str):
    """A handler that records nothing and answers `action` with its empty result."""
    @on(action)
    def handler(self, **kwargs):
        return getattr(self.results, action)()
    handler.__name__ = f"on_{action}"
    return handler


class CentralHandlers:
    version: str
    results: ModuleType  # ocpp.v16.call_result or ocpp.v201.call_result
    awaited: str | None = None  # unique id of our request in flight (see link.py)

    def __init__(self, station, connection):
        super().__init__(station.id, connection, response_timeout=CALL_TIMEOUT_S, logger=WIRE_LOG)
        self.station = station  # controller.chargers.ocpp.station.Station

    def accepted(self, tag: str | None) -> dict:
        """IdTagInfo / IdTokenInfo: every tag when ocpp.id_tags is empty, else the listed ones."""
        tags = self.station.settings.ocpp.id_tags
        return {"status": "Accepted" if not tags or tag in tags else "Invalid"}

    def booted(self, model: str, firmware: str | None):
        self.station.notes["model"] = model
        if firmware:
            self.station.notes["firmware"] = firmware
        return self.results.BootNotification(current_time=format_time(self.station.clock.wall()),
                                             interval=self.station.settings.ocpp.heartbeat_s, status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **kwargs):
        return self.results.Heartbeat(current_time=format_time(self.station.clock.wall()))

    @on("MeterValues")
    def on_meter_values(self, meter_value, **kwargs):
        # 1.6 names the connector, 2.0.1 the EVSE; 0 is the charger's own main meter
        number = kwargs.get("connector_id", kwargs.get("evse_id"))
        connector = self.station.connector(number)
        if connector is None and number == 0 and not self.station.several:
            connector = self.station.connector(1)  # one connector: its whole-charger meter is its draw
        if connector is not None:
            connector.meter_values(meter_value)
        return self.results.MeterValues()

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id, **kwargs):
        return self.results.DataTransfer(status="UnknownVendorId")

    on_firmware_status = acknowledge("FirmwareStatusNotification")
    on_security_event = acknowledge("SecurityEventNotification")
