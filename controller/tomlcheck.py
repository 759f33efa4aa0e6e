"""Checking tables read from TOML: every problem evfuse reports about a file has one shape,
`<where>KEY = VALUE: what is allowed` (`KEY: ...` when the key is missing), whether it is the
config, a charger profile or a meter profile. Problems are collected, never raised one by one,
so an installer sees all of them at once."""

from __future__ import annotations

from typing import Any

MISSING = object()  # "no value to show": a missing key, or one not worth repeating


class Problems(Exception):
    """One or more problems in a file; str() lists them one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def one_of(choices) -> str:
    return ", ".join(map(show, choices))


class Checker:
    """Collects problems; `where` prefixes each (a file name and ": ", or a profile's name)."""

    def __init__(self, where: str = "", problems: list[str] | None = None):
        self.where = where
        self.problems = [] if problems is None else problems

    def problem(self, key: str, value: Any, what: str) -> None:
        shown = "" if value is MISSING else f" = {show(value)}"
        self.problems.append(f"{self.where}{key}{shown}: {what}")

    def only(self, table: dict, path: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                self.problem(f"{path}.{key}" if path else key, MISSING,
                             f"unknown key; allowed here: {', '.join(sorted(allowed))}")

    def choice(self, t: dict, key: str, path: str, choices: tuple, default: Any = None,
               required: bool = False) -> Any:
        if key not in t:
            if required:
                self.problem(f"{path}.{key}", MISSING, f"is required; one of {one_of(choices)}")
            return default
        value = t[key]
        if isinstance(value, bool) or value not in choices:
            self.problem(f"{path}.{key}", value, f"must be one of {one_of(choices)}")
            return default
        return value

    def flag(self, t: dict, key: str, path: str, default: bool) -> bool | None:
        value = t.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", value, "must be true or false")
            return None
        return value

    def address(self, t: dict, key: str, path: str, required: bool = True) -> int | None:
        """A Modbus register or coil address (0-based, as on the wire)."""
        value = t.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            self.problem(f"{path}.{key}", MISSING if value is None else value,
                         "must be a whole number from 0 to 65535 "
                         "(0-based wire address; manuals listing 30001/40001 are 1-based)")
            return None
        return value
