# GeoStream DNS — developer entry points.
# Every target works on a fresh Debian machine as root with only python3 installed.

SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# Prefer python3.11, fall back to python3.
PYTHON  ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
# sudo only when not root (and only if it exists).
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

BENCH_ARGS ?=
DRILL_ARGS ?=
FUZZ_SECONDS ?= 30
CHAOS_ARGS ?=

# checkov (Terraform and Dockerfile checks) lives in its own virtualenv: it pins
# many common packages (packaging, jsonschema, ...) that the project's venv
# must stay free to upgrade.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    := .venv-checkov
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: venv run test tools deploy-tools services smoke bench rrl-bench bench-dnssec bench-latency failover-drill fleet-drill fuzz chaos-drill lint clean distclean

## venv: create .venv (if missing) and install the package with dev extras
venv: $(STAMP)

$(VPY):
	@test -n "$(PYTHON)" || { echo "error: no python3.11/python3 on PATH" >&2; exit 1; }
	@echo "creating $(VENV) with $(PYTHON)"
	@if ! $(PYTHON) -m venv $(VENV) 2>/dev/null; then \
	    echo "venv/ensurepip missing; installing the Debian venv package" >&2; \
	    rm -rf $(VENV); \
	    pyver=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    $(APT_GET) update -qq && \
	    { $(APT_GET) install -y -qq python$$pyver-venv || $(APT_GET) install -y -qq python3-venv; } && \
	    $(PYTHON) -m venv $(VENV); \
	fi

# Re-install whenever pyproject.toml, setup.py or the C extension (batched UDP
# I/O) changes. The venv python is order-only: it is a symlink whose (followed)
# mtime says nothing about the install.
$(STAMP): pyproject.toml setup.py geostream_dns/_udpbatch.c | $(VPY)
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $@

## run: serve the sample zones on 127.0.0.1:8053 and [::1]:8053, HTTP on :8080
run: venv
	$(VENV)/bin/geostream-dns serve --zones zones/ --listen 127.0.0.1:8053 --listen '[::1]:8053' --http 127.0.0.1:8080

## tools: dig (bind9-dnsutils) and unbound (a real resolver in front, for the RRL tests; validating, for the DNSSEC tests)
tools:
	@command -v dig >/dev/null 2>&1 || { $(APT_GET) update -qq && $(APT_GET) install -y -qq bind9-dnsutils; }
	@{ command -v unbound || test -x /usr/sbin/unbound; } >/dev/null 2>&1 || \
	    { $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends unbound; }

## deploy-tools: what tests/deploy runs: docker-compose, promtool + prometheus, systemd-analyze, checkov
deploy-tools: $(CHECKOV_STAMP)
	@if ! command -v docker-compose >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1 \
	    || ! command -v prometheus >/dev/null 2>&1 || ! command -v systemd-analyze >/dev/null 2>&1; then \
	    echo "installing docker-compose, prometheus (promtool) and systemd (systemd-analyze)"; \
	    $(APT_GET) update -qq && \
	    $(APT_GET) install -y -qq --no-install-recommends docker-compose prometheus systemd && \
	    if [ -d /run/systemd/system ]; then \
	        echo "stopping the prometheus service the package started (the tests run their own)"; \
	        $(SUDO) systemctl disable --now prometheus.service || true; \
	    fi; \
	fi

$(CHECKOV_STAMP): | $(VPY)
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q 'checkov==$(CHECKOV_VERSION)'
	@touch $@

## services: PostgreSQL and Redis up on 127.0.0.1
services:
	scripts/ensure-services.sh

## test: unit/integration tests, then the end-to-end smoke test
test: venv tools deploy-tools services
	$(VENV)/bin/pytest -q
	$(MAKE) smoke

## smoke: start the server on free ports and check answers with dig
smoke: venv tools
	scripts/smoke.sh

## bench: dnsperf load test of GeoStream vs a plain dnslib server (BENCH_ARGS="--seconds 5")
bench: venv
	@command -v dnsperf >/dev/null 2>&1 || { $(APT_GET) update -qq && $(APT_GET) install -y -qq dnsperf; }
	$(VPY) scripts/bench.py $(BENCH_ARGS)

## rrl-bench: response-rate limiting and cookies: cost per query, a flood from one /24,
## 60,000 source networks and the RSS (RRL_BENCH_ARGS="--seconds 5 --sources 60000")
RRL_BENCH_ARGS ?=
rrl-bench: venv
	@command -v dnsperf >/dev/null 2>&1 || { $(APT_GET) update -qq && $(APT_GET) install -y -qq dnsperf; }
	timeout 600 $(VPY) scripts/rrl_bench.py $(RRL_BENCH_ARGS)

## bench-dnssec: signed vs unsigned qps (static, routed), signing a new routed variant,
## building 10,000 signed zones (BENCH_ARGS="--seconds 5 --repeat 3 --zones 10000")
bench-dnssec: venv
	@command -v dnsperf >/dev/null 2>&1 || { $(APT_GET) update -qq && $(APT_GET) install -y -qq dnsperf; }
	$(VPY) scripts/bench_dnssec.py $(BENCH_ARGS)

## bench-latency: latency rule miss path, memory for 1M client keys, ingest under dnsperf load
## (BENCH_LATENCY_ARGS="--seconds 10 --qps 20000 --sps 50000")
bench-latency: venv
	@command -v dnsperf >/dev/null 2>&1 || { $(APT_GET) update -qq && $(APT_GET) install -y -qq dnsperf; }
	$(VPY) scripts/bench_latency.py $(BENCH_LATENCY_ARGS)

## failover-drill: stop a real HTTP endpoint, time its failover and recovery in DNS answers
failover-drill: venv
	$(VPY) scripts/failover_drill.py

## fleet-drill: a local fleet (PostgreSQL, Redis, 3 servers in 2 sites, a probe-only one):
## verdicts, failover, a big apply built once, a new server joining (DRILL_ARGS="--zones 1000")
fleet-drill: venv services
	$(VPY) scripts/fleet_drill.py $(DRILL_ARGS)

## fuzz: every fuzz target (wire, resolve, zone loader, YAML, importers) for FUZZ_SECONDS each
fuzz: venv
	@$(VPY) -c 'import atheris' 2>/dev/null || $(VPY) -m pip install -q -e '.[fuzz]'
	$(VPY) scripts/fuzz.py --seconds $(FUZZ_SECONDS)

## chaos-drill: dnsperf load on a --workers 2 production server while PostgreSQL, Redis,
## the prober and a worker are killed -9 and restarted; lost and wrong answers per event
chaos-drill: venv
	@command -v dnsperf >/dev/null 2>&1 || { $(APT_GET) update -qq && $(APT_GET) install -y -qq dnsperf; }
	$(VPY) scripts/chaos_drill.py $(CHAOS_ARGS)

## lint: ruff + mypy
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy geostream_dns

## clean: caches and build artefacts (keeps .venv; see distclean)
clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis \
	       .geostream-state bench-results fuzz-corpus fuzz-artifacts chaos-results
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -print0 | xargs -0r rm -rf

## distclean: clean + remove .venv
distclean: clean
	rm -rf $(VENV) $(CHECKOV_VENV)
