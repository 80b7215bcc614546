# DIPC — two commands on a new machine: `make run` and `make test`.
SHELL := /bin/bash
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

# System packages the build and the tests need, installed with apt-get when missing.
APT_PACKAGES := libtdb-dev tdb-tools pkg-config netcat-openbsd
BENCH_APT_PACKAGES := memcached

.PHONY: all deps build release run stop test bench bench-backends clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build -c $(CONFIG) $(BUILD_FLAGS)

run: build
	@$(BIN)/dipc $(RUN_ARGS) $(MAILBOXES) $(MAILBOX_KB) $(PORT) $(PACKET_KB)
	@echo "talk to it:  printf 'w 0 5\nhello' | nc -q1 127.0.0.1 $(PORT)   or   $(BIN)/dipc-client --port $(PORT) read 0"
	@echo "stop it:     $(BIN)/dipcrm $(PORT)"

stop:
	@$(BIN)/dipcrm $(PORT)

test: build
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	$(SWIFT) test --skip-build $(BUILD_FLAGS)

# Release builds name their products: the test-only lock probe imports DIPCCore @testable.
RELEASE_PRODUCTS := dipc dipcrm dipc-client dipc-bench

release: deps
	@for p in $(RELEASE_PRODUCTS); do $(SWIFT) build -c release --product $$p || exit 1; done

bench: release
	@for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$p >/dev/null; }; done
	.build/release/dipc-bench network --bin .build/release

bench-backends: release
	.build/release/dipc-bench backends

clean:
	rm -rf .build

# --- issue 4: coordinator proof (spin), fairness benchmark, ThreadSanitizer ---
.PHONY: verify tsan bench-fairness
VERIFY_APT_PACKAGES := spin gcc

# Model-checks Sources/DIPCCore/Model/coordinator.pml (both policies): exclusion,
# bounded bypass, deadlock freedom, starvation freedom (LTL, weak fairness); fails if any check fails.
verify:
	@missing=""; for p in $(VERIFY_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	Sources/DIPCCore/Model/verify.sh .build/spin

# Wait distributions of readers and writers: fifo, phase-fair, and glibc's unfair pthread_rwlock.
bench-fairness: deps
	$(SWIFT) build -c release --product dipc-bench
	.build/release/dipc-bench fairness

# The coordinator, backend and server tests under ThreadSanitizer (own scratch path).
# Reports of the test process and of the servers it starts go to .build-tsan/reports;
# any report fails the target. TSAN_FILTER narrows the run (a swift test --filter regex).
# Tests/tsan-suppressions.txt says which false positives are suppressed and why.
TSAN_SCRATCH := .build-tsan
TSAN_FILTER ?= DIPCCoreTests|DIPCBackendConformanceTests|DIPCEndToEndTests
tsan: deps
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path $(TSAN_SCRATCH)
	@rm -rf $(TSAN_SCRATCH)/reports && mkdir -p $(TSAN_SCRATCH)/reports
	TSAN_OPTIONS="log_path=$(CURDIR)/$(TSAN_SCRATCH)/reports/tsan suppressions=$(CURDIR)/Tests/tsan-suppressions.txt" \
	  $(SWIFT) test --skip-build --sanitize=thread --scratch-path $(TSAN_SCRATCH) --filter '$(TSAN_FILTER)'
	@if ls $(TSAN_SCRATCH)/reports/tsan.* >/dev/null 2>&1; then \
	  echo "ThreadSanitizer reports:"; cat $(TSAN_SCRATCH)/reports/tsan.*; exit 1; \
	else echo "tsan: no ThreadSanitizer report"; fi
