"""Built-in meter profiles as data files (`<name>.toml`), read by controller.meter.profiles.

A package (not a plain folder) so setuptools installs the .toml files with it."""
