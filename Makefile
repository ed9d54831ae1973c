# Everything bootstraps itself: a virtual environment, Debian's PostgreSQL/PostGIS for the tests.
BIN := .venv/bin

.PHONY: bootstrap demo test lint bench serve

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	$(BIN)/safeground demo --out demo

lint: bootstrap
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	bash scripts/chromium.sh >/dev/null
	url="$$(bash scripts/postgis.sh up)" && \
	SAFEGROUND_TEST_POSTGIS_URL="$$url" $(BIN)/python -m pytest --run-slow

bench: bootstrap
	url="$$(bash scripts/postgis.sh up)" && SAFEGROUND_BENCH_POSTGIS_URL="$$url" bash bench/run_all.sh
