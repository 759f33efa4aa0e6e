"""The documents say what the code does: the reasons the core really gives, the log rate
limit the logger really applies, when config changes really apply, and the design document
the README points to is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from controller import logs
from core_kit import charging, make_site, settle

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def text(name: str) -> str:
    return (ROOT / name).read_text()


def test_readme_links_the_design_document_inside_the_repository():
    readme = text("README.md")
    assert "../shared" not in readme
    assert "(docs/design.md)" in readme
    design = text("docs/design.md")
    for rule in ("Safety model", "Architecture", "Why"):
        assert rule.lower() in design.lower()
    # the nine rules of the safety model, each stated
    assert len(re.findall(r"^\d\. \*\*", design, flags=re.M)) == 9


def test_diagnostics_lists_the_reason_the_core_gives_for_a_phase_limit():
    site = make_site("""
[site]
fuse_a = 20
margin_a = 0
[[charger]]
id = "a"
max_a = 32
""")
    decision, _ = settle(site, (6, 0, 0), readings=charging(1))
    reason = decision.chargers[0].reason
    assert reason == "phase A headroom"
    row = next(line for line in text("docs/diagnostics.md").splitlines() if line.startswith("| `REASON`"))
    assert f"`{reason}`" in row and "site A headroom" not in row


def test_the_log_rate_limit_is_documented_as_the_logger_applies_it():
    for doc in ("README.md", "docs/diagnostics.md"):
        body = " ".join(text(doc).split())
        assert f"{logs.BURST} lines a minute per" in body, doc
        assert "per charger" in body and "suppressed" in body and "dropped" in body, doc
    assert logs.WINDOW_S == 60.0


def test_configuration_says_changes_apply_on_reload_not_at_once():
    body = " ".join(text("docs/configuration.md").split())
    assert "apply at once" not in body
    assert "changes apply on a SIGHUP reload" in body


def test_configuration_lists_every_load_key():
    from controller.config import LOAD_DRIVER_KEYS, LOAD_KEYS
    body = text("docs/configuration.md")
    section = body[body.index("## `[[load]]`"):]
    section = section[:section.index("\n## ", 1)]
    for key in LOAD_KEYS | set().union(*LOAD_DRIVER_KEYS.values()):
        assert f"`{key}`" in section, key
