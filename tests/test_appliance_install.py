"""install.sh into a temporary root (--root): files and modes, the ownership, users, apt and
systemctl actions it records instead of doing, an idempotent second run, uninstall and purge;
and shellcheck."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "install.sh"


def install(root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    r = subprocess.run(["bash", str(SCRIPT), "--root", str(root), *args], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def actions(root: Path) -> list[str]:
    return (root / "install-actions.log").read_text().splitlines()


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_install_into_a_root_then_again_then_uninstall(tmp_path):
    root = tmp_path / "root"
    out = install(root)
    config = root / "etc/evfuse/evfuse.toml"
    unit = root / "etc/systemd/system/evfuse.service"
    assert config.read_text() == (REPO / "controller/evfuse.example.toml").read_text()
    assert mode(config) == 0o640 and mode(root / "etc/evfuse") == 0o750
    assert unit.read_text() == (REPO / "systemd/evfuse.service").read_text() and mode(unit) == 0o644
    assert (root / "opt/evfuse/docs/diagnostics.md").is_file()
    assert os.readlink(root / "usr/local/bin/evfuse") == "/opt/evfuse/venv/bin/evfuse"
    assert "edit it for this site" in out and "systemctl start evfuse" in out

    done = actions(root)
    assert "chown root:evfuse /etc/evfuse/evfuse.toml" in done
    assert any(a.startswith("apt-get install") and "python3-venv" in a for a in done)
    user = next(a for a in done if a.startswith("useradd"))
    assert "--system" in user and "dialout,gpio" in user and user.endswith(" evfuse")
    assert "python3 -m venv --system-site-packages /opt/evfuse/venv" in done
    assert f"/opt/evfuse/venv/bin/pip install --quiet --upgrade {REPO}" in done
    assert "systemctl enable evfuse.service" in done
    assert "systemctl restart evfuse.service" not in done  # a fresh config needs editing first
    for path in root.rglob("*"):  # nothing escaped into the real tree as a symlink target
        assert path.is_symlink() or str(path.resolve()).startswith(str(root))

    # Second run: an upgrade. The edited config stays; the service restarts.
    config.write_text("# edited by the installer\n")
    config.chmod(0o640)
    (root / "install-actions.log").unlink()
    out = install(root)
    assert config.read_text() == "# edited by the installer\n" and mode(config) == 0o640
    assert "keeping /etc/evfuse/evfuse.toml" in out
    again = actions(root)
    assert "systemctl restart evfuse.service" in again
    assert "chown root:evfuse /etc/evfuse/evfuse.toml" not in again

    (root / "install-actions.log").unlink()
    install(root, "--uninstall")
    assert not unit.exists() and not (root / "opt/evfuse").exists()
    assert not (root / "usr/local/bin/evfuse").is_symlink()
    assert config.read_text() == "# edited by the installer\n"  # config kept
    assert "systemctl disable --now evfuse.service" in actions(root)
    assert not any(a.startswith("userdel") for a in actions(root))

    install(root, "--purge")
    assert not (root / "etc/evfuse").exists()
    assert "userdel evfuse" in actions(root)


def test_install_refuses_unknown_options(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), "--root", str(tmp_path), "--bogus"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean():
    r = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
