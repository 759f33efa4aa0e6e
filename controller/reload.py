"""What a reloaded config changes, part by part (pure: two Configs in, a plan out).

The runtime (Controller.retune) applies a plan so that a reload disturbs nothing it does not
concern: a charger whose table only changed its sharing keys (min_a, max_a, priority,
weight, mode) keeps its link and its core memory and gets its new share in the next
decision; circuits and [site]/[control] tuning are core data only. Only these make I/O:

  added / removed       a driver made / a driver closed (left at its fallback, link dropped)
  relinked              same id, but a key of its link changed (protocol, password, wiring,
                        Modbus profile or address, ...): that charger's driver is made anew
  meter                 the meter reader restarts; the chargers hold their limits meanwhile
  ocpp_listener         [ocpp] listen or TLS: the OCPP server restarts, its chargers reconnect
  ocpp_links            other [ocpp] settings, fallback_a or voltage: every OCPP charger is
                        re-initialised (its fallback profile is programmed into it)
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config import ChargerConfig, Config

# Keys of a [[charger]] the link depends on; every other key is sharing, the core's alone.
LINK_KEYS = ("protocol", "phases", "password", "profile_kind", "profile", "link", "watchdog_s", "registers",
             "siblings")  # siblings: the connectors of its charger (they share one link)


def ocpp_settings(cfg: Config) -> tuple:
    """What the OCPP links are initialised with (the rest of [control] is the core's alone)."""
    return (cfg.ocpp, cfg.control.fallback_a, cfg.site.voltage_v, cfg.site.grid)


def _link(c: ChargerConfig) -> tuple:
    return tuple(getattr(c, k) for k in LINK_KEYS)


@dataclass(frozen=True)
class ReloadPlan:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    relinked: tuple[str, ...] = ()
    retuned: tuple[str, ...] = ()  # sharing keys only
    meter: bool = False
    ocpp_listener: bool = False
    ocpp_links: bool = False
    hardware: bool = False

    @property
    def in_place(self) -> bool:
        """Nothing to connect or disconnect: the core's new site is all there is."""
        return not (self.added or self.removed or self.relinked or self.meter
                    or self.ocpp_listener or self.ocpp_links)

    def describe(self) -> str:
        parts = [f"{what} {', '.join(ids)}" for what, ids in
                 (("added", self.added), ("removed", self.removed), ("reconnecting", self.relinked),
                  ("retuned", self.retuned)) if ids]
        parts += [what for what, flag in (("meter restarted", self.meter),
                                          ("OCPP server restarted", self.ocpp_listener),
                                          ("OCPP chargers re-initialised", self.ocpp_links and not self.ocpp_listener))
                  if flag]
        return "; ".join(parts) or "limits and tuning only"


def plan(old: Config, new: Config) -> ReloadPlan:
    before = {c.id: c for c in old.chargers}
    after = {c.id: c for c in new.chargers}
    kept = [i for i in after if i in before]
    modbus_all = (old.control.fallback_a, old.meter.timeout_s) != (new.control.fallback_a, new.meter.timeout_s)
    relinked = tuple(i for i in kept if _link(before[i]) != _link(after[i])
                     or (after[i].protocol == "modbus" and modbus_all))
    listener = (old.ocpp.listen, old.ocpp.tls_cert, old.ocpp.tls_key) != \
        (new.ocpp.listen, new.ocpp.tls_cert, new.ocpp.tls_key)
    return ReloadPlan(
        added=tuple(i for i in after if i not in before),
        removed=tuple(i for i in before if i not in after),
        relinked=relinked,
        retuned=tuple(i for i in kept if i not in relinked and before[i] != after[i]),
        meter=old.meter != new.meter,
        ocpp_listener=listener,
        ocpp_links=ocpp_settings(old) != ocpp_settings(new),
        hardware=old.hardware != new.hardware,
    )
