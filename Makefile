# Everything bootstraps itself: a virtual environment, Debian's PostgreSQL/PostGIS, Chromium and
# QGIS (python3-qgis) for the tests.
BIN := .venv/bin

.PHONY: bootstrap demo test lint bench serve

bootstrap:
	@bash scripts/bootstrap.sh

# Builds the demo register, prints its summary and accounts, then serves it (Ctrl-C stops).
demo: bootstrap
	$(BIN)/safeground demo --out demo
	$(BIN)/safeground serve --store demo/safeground.gpkg

# Serves $(STORE) (default: $$SAFEGROUND_STORE or ./safeground.gpkg) on 127.0.0.1:8000.
serve: bootstrap
	$(BIN)/safeground serve $(if $(STORE),--store $(STORE))

lint: bootstrap
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	bash scripts/chromium.sh >/dev/null
	bash scripts/qgis.sh >/dev/null
	url="$$(bash scripts/postgis.sh up)" && \
	SAFEGROUND_TEST_POSTGIS_URL="$$url" $(BIN)/python -m pytest --run-slow

bench: bootstrap
	url="$$(bash scripts/postgis.sh up)" && SAFEGROUND_BENCH_POSTGIS_URL="$$url" bash bench/run_all.sh
