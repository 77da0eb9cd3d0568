"""`hub demo` as a user runs it: a process on the embedded default, exit code and summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_exits_zero_and_every_check_holds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_VAR_DIR"] = str(tmp_path / "var")
    hub = Path(sys.executable).with_name("hub")
    proc = subprocess.run(
        [str(hub), "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["ok"] is True
    assert summary["figures"]["accepted"] == 50
    assert summary["figures"]["oversell"] == 0
    assert summary["figures"]["flash_accepted"] == 40
    names = {c["name"] for c in summary["checks"]}
    assert "replaying every message changes nothing" in names
    assert "shops converge to the hub's available-to-sell" in names
    assert "cancel before create leaves no reservation" in names
    assert all(c["ok"] for c in summary["checks"])
    # The finance journal the demo wrote is valid Beancount, checked by the real bean-check.
    books = Path(summary["figures"]["books_file"])
    assert summary["figures"]["vouchers"] > 0
    check = subprocess.run(
        [str(hub.with_name("bean-check")), str(books)], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
