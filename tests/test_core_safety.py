"""Fast path, slow path, restart delay, fallback and overload persistence, sample by sample."""

from controller.core.causes import Cause
from controller.core.decide import decide, initial_state
from controller.model import CarState, ChargerReading, MeterSample

from core_kit import limits, make_site

ONE_CHARGER = """
[site]
fuse_a = 25
margin_a = 1
[control]
ramp_up_delay_s = 15
ramp_up_step_a = 4
ramp_up_interval_s = 5
restart_delay_s = 120
response_s = 5
overload_pause_s = 6
[[charger]]
id = "car"
max_a = 16
"""


class Loop:
    """Drive decide() sample by sample with explicit meter and charger readings."""

    def __init__(self, site):
        self.site = site
        self.state = initial_state(site)

    def step(self, t, meter, reading=None, readings=None, sample_t=None):
        readings = readings or [reading or ChargerReading(car=CarState.CHARGING)]
        sample = None if meter is None else MeterSample(t if sample_t is None else sample_t, meter)
        d = decide(self.site, self.state, sample, readings, t)
        self.state = d.state
        return d


def measured(amps):
    return ChargerReading(car=CarState.CHARGING, draw_lines_a=(amps, amps, amps))


def at_16(loop, t=0.0):
    """Bring the single charger to 16 A with a quiet household (5 A)."""
    site = loop.site
    loop.step(t, None)
    now = t + 1
    while True:
        limit = loop.state.loads[0].limit_a
        d = loop.step(now, (5 + limit,) * 3, measured(limit))
        if d.chargers[0].limit_a == 16:
            return now
        now += 1
        assert now < t + 200, d


def test_start_is_fallback_until_first_sample():
    loop = Loop(make_site(ONE_CHARGER, fast_ramp=False))
    d = loop.step(0, None)
    assert d.fallback and limits(d) == {"car": 6.0} and d.chargers[0].changed


def test_ramp_up_waits_for_held_headroom_then_steps():
    loop = Loop(make_site(ONE_CHARGER, fast_ramp=False))
    loop.step(0, None)
    seen = []
    for t in range(1, 40):
        d = loop.step(t, (5 + loop.state.loads[0].limit_a,) * 3)
        seen.append((t, d.chargers[0].limit_a))
    # held 15 s from t=1, then +4 A every 5 s: 6 -> 10 at t=16, 14 at t=21, 16 at t=26
    assert [x for x in seen if x[0] in (15, 16, 20, 21, 25, 26, 39)] == \
        [(15, 6.0), (16, 10.0), (20, 10.0), (21, 14.0), (25, 14.0), (26, 16.0), (39, 16.0)]


def test_overload_cut_is_sized_from_the_measured_excess_at_once():
    loop = Loop(make_site(ONE_CHARGER, fast_ramp=False))
    t = at_16(loop)
    # Household on phase A jumps 5 -> 15 A: meter A = 31 A, limit 24 A, excess 7 A.
    d = loop.step(t + 0.25, (31, 21, 21), measured(16))
    assert limits(d) == {"car": 9.0}
    assert d.chargers[0].changed
    assert d.chargers[0].reason == "overload cut: phase A over by 7.0 A"
    assert d.overloads == {"phase A": 7.0}


def test_no_double_cut_inside_the_response_window_but_more_when_excess_grows():
    loop = Loop(make_site(ONE_CHARGER, fast_ramp=False))
    t = at_16(loop)
    unmeasured = ChargerReading(car=CarState.CHARGING)
    d = loop.step(t + 0.25, (31, 21, 21), unmeasured)
    assert limits(d) == {"car": 9.0}
    # The car has not followed yet (still 16 A): the same excess must not cut again.
    for dt in (0.5, 1.0, 2.0, 4.0):
        d = loop.step(t + dt, (31, 21, 21), unmeasured)
        assert limits(d) == {"car": 9.0}, dt
        assert not d.chargers[0].changed
    # The excess grows by 2 A: cut by exactly that much more, at once.
    d = loop.step(t + 4.25, (33, 21, 21), unmeasured)
    assert limits(d) == {"car": 7.0}


def test_overload_that_persists_pauses_the_charger():
    loop = Loop(make_site(ONE_CHARGER, fast_ramp=False))
    t = at_16(loop)
    # The car ignores the cut and keeps drawing 16 A (the charger still reports compliance).
    d = loop.step(t + 0.25, (31, 21, 21), measured(16))
    assert limits(d) == {"car": 9.0}
    d = loop.step(t + 5, (31, 21, 21), measured(16))
    assert limits(d) == {"car": 9.0}
    d = loop.step(t + 6.25, (31, 21, 21), measured(16))
    # Past its response time the car is counted at what it is allowed (9 A), so its extra
    # draw shows as load and it is shed; the persistence pause is the backstop behind that.
    assert limits(d) == {"car": 0.0}
    assert d.chargers[0].reason.startswith(("shed", "overload on phase A for"))


def test_paused_charger_waits_restart_delay_then_needs_hysteresis():
    text = ONE_CHARGER.replace("restart_delay_s = 120", "restart_delay_s = 120\nrestart_hysteresis_a = 1")
    loop = Loop(make_site(text, fast_ramp=False))
    t = at_16(loop)
    d = loop.step(t + 1, (24 + 16 - 3, 21, 21), measured(16))  # household 21 A on A: only 3 A left
    assert limits(d) == {"car": 0.0} and d.chargers[0].reason.startswith("shed")
    paused_at = t + 1
    for dt in (2, 30, 60, 119):
        d = loop.step(paused_at + dt, (5, 5, 5), measured(0))
        assert limits(d) == {"car": 0.0}
        assert d.chargers[0].reason.startswith("restart delay")
    # Delay over, but only min_a (6 A) + 0.5 A free: hysteresis (1 A) keeps it paused.
    d = loop.step(paused_at + 121, (24 - 6.5, 5, 5), measured(0))
    assert limits(d) == {"car": 0.0}
    assert d.chargers[0].reason == "restart delay over, no room for min_a (priority 1)"
    # Room at last: it must hold ramp_up_delay_s (15 s) like any increase, so one dip in the
    # household does not stop and start the car again.
    d = loop.step(paused_at + 122, (5, 5, 5), measured(0))
    assert limits(d) == {"car": 0.0} and d.chargers[0].reason == "restart when the room holds 15 s"
    d = loop.step(paused_at + 130, (24 - 6.5, 5, 5), measured(0))  # the room went away: start over
    d = loop.step(paused_at + 131, (5, 5, 5), measured(0))
    d = loop.step(paused_at + 145, (5, 5, 5), measured(0))
    assert limits(d) == {"car": 0.0}
    d = loop.step(paused_at + 146, (5, 5, 5), measured(0))
    assert limits(d) == {"car": 6.0}
    assert d.chargers[0].reason.startswith("starting at min_a")


def test_meter_stale_sends_every_charger_to_fallback_and_ramps_back():
    loop = Loop(make_site(ONE_CHARGER, fast_ramp=False))
    t = at_16(loop)
    d = loop.step(t + 3.0, (21, 21, 21), measured(16), sample_t=t)  # exactly stale_after_s old
    assert limits(d) == {"car": 16.0} and d.fallback is None
    d = loop.step(t + 3.3, (21, 21, 21), measured(16), sample_t=t)
    assert d.fallback is Cause.METER_LOST and limits(d) == {"car": 6.0}
    assert d.chargers[0].reason == "meter lost 3 s: fallback"
    d = loop.step(t + 10, (11, 11, 11), measured(6))
    assert d.fallback is None and limits(d) == {"car": 6.0}
    assert d.chargers[0].reason.startswith("ramp-up hold")


def test_dead_band_holds_small_increases_but_never_decreases():
    loop = Loop(make_site(ONE_CHARGER.replace("max_a = 16", "max_a = 32"), fast_ramp=True))
    loop.step(0, None)
    for t in range(1, 30):
        limit = loop.state.loads[0].limit_a
        d = loop.step(t, (10 + limit,) * 3, measured(limit))
    assert limits(d) == {"car": 14.0}
    d = loop.step(31, (9.7 + 14,) * 3, measured(14))  # 0.3 A more room: not sent
    assert limits(d) == {"car": 14.0} and not d.chargers[0].changed
    d = loop.step(32, (10.3 + 14,) * 3, measured(14))  # 0.3 A less room: sent at once
    assert limits(d) == {"car": 13.7} and d.chargers[0].changed


def test_charger_with_link_down_is_fixed_load_until_its_lease_ends():
    site = make_site("""
[site]
fuse_a = 25
margin_a = 0
[[charger]]
id = "online"
max_a = 32
[[charger]]
id = "gone"
max_a = 16
""")
    loop = Loop(site)
    loop.step(0, None)
    for t in range(1, 20):
        lim = [c.limit_a for c in loop.state.loads]
        both = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(x,) * 3) for x in lim]
        d = loop.step(t, (sum(lim),) * 3, readings=both)
    assert limits(d) == {"online": 12.5, "gone": 12.5}
    down = [both[0], ChargerReading(online=False, draw_lines_a=(12.5,) * 3, lease_until=80)]
    d = loop.step(30, (25,) * 3, readings=down)
    assert limits(d) == {"online": 12.5, "gone": 12.5} and not d.chargers[1].changed
    assert d.chargers[1].cause is Cause.LINK_DOWN
    assert d.chargers[1].reason == "link down: counted at 12.5 A for 50 s more, then its fallback"
    d = loop.step(81, (25,) * 3, readings=down)  # lease over: it is on its own 6 A fallback
    assert d.chargers[1].reason == "link down: counted at 6 A (its own fallback)"
    for t in range(82, 100):
        online = d.chargers[0].limit_a
        down[0] = ChargerReading(car=CarState.CHARGING, draw_lines_a=(online,) * 3)
        d = loop.step(t, (online + 6,) * 3, readings=down)
    assert limits(d)["online"] == 19.0


def test_charger_coming_back_online_gets_a_fresh_command_and_keeps_charging():
    """A link blip is no stop (invariant 9): the limit goes out again at once, at the share the
    car had, instead of restarting it from min_a."""
    loop = Loop(make_site(ONE_CHARGER))
    at_16(loop)
    loop.step(200, (21,) * 3, ChargerReading(online=False, lease_until=300))
    d = loop.step(201, (21,) * 3, measured(16))
    assert d.chargers[0].changed and limits(d) == {"car": 16.0}


def test_non_compliant_charger_is_paused_and_its_draw_is_fixed_load():
    site = make_site("""
[site]
fuse_a = 25
margin_a = 0
[[charger]]
id = "rogue"
[[charger]]
id = "good"
max_a = 32
""")
    loop = Loop(site)
    loop.step(0, None)
    readings = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(16,) * 3, compliant=False),
                ChargerReading(car=CarState.CHARGING, draw_lines_a=(0,) * 3)]
    d = loop.step(1, (16,) * 3, readings=readings)
    assert limits(d)["rogue"] == 0.0 and d.chargers[0].reason.startswith("non-compliant")
    for t in range(2, 30):
        good = d.chargers[1].limit_a
        readings[1] = ChargerReading(car=CarState.CHARGING, draw_lines_a=(good,) * 3)
        d = loop.step(t, (16 + good,) * 3, readings=readings)
    assert limits(d)["good"] == 9.0  # 25 - 16 drawn by the rogue


def test_no_car_fault_and_off_get_nothing_without_restart_delay():
    site = make_site(ONE_CHARGER.replace('max_a = 16', 'max_a = 16\n[[charger]]\nid = "off"\nmode = "off"'))
    loop = Loop(site)
    loop.step(0, None)
    d = loop.step(1, (5, 5, 5), readings=[ChargerReading(car=CarState.NO_CAR), ChargerReading()])
    assert [(c.limit_a, c.reason) for c in d.chargers] == [(0.0, "no car"), (0.0, "mode off")]
    d = loop.step(2, (5, 5, 5), readings=[ChargerReading(car=CarState.CONNECTED), ChargerReading()])
    assert limits(d)["car"] == 6.0  # a car arriving starts at once (at min_a)
    d = loop.step(3, (5, 5, 5), readings=[ChargerReading(car=CarState.FAULT), ChargerReading()])
    assert d.chargers[0].reason == "charger reports a fault" and limits(d)["car"] == 0


def test_user_hold_stops_everything_and_resume_has_no_restart_delay():
    loop = Loop(make_site(ONE_CHARGER))
    t = at_16(loop)
    d = decide(loop.site, loop.state, MeterSample(t + 1, (21,) * 3), [measured(16)], t + 1,
               hold="paused by button")
    assert limits(d) == {"car": 0.0} and d.chargers[0].reason == "paused by button"
    assert d.chargers[0].changed
    loop.state = d.state
    d = loop.step(t + 2, (5,) * 3, measured(0))
    assert limits(d) == {"car": 6.0}  # resumed at once: the user asked, not the controller


def test_a_report_from_before_a_raise_does_not_turn_the_cars_rise_into_household():
    """Chargers report draw every few seconds, the meter every 0.25 s. After a raise the meter
    sees the car rise first; the core must not take that for household load and cut back."""
    loop = Loop(make_site(ONE_CHARGER, fast_ramp=False))
    loop.step(0, None)
    d = loop.step(1, (11,) * 3, ChargerReading(car=CarState.CHARGING, draw_lines_a=(6.0,) * 3, draw_at=1))
    for t in range(2, 17):  # headroom holds: the ramp raises 6 -> 10 at t=16
        d = loop.step(t, (11,) * 3, ChargerReading(car=CarState.CHARGING, draw_lines_a=(6.0,) * 3, draw_at=t))
    assert limits(d) == {"car": 10.0}
    # The car follows; the meter shows 15 A, the charger's last report (t=16) still says 6 A.
    stale = ChargerReading(car=CarState.CHARGING, draw_lines_a=(6.0,) * 3, draw_at=16)
    for t in (17, 18, 19):
        d = loop.step(t, (15,) * 3, stale)
        assert limits(d) == {"car": 10.0}, d.chargers[0].reason
        assert d.household_a == (5.0, 5.0, 5.0)
    # A household step at the same time is still seen: the meter says 25 A.
    d = loop.step(19.5, (25,) * 3, stale)
    assert limits(d) == {"car": 0.0} or limits(d)["car"] <= 9.0


def test_a_car_below_its_old_limit_is_not_assumed_to_follow_a_raise():
    loop = Loop(make_site(ONE_CHARGER, fast_ramp=False))
    loop.step(0, None)
    for t in range(1, 17):
        d = loop.step(t, (7.5,) * 3, ChargerReading(car=CarState.CHARGING, draw_lines_a=(5.5,) * 3, draw_at=t))
    assert limits(d) == {"car": 10.0}
    stale = ChargerReading(car=CarState.CHARGING, draw_lines_a=(5.5,) * 3, draw_at=16)
    d = loop.step(17, (7.5,) * 3, stale)
    assert d.household_a == (2.0, 2.0, 2.0)  # a car using 5.5 of 6 A does not take 10 A


def test_current_a_car_does_not_use_is_won_back_by_lowering_its_limit():
    """Invariant 1: a car drawing 10 A of its 16 A is counted at 16 A, so its unused 6 A go to
    nobody; lowering its limit toward its draw (plus a margin) frees them for a lower priority
    car. Once it draws up to the lowered limit it is offered its whole share again."""
    site = make_site("""
[site]
fuse_a = 25
margin_a = 1
[control]
ramp_up_delay_s = 0
ramp_up_step_a = 32
[[charger]]
id = "a"
priority = 1
[[charger]]
id = "b"
priority = 2
""")
    loop = Loop(site)
    loop.step(0, None)
    live = lambda amps: ChargerReading(car=CarState.CHARGING, draw_lines_a=(amps,) * 3)
    t = 0.0
    for _ in range(60):  # household 2 A; a's car takes 10 A whatever it is offered, b's 16 A
        t += 0.5
        b = max(0.0, loop.state.loads[1].limit_a)
        d = loop.step(t, (2 + 10 + b,) * 3, readings=[live(10.0), live(b)])
    # Without the reclaim a would keep 16 A it does not use and b would get 6 A.
    assert limits(d) == {"a": 12.0, "b": 10.0}
    assert d.chargers[0].cause is Cause.DRAWS_LESS
    assert d.chargers[0].reason.startswith("its car draws 10.0 A")
    # a's car now draws up to its lowered limit: it is offered its share again at once.
    d = loop.step(t + 0.5, (2 + 12 + 10,) * 3, readings=[live(12.0), live(10.0)])
    assert d.chargers[0].cause is not Cause.DRAWS_LESS
    assert limits(d)["a"] > 12.0 or d.chargers[0].cause is Cause.WAIT_FOLLOW
