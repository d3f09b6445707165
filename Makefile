# The README's two commands: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

# The dev tools and the ray extra, so that `make test` (and CI, which runs it) runs --engine ray's
# tests too: the extra adds ~30 s to a fresh install and its tests ~1 min (docs/scaling.md).
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,ray]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/fanwise travel Kyoto

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy --strict src/fanwise tests

test: lint browser
	$(BIN)/pytest

# Fan-out overhead side by side (docs/benchmarks.md): ~5 minutes; rewrites its table and plot.
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	touch $@ $(VENV)/.installed

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/fanout.py $(BENCH_ARGS)

# The HTML report's browser test needs headless Chromium from Debian's packages. CI runs as root
# on a fresh machine, so install it when it is missing; if that fails, the test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium fonts-liberation fonts-dejavu-core \
		>/dev/null; } || echo "make: chromium could not be installed; the browser test will skip"

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# --engine ray's tests alone (`make test` runs them with the rest).
.PHONY: test-ray
test-ray: $(VENV)/.installed-dev
	$(BIN)/pytest tests/test_ray_engine.py tests/test_cluster_limits.py
