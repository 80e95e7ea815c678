# Ketenbus: two commands matter.  `make demo` runs the chain; `make test` proves it.
# A fresh machine needs Python 3.11, pip, make and Rust's cargo (the polyglot machines carry
# it, with Java and Maven): everything else is installed here.

SHELL := /bin/bash
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv

.PHONY: demo test setup engines system-packages lint schemas check-lock audit bench up down status clean

demo: setup system-packages engines ## bring up the embedded stack and run the scenario
	$(UV) run ketenbus demo

test: setup system-packages engines check-lock audit ## the whole test suite on the embedded stack
	$(UV) run ruff check .
	$(UV) run python -m ketenbus.contracts check
	$(UV) run pytest -n auto --maxprocesses 4 --dist loadfile

setup: $(UV) ## uv, then every Python dependency exactly as locked
	$(UV) sync --frozen --quiet

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

engines: setup ## Apache Kafka (Maven) and secantusd-rs (cargo), once per machine; says how long
	$(UV) run python -m ketenbus.devstack.engines install

system-packages: ## Debian packages: Java and Maven (Kafka), promtool, amtool, Chromium
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing \
	    || echo "could not install$$missing; the tests that need them will say they were skipped"; \
	fi

check-lock: $(UV) ## fail when uv.lock no longer matches the pyproject files
	$(UV) lock --check

audit: $(UV) ## vulnerability audit of the locked dependencies (says when it was skipped)
	python3 scripts/audit.py --uv $(UV)

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .

schemas: setup ## export the JSON Schema of every event (refuses breaking changes)
	$(UV) run python -m ketenbus.contracts export

bench: setup ## measure speed and memory on a stack of its own; writes benchmarks/REPORT.md
	$(UV) run python -m benchmarks.run

up: setup engines
	$(UV) run ketenbus up

down: setup
	$(UV) run ketenbus down

status: setup
	$(UV) run ketenbus status

clean: down
	rm -rf .ketenbus
