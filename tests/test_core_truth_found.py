"""Sites the random closed-loop search found where the controller caused time above a limit
(issue 10's residual), each kept as a named regression against the TRUE currents. Every one of
them failed on the core before its fix; the comment says what was wrong."""

from __future__ import annotations

from controller.sim.offline.cars import Link, Metering
from truth_kit import car, closed_loop, site_of

DT, LATENCY_S = 0.5, 0.25


def _site(phases: int, fuse: float, margin: float, control: str, chargers: list[tuple[str, str, float, int]]):
    lines = ["[site]", f"phases = {phases}", f"fuse_a = {fuse}", f"margin_a = {margin}", "[control]",
             control, "response_s = 5", "[ocpp]", "lease_s = 120"]
    for cid, wiring, max_a, priority in chargers:
        lines += ["[[charger]]", f'id = "{cid}"', f'phases = "{wiring}"', "min_a = 6",
                  f"max_a = {max_a}", f"priority = {priority}"]
    return site_of("\n".join(lines))


def _car(cid: str, arrive: float, delay: float, phases: int, max_a: float, kwh: float):
    return [car(cid, arrive, delay_s=delay, phases=phases, max_a=max_a, kwh=kwh, taper_kwh=0.0)]


def _run(site, household, cars, metering, links=None, restarts=(), seconds=480.0):
    loop = closed_loop(site, household, cars, metering=metering, links=links or {}, dt=DT,
                       latency_s=LATENCY_S, restarts_s=restarts)
    loop.run(int(seconds / DT))
    return loop.limit.report(), loop.limit.blamed_at[:5]


def loop_response_s(site) -> float:
    """The cars' slowest response in these sites (4.5 s) plus the link latency."""
    return 4.5 + LATENCY_S


CONTROL = {
    "fast": "ramp_up_delay_s = 0\nramp_up_step_a = 80\nrestart_delay_s = 30\noverload_pause_s = 6",
    "slow": "ramp_up_delay_s = 15\nramp_up_step_a = 80\nrestart_delay_s = 30\noverload_pause_s = 6",
    "steps": "ramp_up_delay_s = 5\nramp_up_step_a = 4\nrestart_delay_s = 30\noverload_pause_s = 6",
    "held": "ramp_up_delay_s = 5\nramp_up_step_a = 80\nrestart_delay_s = 30\noverload_pause_s = 6",
}


def test_a_car_whose_link_just_came_back_is_given_its_response_time():
    # An overload that starts while the only car's link is down is nobody's to cut; when the
    # link returns the controller cuts at once, and the car's response to that cut is no fault
    # (the metric used to blame it: the household rise was 20 s old by then).
    site = _site(1, 35, 2, CONTROL["fast"] + "\nfallback_a = 10",
                 [("c0", "A", 16, 2), ("c1", "A", 16, 1), ("c2", "A", 10, 2)])
    report, blamed = _run(site, [(0.0, (10.0, 0, 0)), (40.0, (27.0, 0, 0)), (160.0, (0.0, 0, 0))],
                          {"c0": _car("c0", -10.0, 4.5, 3, 32.0, 1.0)},
                          {"c0": Metering("none", 60.0, offset_s=3.0, stops_s=30.0)},
                          links={"c0": Link(120.0, ((30.0, 60.0),))}, restarts=(50.0, 125.0))
    assert report.controller_s == 0, (report, blamed)


def test_a_household_step_in_a_cut_window_is_doubted_not_credited_to_the_cars():
    # Two cars just raised and then cut a little: a 43 A household step in the next seconds
    # was credited to them as the late rise of their raise, so the overload cut was sized on a
    # household 11 A too low and left the phase over for another response time. Now the cut is
    # sized on the doubt at once, down to min_a (a doubt never stops a car: a raise that lands
    # just before a cut looks the same, see test_e2e_service's reload); what the running cars
    # at min_a still leave over is paused once the meter shows it, within the standing bound.
    # This is the one case where the controller may still be over a limit for one more
    # response time: the meter cannot tell, and stopping cars on every doubt would be worse.
    site = _site(2, 61, 2, CONTROL["held"] + "\nfallback_a = 10",
                 [("c0", "BA", 16, 1), ("c1", "B", 32, 1), ("c2", "A", 32, 1), ("c3", "A", 10, 1),
                  ("c4", "A", 10, 1), ("c5", "AB", 16, 1)])
    household = [(0.0, (2.0, 5.0, 0)), (40.0, (0.0, 53.0, 0)), (100.0, (10.0, 0.0, 0)),
                 (160.0, (53.0, 30.5, 0)), (220.0, (5.0, 0.0, 0))]
    cars = {"c2": _car("c2", 150.0, 4.5, 1, 10.0, 1.0), "c4": _car("c4", -10.0, 4.5, 3, 32.0, 50.0),
            "c5": _car("c5", 150.0, 1.0, 3, 10.0, 50.0)}
    metering = {"c2": Metering("none"), "c4": Metering("lines", 5.0),
                "c5": Metering("power", 5.0, offset_s=3.0, stops_s=0.0)}
    report, blamed = _run(site, household, cars, metering, links={"c5": Link(120.0, ((200.0, 205.0),))},
                          restarts=(260.0,))
    assert report.standing_s == 0, (report, blamed)
    assert report.controller_s <= loop_response_s(site) + DT, (report, blamed)


def test_a_rise_two_cars_could_have_made_is_credited_only_where_it_is_surely_one_s():
    # Two cars follow raises at once (4 A and 1 A) and the meter rises 4 A: shared in proportion,
    # the car that did not move was credited 0.8 A it never drew, the household looked 0.2 A
    # smaller than it was, and the next share went 0.2 A over the limit.
    site = _site(1, 38, 0, CONTROL["steps"] + "\nfallback_a = 6",
                 [("c0", "A", 32, 1), ("c1", "A", 16, 1), ("c2", "A", 10, 1), ("c3", "A", 10, 1),
                  ("c4", "A", 16, 1)])
    cars = {"c0": _car("c0", 150.0, 1.0, 1, 16.0, 1.0), "c2": _car("c2", 20.0, 4.5, 3, 16.0, 50.0),
            "c3": _car("c3", 0.0, 1.0, 1, 32.0, 1.0), "c4": _car("c4", -10.0, 2.5, 1, 16.0, 50.0)}
    metering = {"c0": Metering("lines", 0.0, stops_s=0.0), "c2": Metering("none", 5.0),
                "c3": Metering("power", 10.0, stops_s=30.0), "c4": Metering("lines", 10.0, offset_s=3.0)}
    report, blamed = _run(site, [(0.0, (5.0, 0, 0)), (220.0, (0.0, 0, 0)), (330.0, (10.0, 0, 0))], cars,
                          metering, links={"c2": Link(120.0, ((200.0, 205.0),))}, restarts=(50.0,),
                          seconds=960.0)
    assert report.controller_s == 0, (report, blamed)


def test_a_report_from_before_a_cut_does_not_hold_a_paused_load_up_forever():
    # A power-only charger stopped reporting after 30 s; paused at 40 s, its car drew nothing,
    # yet its last report (6 A) kept counting as what it draws: 6 A of household hidden, and a
    # start planned on it overloaded the phase. (A report that does not come expires.)
    site = _site(1, 30, 0, CONTROL["slow"] + "\nfallback_a = 6",
                 [("c0", "A", 16, 1), ("c1", "A", 16, 2), ("c2", "A", 32, 1), ("c3", "A", 16, 2),
                  ("c4", "A", 32, 2), ("c5", "A", 16, 2)])
    household = [(0.0, (0.0, 0, 0)), (40.0, (5.0, 0, 0)), (100.0, (0.0, 0, 0)), (160.0, (5.0, 0, 0)),
                 (330.0, (10.0, 0, 0))]
    cars = {"c0": _car("c0", 0.0, 4.5, 3, 10.0, 50.0), "c1": _car("c1", 60.0, 0.5, 3, 10.0, 0.3),
            "c3": _car("c3", -10.0, 2.5, 3, 10.0, 1.0), "c4": _car("c4", 20.0, 4.5, 1, 10.0, 50.0),
            "c5": _car("c5", 0.0, 0.5, 1, 32.0, 1.0)}
    metering = {"c0": Metering("power", 10.0, stops_s=0.0), "c1": Metering("none"),
                "c3": Metering("lines", 5.0), "c4": Metering("none"), "c5": Metering("power", 0.0, stops_s=30.0)}
    links = {"c0": Link(120.0, ((200.0, 201.0),)), "c5": Link(120.0, ((200.0, 205.0),))}
    report, blamed = _run(site, household, cars, metering, links=links, seconds=960.0)
    assert report.controller_s == 0, (report, blamed)


def test_a_car_starting_on_a_raise_is_not_credited_its_old_limit():
    # A car plugged in at start, raised from its 6 A fallback to 23 A before it drew anything:
    # it rose 16 A, "the whole raise", and was credited old limit + rise = 22 A for a true 16 A.
    # The 6 A of household hidden by that let a 10 A kettle step overload the phase.
    site = _site(1, 25, 2, CONTROL["fast"] + "\nfallback_a = 6", [("c0", "A", 32, 2)])
    household = [(0.0, (0.0, 0, 0)), (40.0, (2.0, 0, 0)), (100.0, (12.5, 0, 0)), (220.0, (2.0, 0, 0))]
    report, blamed = _run(site, household, {"c0": _car("c0", 0.0, 0.5, 1, 16.0, 0.3)},
                          {"c0": Metering("power", 10.0, stops_s=0.0)}, restarts=(125.0, 260.0),
                          seconds=960.0)
    assert report.controller_s == 0, (report, blamed)
