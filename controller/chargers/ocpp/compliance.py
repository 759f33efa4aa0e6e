"""Pure compliance watch: does the charger keep its car under the limit we gave it?

Some chargers answer "Accepted" and ignore the profile. A charger is non-compliant once its
measured draw on some line has stayed above limit + tolerance for longer than the allowance
(the car needs a few seconds to follow a reduction: IEC 61851-1 gives it 5 s). It becomes
compliant again with the first sample within the limit.
"""

from __future__ import annotations


class ComplianceWatch:
    def __init__(self, tolerance_a: float, allowance_s: float):
        self.tolerance_a = tolerance_a
        self.allowance_s = allowance_s
        self.compliant = True
        self.over_since: float | None = None

    def observe(self, t: float, limit_a: float | None, draw_lines_a: tuple[float, ...] | None) -> bool:
        """Feed one sample (monotonic time). Returns True when `compliant` changed."""
        if limit_a is None or not draw_lines_a:
            return False
        over = max(draw_lines_a) > limit_a + self.tolerance_a
        if not over:
            self.over_since = None
            changed, self.compliant = not self.compliant, True
            return changed
        if self.over_since is None:
            self.over_since = t
        if self.compliant and t - self.over_since > self.allowance_s:
            self.compliant = False
            return True
        return False

    def limit_lowered(self, t: float) -> None:
        """A lower limit restarts the allowance: the car gets its time to follow it."""
        if self.over_since is not None:
            self.over_since = max(self.over_since, t)
