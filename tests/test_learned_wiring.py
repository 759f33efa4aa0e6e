"""What the meter taught about the wiring, across restarts (controller/learned_wiring.py): kept
in the state directory, said once per conclusion, cleared by a new `phases`, shown by
check-config. The runtime's use of it runs against real peers in tests/test_net_runtime.py."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from controller.cli import main
from controller.config import load_config
from controller.core.wiring import InversionConclusion, WiringConclusion
from controller.learned_wiring import FILE, LearnedWiring

CONFIG = """
[site]
fuse_a = 25
[meter]
host = "127.0.0.1"
[[charger]]
id = "bay"
phases = "A"
[[charger]]
id = "drive"
phases = "ABC"
"""


def _config(tmp_path, text=CONFIG):
    path = tmp_path / "evfuse.toml"
    path.write_text(text)
    return path, load_config(path)


def test_a_strong_contradiction_is_kept_said_once_and_shown_by_check_config(tmp_path, capsys):
    path, cfg = _config(tmp_path)
    learned = LearnedWiring(cfg)
    lean = WiringConclusion("bay", "A", "B", "leaning", 7.0, 0.9, 3)
    remap, lines = learned.update(cfg, (lean,), ())
    assert not remap and len(lines) == 1 and "keeping the configured wiring" in lines[0][1]
    assert learned.update(cfg, (lean,), ())[1] == []  # said once
    strong = WiringConclusion("bay", "A", "B", "strong", 18.0, 1.0, 6)
    remap, lines = learned.update(cfg, (strong,), (InversionConclusion(2, "leaning", 7.0, 0.9),))
    assert remap and learned.detected() == {"bay": "B"}
    texts = [t for _, t, _ in lines]
    assert any('phases = "B"' in t for t in texts) and any('invert = "C"' in t for t in texts)
    fields = lines[0][2]
    assert fields["WIRING_CONFIGURED"] == "A" and fields["WIRING_DETECTED"] == "B" and fields["WIRING_SAMPLES"] == 6
    status = learned.status(cfg)
    assert status["chargers"]["bay"]["detected"] == "B" and status["clamps"][0]["fix"] == 'invert = "C"'
    saved = json.loads((Path(os.environ["STATE_DIRECTORY"]) / FILE).read_text())
    assert saved["chargers"]["bay"] == {"configured": "A", "detected": "B", "score": 18.0, "share": 1.0,
                                        "samples": 6}
    assert LearnedWiring(cfg).detected() == {"bay": "B"}  # a restart keeps it
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'bay configured phases = "A", detected "B"' in out


def test_a_new_phases_in_the_config_clears_what_was_learned(tmp_path, capsys):
    path, cfg = _config(tmp_path)
    LearnedWiring(cfg).update(cfg, (WiringConclusion("bay", "A", "B", "strong", 18.0, 1.0, 6),), ())
    moved = dataclasses.replace(cfg, chargers=(dataclasses.replace(cfg.chargers[0], phases="C"), cfg.chargers[1]))
    again = LearnedWiring(moved)
    assert again.cleared == ["bay"] and again.detected() == {}
    assert LearnedWiring(cfg).detected() == {}  # gone from the file too
    path.write_text(CONFIG.replace('phases = "A"', 'phases = "C"'))
    assert main(["check-config", str(path)]) == 0
    assert "detected" not in capsys.readouterr().out


def test_a_damaged_file_is_nothing_learned(tmp_path):
    _, cfg = _config(tmp_path)
    (Path(os.environ["STATE_DIRECTORY"]) / FILE).parent.mkdir(parents=True, exist_ok=True)
    (Path(os.environ["STATE_DIRECTORY"]) / FILE).write_text("{not json")
    assert LearnedWiring(cfg).detected() == {}
    (Path(os.environ["STATE_DIRECTORY"]) / FILE).write_text(json.dumps({"chargers": {"bay": {"detected": 3}}}))
    assert LearnedWiring(cfg).detected() == {}
