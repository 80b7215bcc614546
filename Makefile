# DIPC — two commands on a new machine: `make run` and `make test`.
#
# Layout: variables and system package lists, then one section per concern:
# build, run, test, checks (verify, fuzz, asan, tsan, soak), bench, install.
SHELL := /bin/bash

# ============================================================================
# Variables
# ============================================================================

SWIFT ?= swift
BUILD_FLAGS ?=
CONFIG ?= debug
BIN := .build/$(CONFIG)

# `make run` defaults: 16 mailboxes of 64 KiB on port 7070, 4 KiB packets.
MAILBOXES ?= 16
MAILBOX_KB ?= 64
PORT ?= 7070
PACKET_KB ?= 4
RUN_ARGS ?=

# `make soak SOAK_SECONDS=60`: two servers on one store, mixed clients, one SIGKILLed
# and restarted midway; exits non-zero when an invariant breaks (Benchmarks/dipc-soak).
SOAK_SECONDS ?= 60
SOAK_BACKENDS ?= tdb
SOAK_ARGS ?=

# `make fuzz FUZZ_SECONDS=300`: each libFuzzer target for that long; `make fuzz-ci`:
# FUZZ_CI_SECONDS each. New inputs go to .build-fuzz/corpus, crashes to .build-fuzz/artifacts.
FUZZ_SECONDS ?= 300
FUZZ_CI_SECONDS ?= 45
FUZZ_TARGETS := decoder handler
FUZZ_BUILD := FUZZ=1 $(SWIFT) build --scratch-path .build-fuzz --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address

# `make asan`: every process of the run (test runners, servers, dipcrm, dipc-client)
# writes its sanitizer reports here; any error report fails the target.
ASAN_REPORTS := $(CURDIR)/.build-asan/reports

# `make tsan`: own scratch path (reports in $(TSAN_SCRATCH)/reports); TSAN_FILTER
# narrows it to some suites (a swift test --filter regex).
TSAN_SCRATCH := .build-tsan
TSAN_FILTER ?= .

# `make bench` writes raw.csv, medians.csv, ratios.csv, table.md, throughput.png and
# p99.png here (and `make bench-access` access.csv and access.md); QUICK=1 runs a
# short subset (about 4 minutes with the access benchmark, build excluded).
BENCH_OUT ?= .build/bench
QUICK ?=

# `make install`: PREFIX and DESTDIR as usual. INSTALL_FROM (a directory of built
# binaries) skips the release build (the tests install the debug products they just built).
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_FROM ?=
INSTALLED_COMMANDS := dipc dipcrm dipc-client
MAN_PAGES := docs/man/dipc.1 docs/man/dipcrm.1 docs/man/dipc-client.1

# ============================================================================
# System packages (Debian), installed with apt-get when missing
# ============================================================================

# Build and tests (`make deps`, so every target that builds):
#   libtdb-dev, pkg-config   the tdb backend (CTDB links libtdb, found with pkg-config);
#   libedit-dev              line editing and history in `dipc-client shell` (CEditLine);
#   libssl-dev               TLS in dipc, dipc-client and DIPCClient (CDIPCOpenSSL, OpenSSL 3);
#   openssl                  the TLS tests make their certificates and talk with s_client;
#   tdb-tools                the tdb backend tests check files with tdbtool;
#   netcat-openbsd           tests and examples that talk to the server with nc;
#   python3                  Examples/python's test;
#   python3-prometheus-client  the metrics tests check the --metrics page with its strict parser;
#   man-db                   the man-page test renders docs/man with man;
#   systemd                  the unit-file test checks Examples' unit with systemd-analyze;
#   etcd-server, etcd-client the etcd backend's tests start private etcd clusters (etcd,
#                            etcdctl); `make run-etcd` starts a local one;
#   libcurl4-openssl-dev     the etcd backend's HTTP client (CCurl).
APT_PACKAGES := libtdb-dev tdb-tools pkg-config netcat-openbsd libedit-dev libssl-dev openssl python3 man-db systemd python3-prometheus-client etcd-server etcd-client libcurl4-openssl-dev
# `make test-python` (part of `make test`): Debian's python3 with the venv module, and
# what builds and checks clients/python offline: setuptools and wheel (the build
# backend, --no-build-isolation), pytest, mypy.
PYTHON_APT_PACKAGES := python3 python3-venv python3-setuptools python3-wheel python3-pytest python3-mypy
# `make verify`: spin generates the model checker, gcc compiles it.
VERIFY_APT_PACKAGES := spin gcc
# `make monitoring-check`: Debian's Prometheus scrapes a real `dipc --metrics`.
MONITORING_APT_PACKAGES := prometheus curl
# `make bench`: memcached and redis-server (Redis 7, plain TCP; with TLS the reference
# for `make bench-access`) are the reference servers, gnuplot-nox draws the plots.
BENCH_APT_PACKAGES := memcached gnuplot-nox redis-server

# $(call apt_install,PACKAGES): installs the Debian packages that are missing
# (apt-get update first: a new machine's package lists are empty).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

.PHONY: all deps build release clean \
	run run-etcd stop \
	test test-python \
	check-dependencies verify fuzz-build fuzz fuzz-ci asan tsan soak monitoring-check \
	bench bench-backends bench-fairness bench-wakeup bench-access bench-etcd \
	install install-files uninstall

all: build

# ============================================================================
# Build
# ============================================================================

deps:
	$(call apt_install,$(APT_PACKAGES))

build: deps
	$(SWIFT) build -c $(CONFIG) $(BUILD_FLAGS)

# Every product, optimized, into .build/release.
release: deps
	$(SWIFT) build -c release

clean:
	rm -rf .build

# ============================================================================
# Run
# ============================================================================

run: build
	@$(BIN)/dipc $(RUN_ARGS) $(MAILBOXES) $(MAILBOX_KB) $(PORT) $(PACKET_KB)
	@echo "talk to it:  printf 'w 0 5\nhello' | nc -q1 127.0.0.1 $(PORT)   or   $(BIN)/dipc-client --port $(PORT) read 0"
	@echo "stop it:     $(BIN)/dipcrm $(PORT)"

# A local single-node etcd (data under .build/etcd, compacted hourly, 2 GiB quota) and
# a dipc on it; `make stop` stops both.
ETCD_PORT ?= 2379
ETCD_DIR := .build/etcd
run-etcd: build
	@mkdir -p $(ETCD_DIR)
	@if [ -f $(ETCD_DIR)/etcd.pid ] && kill -0 $$(cat $(ETCD_DIR)/etcd.pid) 2>/dev/null; then \
	  echo "etcd already runs (pid $$(cat $(ETCD_DIR)/etcd.pid))"; \
	else \
	  etcd --name dipc-local --data-dir $(ETCD_DIR)/data \
	    --listen-client-urls http://127.0.0.1:$(ETCD_PORT) --advertise-client-urls http://127.0.0.1:$(ETCD_PORT) \
	    --listen-peer-urls http://127.0.0.1:$$(($(ETCD_PORT) + 1)) \
	    --initial-advertise-peer-urls http://127.0.0.1:$$(($(ETCD_PORT) + 1)) \
	    --initial-cluster dipc-local=http://127.0.0.1:$$(($(ETCD_PORT) + 1)) \
	    --auto-compaction-mode periodic --auto-compaction-retention 1h \
	    --quota-backend-bytes 2147483648 >$(ETCD_DIR)/etcd.log 2>&1 & echo $$! >$(ETCD_DIR)/etcd.pid; \
	  for i in $$(seq 50); do etcdctl --endpoints http://127.0.0.1:$(ETCD_PORT) endpoint health >/dev/null 2>&1 && break; sleep 0.2; done; \
	  etcdctl --endpoints http://127.0.0.1:$(ETCD_PORT) endpoint health; \
	fi
	@$(BIN)/dipc --backend etcd --etcd http://127.0.0.1:$(ETCD_PORT) $(RUN_ARGS) $(MAILBOXES) $(MAILBOX_KB) $(PORT) $(PACKET_KB)
	@echo "stop both:   make stop"

stop:
	@$(BIN)/dipcrm $(PORT); status=$$?; \
	if [ -f $(ETCD_DIR)/etcd.pid ]; then \
	  kill $$(cat $(ETCD_DIR)/etcd.pid) 2>/dev/null && echo "stopped etcd (pid $$(cat $(ETCD_DIR)/etcd.pid))"; \
	  rm -f $(ETCD_DIR)/etcd.pid; \
	fi; exit $$status

# ============================================================================
# Test
# ============================================================================

test: build
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	$(SWIFT) test --skip-build $(BUILD_FLAGS)
	@$(MAKE) --no-print-directory test-python

# The Python package (clients/python): installed into a venv under .build from the
# source tree, without the network (Debian's setuptools, --no-build-isolation
# --no-index); mypy --strict on the installed package (py.typed) and the tests; then
# its pytest suite against the servers in $(BIN). pytest fails on no tests run (exit 5)
# and on missing servers (exit 4), so an empty run cannot pass.
PYTHON_VENV := .build/python-venv
test-python: build
	$(call apt_install,$(PYTHON_APT_PACKAGES))
	@test -x $(PYTHON_VENV)/bin/python || /usr/bin/python3 -m venv --system-site-packages $(PYTHON_VENV)
	$(PYTHON_VENV)/bin/python -m pip install --quiet --no-build-isolation --no-index --no-deps --force-reinstall ./clients/python
	cd clients/python && $(CURDIR)/$(PYTHON_VENV)/bin/python -m mypy --strict --cache-dir $(CURDIR)/.build/mypy-cache -p dipc
	cd clients/python && $(CURDIR)/$(PYTHON_VENV)/bin/python -m mypy --strict --cache-dir $(CURDIR)/.build/mypy-cache tests ../../Examples/python/example.py
	cd clients/python && DIPC_BIN=$(CURDIR)/$(BIN) $(CURDIR)/$(PYTHON_VENV)/bin/python -m pytest -p no:cacheprovider tests

# ============================================================================
# Checks: verify, fuzz, asan, tsan, soak
# ============================================================================

# Each target's declared dependencies (Package.swift) are exactly what its sources
# import, so docs/ARCHITECTURE.md's graph and Package.swift cannot drift apart silently.
check-dependencies:
	python3 scripts/check-dependencies.py

# Model-checks Sources/DIPCCore/Model/coordinator.pml (both policies): exclusion,
# bounded bypass, deadlock freedom, starvation freedom (LTL, weak fairness); fails if any check fails.
verify:
	$(call apt_install,$(VERIFY_APT_PACKAGES))
	Sources/DIPCCore/Model/verify.sh .build/spin

fuzz-build: deps
	@set -o pipefail; for t in $(FUZZ_TARGETS); do \
	  $(FUZZ_BUILD) --product dipc-fuzz-$$t 2>&1 | { grep -v 'Cannot export local symbol' || true; } || exit 1; \
	done

# $(call run_fuzzers,SECONDS): runs each target for SECONDS from its seed corpus
# (Fuzz/Corpus/TARGET, never written). Swift's own crash backtracer is off: libFuzzer
# prints the stack, and the backtracer (left holding the output pipe) kept a crashed
# run from ending for minutes.
define run_fuzzers
	@mkdir -p .build-fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .build-fuzz/corpus/$$t; \
	  echo "fuzzing $$t for $(1) s"; \
	  SWIFT_BACKTRACE=enable=no .build-fuzz/debug/dipc-fuzz-$$t .build-fuzz/corpus/$$t Fuzz/Corpus/$$t -max_total_time=$(1) -max_len=4096 \
	    -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=.build-fuzz/artifacts/$$t- 2>&1 \
	    | grep -E '^(INFO: seed|#[0-9]+ *DONE|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==|SUMMARY|Fatal|.*Fatal error|artifact_prefix)' ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done
endef

fuzz: fuzz-build
	$(call run_fuzzers,$(FUZZ_SECONDS))

fuzz-ci: fuzz-build
	$(call run_fuzzers,$(FUZZ_CI_SECONDS))

# The whole test suite under AddressSanitizer (scratch path .build-asan).
asan: deps
	$(SWIFT) build --build-tests --scratch-path .build-asan --sanitize=address $(BUILD_FLAGS)
	@rm -rf $(ASAN_REPORTS); mkdir -p $(ASAN_REPORTS)
	ASAN_OPTIONS=log_path=$(ASAN_REPORTS)/asan:detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt \
	  $(SWIFT) test --skip-build --scratch-path .build-asan --sanitize=address $(BUILD_FLAGS)
	@if grep -l 'ERROR:' $(ASAN_REPORTS)/asan.* >/dev/null 2>&1; then \
	  echo "sanitizer reports:"; grep -l 'ERROR:' $(ASAN_REPORTS)/asan.* | xargs head -n 40; exit 1; \
	else echo "asan: no sanitizer error from any process (suppressed toolchain leaks: Tests/lsan-suppressions.txt)"; fi

# The whole test suite under ThreadSanitizer (own scratch path). Reports of the test
# process and of the servers it starts go to $(TSAN_SCRATCH)/reports; any report fails
# the target. Tests/tsan-suppressions.txt says which false positives are suppressed and why.
tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path $(TSAN_SCRATCH)
	@rm -rf $(TSAN_SCRATCH)/reports && mkdir -p $(TSAN_SCRATCH)/reports
	TSAN_OPTIONS="log_path=$(CURDIR)/$(TSAN_SCRATCH)/reports/tsan suppressions=$(CURDIR)/Tests/tsan-suppressions.txt" \
	  $(SWIFT) test --skip-build --sanitize=thread --scratch-path $(TSAN_SCRATCH) --filter '$(TSAN_FILTER)'
	@if ls $(TSAN_SCRATCH)/reports/tsan.* >/dev/null 2>&1; then \
	  echo "ThreadSanitizer reports:"; cat $(TSAN_SCRATCH)/reports/tsan.*; exit 1; \
	else echo "tsan: no ThreadSanitizer report"; fi

soak: deps
	@for p in dipc dipcrm dipc-soak; do $(SWIFT) build -c release --product $$p || exit 1; done
	@for b in $(SOAK_BACKENDS); do \
	  .build/release/dipc-soak --bin .build/release --backend $$b --seconds $(SOAK_SECONDS) $(SOAK_ARGS) || exit 1; \
	done

# Debian's Prometheus (2.42) scrapes a running `dipc --metrics` with
# Examples/monitoring/prometheus.yml and reports its 2 writes through its query API.
# Not in `make test`: Prometheus takes 30-40 s to start and scrape on 2 busy cores.
monitoring-check: build
	$(call apt_install,$(MONITORING_APT_PACKAGES))
	scripts/prometheus-scrape-check.sh $(BIN)

# ============================================================================
# Bench
# ============================================================================

# dipc (sysv, posix, tdb) against memcached, Redis and a socket-only echo server; see docs/PERFORMANCE.md.
bench: release
	$(call apt_install,$(BENCH_APT_PACKAGES))
	.build/release/dipc-bench suite --bin .build/release --out $(BENCH_OUT) $(if $(QUICK),--quick)
	@$(MAKE) --no-print-directory bench-access
	@$(MAKE) --no-print-directory bench-etcd

# TLS against plain TCP and against Redis with TLS, the Unix socket against TCP loopback
# (16 and 64 connections, 64 B and 4 KiB); also part of `make bench`.
bench-access: release
	$(call apt_install,$(BENCH_APT_PACKAGES))
	.build/release/dipc-bench access --bin .build/release --out $(BENCH_OUT) $(if $(QUICK),--quick)

# dipc on --backend etcd against etcd itself (a private single-node etcd): 1/16/64 connections, 64 B and 4 KiB.
bench-etcd: release
	.build/release/dipc-bench etcd --bin .build/release $(if $(QUICK),--seconds 1)

# The backends and coordinators without the network.
bench-backends: release
	.build/release/dipc-bench backends

# Wait distributions of readers and writers: fifo, phase-fair, and glibc's unfair pthread_rwlock.
bench-fairness: deps
	$(SWIFT) build -c release --product dipc-bench
	.build/release/dipc-bench fairness

# Wake-up latency from a push on one server to a `c` waiting on another (p50/p99/max).
bench-wakeup: release
	.build/release/dipc-bench wakeup --bin .build/release

# ============================================================================
# Install: binaries, man pages, shell completions
# ============================================================================

install: $(if $(INSTALL_FROM),,release)
	@$(MAKE) --no-print-directory install-files BIN_DIR=$(if $(INSTALL_FROM),$(INSTALL_FROM),.build/release)

install-files:
	@root="$(DESTDIR)$(PREFIX)"; set -e; \
	install -d "$$root/bin" "$$root/share/man/man1" "$$root/share/bash-completion/completions" \
	  "$$root/share/zsh/site-functions" "$$root/share/fish/vendor_completions.d"; \
	for c in $(INSTALLED_COMMANDS); do \
	  install -m 0755 "$(BIN_DIR)/$$c" "$$root/bin/$$c"; \
	  "$(BIN_DIR)/$$c" --generate-completion-script bash > "$$root/share/bash-completion/completions/$$c"; \
	  "$(BIN_DIR)/$$c" --generate-completion-script zsh > "$$root/share/zsh/site-functions/_$$c"; \
	  "$(BIN_DIR)/$$c" --generate-completion-script fish > "$$root/share/fish/vendor_completions.d/$$c.fish"; \
	done; \
	install -m 0644 $(MAN_PAGES) "$$root/share/man/man1/"; \
	echo "installed $(INSTALLED_COMMANDS), their man pages and bash/zsh/fish completions under $$root"

uninstall:
	@root="$(DESTDIR)$(PREFIX)"; for c in $(INSTALLED_COMMANDS); do \
	  rm -f "$$root/bin/$$c" "$$root/share/man/man1/$$c.1" "$$root/share/bash-completion/completions/$$c" \
	    "$$root/share/zsh/site-functions/_$$c" "$$root/share/fish/vendor_completions.d/$$c.fish"; done
