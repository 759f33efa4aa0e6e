"""OCPP 1.6J and 2.0.1 central system: chargers connect to evfuse and obey leased profiles.

Public API: CentralSystem (the server, with .drivers by load id and .stations by identity)
and OcppCharger (a ChargerDriver: a charger, or one connector of a charger with several,
whose Station holds the charge point's link and what its connectors share).
Pure parts, usable without a network: profiles (building), composite (what a charger
does with its profiles), meter (MeterValues parsing), compliance, clock.
"""

from controller.chargers.ocpp.driver import OcppCharger, OcppSettings
from controller.chargers.ocpp.server import CentralSystem, charge_point_id

__all__ = ["CentralSystem", "OcppCharger", "OcppSettings", "charge_point_id"]
