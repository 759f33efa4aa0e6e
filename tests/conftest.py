"""Shared test setup. Hypothesis runs 300 examples per property by default; set
EVFUSE_HYPOTHESIS=thorough for a long hunt (5000)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("EVFUSE_HYPOTHESIS", "default"))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path_factory, monkeypatch):
    """Every test keeps its state (overrides, button) in a fresh directory of its own, never in
    the user's: a Controller reads overrides.json from the state directory when it is made."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))
