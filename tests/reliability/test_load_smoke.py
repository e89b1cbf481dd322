"""The load and soak programs (tests/bench/load.py) run end to end at tiny sizes.

No timing is asserted (figures are read from ``make bench`` / ``make reliability``); what
is asserted is what the issue requires to hold under load whatever the machine: no error
the clients did not cause, every EAI crossing ``ok``, every integration process alive.
"""

from __future__ import annotations

import math

from ..bench.load import bench_load, bench_soak


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


async def test_quick_load_has_no_errors_and_reports_its_keys() -> None:
    results = {r.key: r for r in await bench_load(quick=True)}
    assert set(results) == {"load_cmd_ms_p99", "load_errors", "load_rss_mb"}
    assert all(_number(r.value) for r in results.values())
    errors = results["load_errors"]
    assert errors.value == 0, errors.extra
    assert set(errors.extra["eai_outcomes"]) <= {"ok"}  # the quick load lasts a fraction of a second
    assert errors.extra["integration_runs"] == {"running": errors.extra["compartments"]}
    assert results["load_cmd_ms_p99"].extra["commands"] == 10 * 20


async def test_quick_soak_reports_its_growth() -> None:
    (soak,) = await bench_soak(duration_s=10, quick=True)
    assert soak.key == "soak_rss_growth_mb" and _number(soak.value)
    assert soak.extra["errors"] == {} and soak.extra["eai_failures"] == 0, soak.extra
    assert soak.extra["commands"] > 0 and soak.extra["runs"] > 0
