"""Chargers commanded over Modbus (RTU or TCP), described by profiles that are data files.

Modules: `profile` (profiles and the custom register table, pure), `values` (register words
<-> amps, seconds, text; pure), `driver` (ModbusCharger, the ChargerDriver; `modbus_chargers`
builds them from a Config). This package file imports nothing so `controller.config` can use
the profile parser without an import cycle.
"""
