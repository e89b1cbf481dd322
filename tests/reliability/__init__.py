"""Reliability: crash consistency, protocol fuzzing, hostile programs, services under
attack (``docs/reliability.md``). Load and soak live in ``tests/bench/load.py``."""
