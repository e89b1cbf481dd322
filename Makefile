# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Each bootstraps what it needs on a fresh clone (scripts/bootstrap.sh).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: demo test bench bootstrap clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	$(PY) -m attestables.cli.main demo

test: bootstrap
	$(PY) -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

bench: bootstrap
	$(PY) -m tests.bench.run --output bench-results.json

clean:
	rm -rf .venv build *.egg-info .pytest_cache bench-results.json reliability-*.json

# docs/reliability.md: 100 daemon kills, the fuzzers and hostile programs at their full
# counts, 50 clients x 200 commands, and the 10-minute soak. Every step runs; the target
# fails at the end if one of them found a property that did not hold.
.PHONY: reliability
reliability: bootstrap
	@status=0; \
	$(PY) -m tests.reliability.crash --iterations 100 --json reliability-crash.json || status=1; \
	RELIABILITY_FULL=1 $(PY) -m pytest -q -n 2 --dist loadfile tests/reliability || status=1; \
	$(PY) -m tests.bench.load --output reliability-load.json || status=1; \
	$(PY) -m tests.bench.load --soak --output reliability-soak.json || status=1; \
	exit $$status
