"""The ground-truth strategies themselves: over the examples a default run draws, they reach
every behaviour they claim (so a green property means something), and wrong wiring is there
when asked for, absent by default."""

from __future__ import annotations

from hypothesis import Phase, given, settings

from truth_strategies import closed_loops

DRAW = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                phases=[Phase.generate])

FEATURES = {
    "not measuring": lambda lp: any(ch.metering.measures == "none" and ch.plans for ch in lp.chargers),
    "power only": lambda lp: any(ch.metering.measures == "power" and ch.plans for ch in lp.chargers),
    "reports every 60 s": lambda lp: any(ch.metering.every_s >= 60 for ch in lp.chargers),
    "reports stop": lambda lp: any(0 < ch.metering.stops_s < 1e9 for ch in lp.chargers),
    "never reports": lambda lp: any(ch.metering.stops_s == 0 and ch.metering.reports and ch.plans
                                    for ch in lp.chargers),
    "link blip": lambda lp: any(ch.link.blips for ch in lp.chargers),
    "restart": lambda lp: bool(lp.restarts),
    "1-phase car on a 3-phase charger": lambda lp: any(
        p.phases == 1 and len(ch.spec.wiring) == 3 for ch in lp.chargers for p in ch.plans),
    "slow car": lambda lp: any(p.delay_s >= 4.5 for ch in lp.chargers for p in ch.plans),
    "taper": lambda lp: any(p.taper_kwh > 0 for ch in lp.chargers for p in ch.plans),
    "own max below the charger's": lambda lp: any(
        p.max_a < ch.spec.max_a for ch in lp.chargers for p in ch.plans),
    "circuit": lambda lp: bool(lp.site.circuits),
    "car already drawing at start": lambda lp: any(p.arrive_s < 0 for ch in lp.chargers for p in ch.plans),
}


def _seen(**kw) -> tuple[set[str], int]:
    seen: set[str] = set()
    wrong = [0]

    @DRAW
    @given(closed_loops(**kw))
    def collect(case):
        loop = case[0]
        seen.update(name for name, has in FEATURES.items() if has(loop))
        wrong[0] += any(ch.wiring != ch.spec.wiring for ch in loop.chargers)

    collect()
    return seen, wrong[0]


def test_the_default_strategy_reaches_every_behaviour_and_keeps_the_wiring():
    seen, wrong = _seen()
    assert seen == set(FEATURES), set(FEATURES) - seen
    assert wrong == 0


def test_wrong_wiring_only_when_asked():
    _, wrong = _seen(wrong_wiring=True)
    assert wrong > 0


def test_a_controller_that_sheds_everyone_meets_every_property():
    """The properties can be met: a controller that sheds every car at once is never blamed for
    time above a limit, leaves no overload standing and stops no car without a cause (only
    after the start-up grace: the chargers hold their fallbacks before it decides)."""
    from types import SimpleNamespace

    from controller.core.causes import Cause

    def shed_all(site, state, sample, readings, now):
        first = state is None or not getattr(state, "sent", False)
        chargers = tuple(SimpleNamespace(id=s.id, limit_a=0.0, reason="shed", cause=Cause.SHED,
                                         changed=first) for s in site.chargers)
        return SimpleNamespace(state=SimpleNamespace(sent=True), chargers=chargers)

    @DRAW
    @given(closed_loops())
    def check(case):
        loop, steps = case
        loop.decide = shed_all
        loop.run(steps)
        assert loop.limit.report().controller_s == 0, (loop.limit.report(), loop)
        assert loop.limit.report().standing_s == 0, (loop.limit.report(), loop)
        assert not any(ch.unexplained for ch in loop.chargers), loop

    check()
