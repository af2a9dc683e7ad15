# Quick start: `make demo` and `make test`. Both set up .venv/ and Debian's CNI plugins.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CNI_PLUGIN_DIR ?= /usr/lib/cni
PYTEST_ARGS ?=

.PHONY: all venv bytecode plugins shim demo test lint typecheck imports pytest bench crds clean

all: venv shim

# The thick-mode shim kubelet execs on the node: static, so it needs nothing there.
SHIM := build/multus-shim
shim: $(SHIM)

$(SHIM): cniplugin/shim/multus-shim.c
	@if ! command -v gcc >/dev/null || ! ls /usr/lib/*/libc.a >/dev/null 2>&1; then \
		echo "installing gcc and libc6-dev (the static C shim)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; \
	fi
	@mkdir -p build
	gcc -static -Os -s -Wall -Wextra -Werror -o $@ $<

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	$(MAKE) bytecode
	touch $@

# The plugin is exec'd per pod: ship it byte-compiled, as a wheel install would be
# (an editable install is not, and PYTHONDONTWRITEBYTECODE may be set).
bytecode:
	$(BIN)/python -m compileall -q cniplugin operator

venv: $(BIN)/.installed

# Debian's reference plugins (bridge, macvlan, ptp, host-local, ...): the real delegates;
# openssl makes the webhook tests' certificate.
plugins:
	@if [ ! -x $(CNI_PLUGIN_DIR)/bridge ] || ! command -v openssl >/dev/null; then \
		echo "installing Debian's containernetworking-plugins, iproute2 and openssl"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containernetworking-plugins iproute2 openssl >/dev/null; \
	fi

demo: venv plugins bytecode
	$(BIN)/multusctl demo

lint: venv
	$(BIN)/ruff check cniplugin operator tests
	$(BIN)/ruff format --check cniplugin operator tests

typecheck: venv
	$(BIN)/mypy -p multus_rules -p multus_api -p multus_cni -p multus_sriov -p multus_node -p multus_operator -p multusctl

imports: venv
	$(BIN)/lint-imports

pytest: venv plugins shim
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck imports pytest

# Benchmarks print ratios measured side by side in one run; never part of `make test`.
bench: venv plugins bytecode shim
	$(BIN)/python -m tests.bench.bench_cycle
	$(BIN)/python -m tests.bench.bench_k8s
	$(BIN)/python -m tests.bench.bench_operator
	$(BIN)/python -m tests.bench.bench_sriov
	$(BIN)/python -m tests.bench.bench_thick

# Regenerate crds/ from the multus_api models (a test fails when they drift).
crds: venv
	$(BIN)/python -m multus_api.crdgen crds/

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache
