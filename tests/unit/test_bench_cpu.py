"""CPU time per part, read from /proc: a process's own time, its ended children's, a server made
of many processes, and the figures per order the benchmark derives from two readings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.bench import cpu

linux = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@linux
def test_a_process_own_cpu_time_grows_with_the_work_it_does() -> None:
    before = cpu.cpu_seconds(os.getpid())
    _burn(0.2)
    after = cpu.cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.15


@linux
def test_reaped_adds_the_time_of_children_that_ended() -> None:
    pid = os.getpid()
    own, reaped = cpu.cpu_seconds(pid), cpu.cpu_seconds(pid, reaped=True)
    code = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", code], check=True)
    own_after, reaped_after = cpu.cpu_seconds(pid), cpu.cpu_seconds(pid, reaped=True)
    assert own is not None and reaped is not None
    assert own_after is not None and reaped_after is not None
    assert (reaped_after - reaped) - (own_after - own) >= 0.25  # the child's 0.3 s


def test_the_stat_line_is_read_after_the_command_name_whatever_it_holds(tmp_path, monkeypatch):
    # A command name may hold spaces and parentheses; the fields after it are counted from its
    # last ")". utime 14, stime 15, cutime 16, cstime 17 (1-based), in clock ticks.
    rest = " ".join(str(v) for v in [0] * 10 + [300, 200, 70, 30] + [0] * 30)
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text(f"42 (a) b (c)) S {rest}\n")
    (tmp_path / "42" / "comm").write_text("a) b (c)\n")
    monkeypatch.setattr(cpu, "PROC", tmp_path)
    monkeypatch.setattr(cpu, "TICKS", 100)
    assert cpu.cpu_seconds(42) == 5.0
    assert cpu.cpu_seconds(42, reaped=True) == 6.0
    assert cpu.pids_named("a) b (c)") == [42]
    assert cpu.server_seconds("a) b (c)") == 6.0
    assert cpu.cpu_seconds(43) is None


@linux
def test_processes_are_found_by_name_and_an_unknown_pid_reads_as_unknown() -> None:
    name = Path("/proc/self/comm").read_text().strip()
    assert os.getpid() in cpu.pids_named(name)
    assert cpu.server_seconds(name) is not None
    assert cpu.server_seconds("no-such-process-name") is None
    assert cpu.cpu_seconds(2**22 + 7) is None  # above Linux's largest pid


def test_per_order_divides_each_part_and_leaves_out_what_is_unknown() -> None:
    before = {"core": 10.0, "postgres": 5.0, "loadgen": None, "gone": 3.0}
    after = {"core": 10.5, "postgres": 5.2, "loadgen": 1.0, "gone": None}
    costs = cpu.per_order(before, after, 1000)
    assert costs == {"core": 500.0, "postgres": 200.0, "total": 700.0}
    assert cpu.per_order(before, after, 0) is None
    assert cpu.per_order({"core": None}, {"core": 1.0}, 10) is None
    # A reading that went backwards (a process replaced by another) is not a cost.
    assert cpu.per_order({"a": 2.0, "b": 1.0}, {"a": 1.0, "b": 2.0}, 1) == {
        "b": 1e6,
        "total": 1e6,
    }


def test_the_ceiling_is_the_cores_over_the_cost_of_an_order() -> None:
    assert cpu.ceiling({"core": 1500.0, "gateway": 500.0, "total": 2000.0}, 2) == 1000
    assert cpu.ceiling({"total": 0.0}, 2) is None
    assert cpu.line({"relay": 40.0, "core": 180.0, "total": 220.0}) == "core 180 · relay 40 = 220"


def test_a_meter_reads_every_part() -> None:
    ticks = iter([1.0, 2.0])
    meter = cpu.CpuMeter({"a": lambda: next(ticks), "b": lambda: None})
    assert meter.read() == {"a": 1.0, "b": None}
    assert meter.read() == {"a": 2.0, "b": None}
