"""Fuzzing the daemon's end of the compartment channel with real programs.

Each case is one run of ``c/chan_relay.c``, which writes the case's frames to fd 3 and
prints every frame the launcher sends back (``channel_cases.py`` says what a case is and
what it must give). Seeded cases give volume; hypothesis (``st.randoms``) drives the same
generator so a failure shrinks to a small case. The daemon must never crash or log a
traceback, every frame it sends must be a well-formed launcher frame, and each run must
end as the protocol says: exited with one ``unknown_service`` ERROR per request, or
``failed``/``protocol_violation``.

The Python codec's own property tests (``tests/test_channel_codec.py``) add several
thousand more cases against the decoder alone.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .channel_cases import Case, check, expected, make_case
from .common import build, c_program, run_to_end, serves_normally
from .conftest import Harness, scaled

CONCURRENCY = 12
SEEDED_RUNS = scaled(120, 900)
HYPOTHESIS_CASES = scaled(30, 300)
_built: dict[int, str] = {}


def relay(harness: Harness) -> str:
    """The relay's build id (built once per daemon)."""
    key = id(harness)
    if key not in _built:
        _built[key] = harness.run(build(harness.client, "chan_relay.c", c_program("chan_relay.c")))["build_id"]
    return _built[key]


async def run_cases(harness: Harness, build_id: str, cases: list[Case]) -> list[tuple[Case, dict[str, Any], str]]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(case: Case) -> tuple[Case, dict[str, Any], str]:
        async with gate:
            run, output = await run_to_end(harness.client, build_id, args=case.argv(), limits={"wall_s": 20})
            return case, run, output

    return await asyncio.gather(*(one(c) for c in cases))


def test_seeded_channel_cases(harness: Harness) -> None:
    build_id = relay(harness)
    cases = [make_case(random.Random(seed)) for seed in range(SEEDED_RUNS)]
    done = harness.run(run_cases(harness, build_id, cases), timeout=900)
    outcomes: dict[str, int] = {}
    for case, run, output in done:
        check(case, run, output)
        outcomes[expected(case).outcome] = outcomes.get(expected(case).outcome, 0) + 1
    frames = sum(case.frames for case in cases)
    print(f"channel fuzz: {len(cases)} runs, {frames} frames, outcomes {outcomes}")
    assert outcomes.get("ok") and outcomes.get("violation")  # both paths were exercised
    harness.run(serves_normally(harness.client))


@settings(max_examples=HYPOTHESIS_CASES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(rng=st.randoms(use_true_random=False))
def test_hypothesis_channel_cases(harness: Harness, rng: random.Random) -> None:
    build_id = relay(harness)
    for case, run, output in harness.run(run_cases(harness, build_id, [make_case(rng, small=True)])):
        check(case, run, output)


def test_the_daemon_still_certifies_after_the_fuzzing(harness: Harness) -> None:
    from attestables import cheri

    hello = harness.run(build(harness.client, "attest_hello.c", (cheri.EXAMPLES_DIR / "attest_hello.c").read_text()))
    harness.run(serves_normally(harness.client, hello["build_id"]))
