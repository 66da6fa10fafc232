"""The monitor's decisions (cocode.resources.policy), pure: memory-pressure and
disk-low hysteresis, the enforcement steps of a memory limit, and which limit applies."""

from __future__ import annotations

from cocode.configload import load_config
from cocode.resources import policy as governance

MIB = 1024 * 1024


def test_pressure_hysteresis():
    seq = [50, 79.9, 80.5, 90, 76, 75.1, 74.9, 79, 80, 80.1]
    on, out = False, []
    for pct in seq:
        on = governance.pressure_next(on, pct, 80)
        out.append(on)
    # on only above 80; off only below 75 (80 - 5); in between it keeps its state.
    assert out == [False, False, True, True, True, True, False, False, False, True]


def test_disk_warning_once_per_crossing():
    line = governance.DISK_LOW_BYTES
    low, warnings = False, 0
    for free in [10 * line, line - 1, line - 5 * MIB, line + MIB, line - 1, line + 20 * MIB, line - 1]:
        after = governance.disk_low_next(low, free)
        warnings += after and not low
        low = after
    assert warnings == 2  # back above by only 1 MB is no new crossing; +20 MB is


def test_enforcement_steps_and_limits():
    lim = 100 * MIB
    assert governance.enforcement(99 * MIB, lim, None, False, 0.0) is None
    assert governance.enforcement(101 * MIB, lim, None, False, 0.0) == "terminate"
    assert governance.enforcement(500 * MIB, lim, 5.0, False, 14.9) is None
    assert governance.enforcement(0, lim, 5.0, False, 15.0) == "kill"
    assert governance.enforcement(500 * MIB, lim, 5.0, True, 99.0) is None
    config = load_config(None)
    specs = {"big": type("S", (), {"memory_limit_mb": 4096})(), "plain": type("S", (), {"memory_limit_mb": None})()}
    assert governance.memory_limit_mb("big", specs, config.limits.memory_limit_mb) == 4096
    assert governance.memory_limit_mb("plain", specs, 2048) == 2048
    assert governance.memory_limit_mb("unknown", specs, 2048) == 2048
    assert governance.cpu_percent({1: 1.0, 2: 5.0}, {1: 1.5, 3: 0.25, 4: 9.0}, {3}, 1.0) == 75.0


