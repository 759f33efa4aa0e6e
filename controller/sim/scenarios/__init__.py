"""Built-in scenarios for `evfuse simulate`, as data files (`<name>.toml`).

A package (not a plain folder) so setuptools installs the .toml files with it."""
