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
BENCH_APT_PACKAGES := memcached gnuplot-nox

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
# `make bench` writes raw.csv, medians.csv, table.md and throughput.png here; QUICK=1 runs a one-minute subset.
BENCH_OUT ?= .build/bench
QUICK ?=

release: deps
	@for p in $(RELEASE_PRODUCTS); do $(SWIFT) build -c release --product $$p || exit 1; done

bench: release
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	.build/release/dipc-bench suite --bin .build/release --out $(BENCH_OUT) $(if $(QUICK),--quick)

bench-backends: release
	.build/release/dipc-bench backends

clean:
	rm -rf .build

# --- issue 6: install, man pages, completions, examples ---
# libedit: line editing and history in `dipc-client shell`; python3: Examples/python's test.
APT_PACKAGES += libedit-dev python3
PREFIX ?= /usr/local
DESTDIR ?=
# Where `make install` takes the binaries from; INSTALL_FROM skips the release build
# (the tests install the debug products they just built).
INSTALL_FROM ?=
INSTALLED_COMMANDS := dipc dipcrm dipc-client
MAN_PAGES := docs/man/dipc.1 docs/man/dipcrm.1 docs/man/dipc-client.1

.PHONY: install install-files uninstall

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
# --- issue 7: queues and change notification ---
.PHONY: bench-wakeup
# Wake-up latency from a push on one server to a `c` waiting on another (p50/p99/max).
bench-wakeup: release
	.build/release/dipc-bench wakeup --bin .build/release
