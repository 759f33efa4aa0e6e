"""Built-in Modbus charger profiles as data files (`<name>.toml`), read by
controller.chargers.modbus.profile. A package so setuptools installs the .toml files with it."""
