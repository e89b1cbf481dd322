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
	rm -rf .venv build *.egg-info .pytest_cache bench-results.json
