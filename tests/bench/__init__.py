"""Benchmarks: programs that measure the daemon against a baseline in the same run.

Run them with ``make bench`` (``python -m tests.bench.run --output bench-results.json``);
``docs/benchmarks.md`` says what each figure means. Nothing here is a pass/fail test:
``tests/test_bench_smoke.py`` only checks that a tiny run completes.
"""
