"""The static shape of a site, derived once from the config: what the core needs per charger
and per circuit, in index-addressed form so a decision does no lookups by name.

The core's own plain input types: nothing here imports the config parser or any device
profile. `SiteModel.from_config` reads a parsed config by its attribute names only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property
from typing import NamedTuple
from controller.model import PHASE_INDEX, SITE_PHASES

SOLAR_MODES = ("solar-priority", "solar-only", "excess")


@dataclass(frozen=True, slots=True)
class Control:
    """The tuning the core uses ([control] in the config; defaults are the config's)."""

    ramp_up_delay_s: float = 15.0
    ramp_up_step_a: float = 4.0
    ramp_up_interval_s: float = 5.0
    restart_delay_s: float = 120.0
    restart_hysteresis_a: float = 1.0
    idle_reoffer_s: float = 300.0  # a car that takes nothing is at 0 A, offered current this often
    fallback_a: float = 6.0
    response_s: float = 5.0
    overload_pause_s: float = 6.0
    dead_band_a: float = 0.5
    solar_start_delay_s: float = 60.0
    solar_stop_grace_s: float = 300.0
    excess_threshold_w: float = 500.0

    @classmethod
    def of(cls, control) -> "Control":
        return cls(**{f.name: getattr(control, f.name) for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class ChargerSpec:
    index: int
    id: str
    wiring: str  # site phase per charger line: "BCA" = L1 on B, L2 on C, L3 on A
    phase_idx: tuple[int, ...]  # distinct site phase indices it draws from
    line_phase: tuple[int, ...]  # site phase index of each charger line L1, L2, L3
    min_a: float
    max_a: float
    priority: int
    weight: float
    mode: str
    circuits: tuple[int, ...]  # indices into SiteModel.circuits, innermost first
    # A connector of a charger with several: its charger's id and its connector id ("" / 0
    # otherwise); the charger's max_a is a CircuitSpec of its own, innermost in `circuits`.
    charger_id: str = ""
    connector: int = 0
    sequential: bool = False  # its charger powers one connector at a time (core/sequential.py)
    # A switchable load ([[load]], kind "switch") runs all or nothing: min_a = max_a = its
    # current when on (controller/core/switch.py); min_on_s / min_off_s hold it against
    # short-cycling, power_w is its configured draw when on.
    kind: str = "charger"  # "charger" | "switch"
    min_on_s: float = 0.0
    min_off_s: float = 0.0
    power_w: float = 0.0

    @property
    def n_phases(self) -> int:
        return len(self.phase_idx)


@dataclass(frozen=True, slots=True)
class CircuitSpec:
    id: str
    limit_a: float
    members: tuple[int, ...]  # charger indices under it (directly or through sub-circuits)


class ConstraintSlot(NamedTuple):
    """What a per-phase constraint is, apart from its capacity (SiteModel.constraint_slots)."""

    name: str
    circuit: int  # index into SiteModel.circuits; -1: a site phase or the import cap
    phase: int  # the site phase; -1: the import cap (in watts, over every phase)
    coefs: tuple[tuple[int, float], ...]  # (load index, A or W per A) of every load on it
    phases: tuple[int, ...]
    indices: tuple[int, ...] | None  # the loads' indices when every coefficient is 1


@dataclass(frozen=True)
class SiteModel:
    phases: int
    limit_a: float  # per phase: fuse_a - margin_a
    fuse_a: float
    voltage_v: float
    max_import_w: float  # 0 = no cap
    stale_after_s: float
    control: Control
    chargers: tuple[ChargerSpec, ...]
    circuits: tuple[CircuitSpec, ...] = ()
    grid: str = "TN"  # "IT": no neutral, voltage_v is phase-to-phase (watts_per_amp)

    def watts_per_amp(self, lines: int) -> float:
        return watts_per_amp(self.voltage_v, lines, self.grid)

    @cached_property
    def phase_volts(self) -> float:
        """Watts per ampere of a current measured on one site phase, for sums over phases (the
        meter's import or export, the household, a load's draw per phase). TN/TT: the phase
        voltage. IT: voltage_v is phase-to-phase, so a phase carries voltage_v / sqrt(3) to the
        star point of a 3-phase supply, and half of it on a 2-phase one (one current on both)."""
        if self.grid != "IT":
            return self.voltage_v
        return self.voltage_v / (math.sqrt(3.0) if self.phases >= 3 else 2.0)

    @property
    def phase_range(self) -> range:
        return range(self.phases)

    @cached_property
    def phase_members(self) -> tuple[tuple[int, ...], ...]:
        """Charger indices drawing from each site phase."""
        return tuple(tuple(s.index for s in self.chargers if p in s.phase_idx) for p in range(3))

    @cached_property
    def phase_on(self) -> tuple[tuple[bool, bool, bool], ...]:
        """Per charger, per site phase: whether it draws from it (for per-phase loops)."""
        return tuple((0 in s.phase_idx, 1 in s.phase_idx, 2 in s.phase_idx) for s in self.chargers)

    @cached_property
    def phase_coefs(self) -> tuple[tuple[tuple[int, float], ...], ...]:
        """Per site phase: (charger index, 1 A per A) of every charger on it, a constraint's
        members when none of them is fixed load (the common case: built once, not per sample)."""
        return tuple(tuple((i, 1.0) for i in members) for members in self.phase_members)

    @cached_property
    def circuit_phase_coefs(self) -> tuple[tuple[tuple[tuple[int, float], ...], ...], ...]:
        return tuple(tuple(tuple((i, 1.0) for i in members) for members in by_phase)
                     for by_phase in self.circuit_phase_members)

    @cached_property
    def constraint_names(self) -> tuple[tuple[str, str, str], ...]:
        """The names of the per-phase constraints: the site's phases, then each circuit's."""
        return ((tuple(f"phase {phase_name(p)}" for p in range(3)),) +
                tuple(tuple(f"circuit {c.id} phase {phase_name(p)}" for p in range(3)) for c in self.circuits))

    @cached_property
    def constraint_slots(self) -> tuple["ConstraintSlot", ...]:
        """The per-phase constraints a decision plans against, in the order decide.py lists
        them: the site's phases, each circuit's phases that have loads on them, the import cap.
        Only their capacities change from one sample to the next; this is the rest."""
        slots = [ConstraintSlot(self.constraint_names[0][p], -1, p, self.phase_coefs[p], (p,),
                                self.phase_members[p]) for p in self.phase_range]
        for c, (by_phase, coefs, names) in enumerate(zip(self.circuit_phase_members, self.circuit_phase_coefs,
                                                         self.constraint_names[1:])):
            slots += [ConstraintSlot(names[p], c, p, coefs[p], (p,), by_phase[p])
                      for p in self.phase_range if by_phase[p]]
        if self.max_import_w > 0:
            slots.append(ConstraintSlot("max import", -1, -1, self.import_coefs, tuple(self.phase_range), None))
        return tuple(slots)

    @cached_property
    def constraint_touch(self) -> tuple[tuple[tuple[int, float], ...], ...]:
        """Per load: (position in constraint_slots, coefficient) of every constraint it is on,
        for the allocator, which would otherwise scan every constraint's members per call."""
        touch: list[list[tuple[int, float]]] = [[] for _ in self.chargers]
        for k, slot in enumerate(self.constraint_slots):
            for i, coef in slot.coefs:
                touch[i].append((k, coef))
        return tuple(map(tuple, touch))

    @cached_property
    def import_coefs(self) -> tuple[tuple[int, float], ...]:
        """(charger index, watts per A) for the import cap."""
        return tuple((s.index, self.watts_per_amp(s.n_phases)) for s in self.chargers)

    @cached_property
    def circuit_phase_members(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        """Per circuit, per site phase: charger indices under the circuit drawing from it."""
        return tuple(tuple(tuple(i for i in c.members if p in self.chargers[i].phase_idx)
                           for p in range(3)) for c in self.circuits)

    @cached_property
    def switches(self) -> tuple[int, ...]:
        """Indices of the switchable loads (most sites have none: their passes are skipped)."""
        return tuple(s.index for s in self.chargers if s.kind == "switch")

    @cached_property
    def fallbacks(self) -> tuple[float, ...]:
        """Per load, fallback_a(spec): looked up per load per sample."""
        return tuple(self.fallback_a(s) for s in self.chargers)

    def fallback_a(self, spec: ChargerSpec) -> float:
        """What a charger gets when the controller does not know better (meter lost, start)."""
        if spec.mode == "off" or spec.kind == "switch":  # a switch left alone is off (its lease)
            return 0.0
        return min(self.control.fallback_a, spec.max_a)

    @classmethod
    def from_config(cls, cfg) -> "SiteModel":
        """From a parsed config (controller.config.Config), read by attribute names only: the
        core never imports the config parser or the device profiles behind it."""
        circuit_pos = {c.id: i for i, c in enumerate(cfg.circuits)}
        chargers = []
        members: dict[int, list[int]] = {i: [] for i in range(len(cfg.circuits))}
        caps = _charger_caps(cfg.chargers, len(cfg.circuits))
        for i, c in enumerate(cfg.chargers):
            chain = tuple(circuit_pos[x.id] for x in cfg.circuit_chain(c.id))
            cap = caps.get(getattr(c, "charger_id", ""))
            if cap is not None:  # the charger's own max_a: the innermost circuit of its connectors
                chain = (cap[0],) + chain
                members.setdefault(cap[0], [])
            for k in chain:
                members[k].append(i)
            chargers.append(ChargerSpec(
                index=i, id=c.id, wiring=c.phases,
                phase_idx=tuple(sorted({PHASE_INDEX[p] for p in c.phases})),
                line_phase=tuple(PHASE_INDEX[p] for p in c.phases),
                min_a=c.min_a, max_a=c.max_a, priority=c.priority, weight=c.weight, mode=c.mode,
                circuits=chain, charger_id=getattr(c, "charger_id", ""), connector=getattr(c, "connector", 0),
                sequential=getattr(c, "sequential", False),
            ))
        for c in getattr(cfg, "loads", ()):
            i = len(chargers)
            chain = tuple(circuit_pos[x.id] for x in cfg.circuit_chain(c.id))
            for k in chain:
                members[k].append(i)
            chargers.append(switch_spec(i, c, cfg.site.voltage_v, chain, cfg.site.grid))
        circuits = tuple(CircuitSpec(id=c.id, limit_a=c.limit_a, members=tuple(members[k]))
                         for k, c in enumerate(cfg.circuits))
        circuits += tuple(CircuitSpec(id=f"{name} (charger max_a)", limit_a=limit, members=tuple(members[k]))
                          for name, (k, limit) in caps.items())
        return cls(
            phases=cfg.site.phases, limit_a=cfg.site.limit_a, fuse_a=cfg.site.fuse_a,
            voltage_v=cfg.site.voltage_v, max_import_w=cfg.site.max_import_kw * 1000.0,
            stale_after_s=cfg.meter.stale_after_s, control=Control.of(cfg.control),
            chargers=tuple(chargers), circuits=circuits, grid=cfg.site.grid,
        )


def _charger_caps(entries, first: int) -> dict[str, tuple[int, float]]:
    """Chargers with several connectors: charger id -> (its circuit's index, its max_a). The
    circuits follow the config's own, so those keep their indices."""
    counts: dict[str, int] = {}
    limit: dict[str, float] = {}
    for c in entries:
        name = getattr(c, "charger_id", "")
        if name:
            counts[name] = counts.get(name, 0) + 1
            limit[name] = c.charger_max_a
    several = [name for name in counts if counts[name] > 1]
    return {name: (first + k, limit[name]) for k, name in enumerate(several)}


def watts_per_amp(voltage_v: float, lines: int, grid: str = "TN") -> float:
    """Watts a load draws per ampere on each of its `lines` site phases. TN/TT: each line to
    neutral, V x lines. IT (no neutral, voltage_v phase-to-phase): on two lines it is one current
    through both, V; on three, sqrt(3) x V."""
    if grid == "IT" and lines >= 2:
        return voltage_v * (math.sqrt(3.0) if lines >= 3 else 1.0)
    return voltage_v * lines


def on_current_a(power_w: float, voltage_v: float, n_phases: int, grid: str = "TN") -> float:
    """Per phase, what a switchable load of power_w draws when on: rounded up to 0.1 A."""
    return math.ceil(power_w / watts_per_amp(voltage_v, n_phases, grid) * 10 - 1e-9) / 10


def switch_spec(index: int, load, voltage_v: float, chain: tuple[int, ...], grid: str = "TN") -> ChargerSpec:
    """A [[load]] as the core sees it: on at its current (power_w over its phases, rounded up
    to 0.1 A so every rounding in the core keeps it whole) or off."""
    on_a = on_current_a(load.power_w, voltage_v, len(load.phases), grid)
    return ChargerSpec(
        index=index, id=load.id, wiring=load.phases,
        phase_idx=tuple(sorted({PHASE_INDEX[p] for p in load.phases})),
        line_phase=tuple(PHASE_INDEX[p] for p in load.phases),
        min_a=on_a, max_a=on_a, priority=load.priority, weight=1.0, mode=load.mode,
        circuits=chain, kind="switch", min_on_s=load.min_on_s, min_off_s=load.min_off_s,
        power_w=load.power_w,
    )


def phase_name(p: int) -> str:
    return SITE_PHASES[p]
