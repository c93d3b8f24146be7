# ipoib-cni: every entry point a developer, CI or an operator needs.
# Run as root on Debian 12. `make test` and `make demo` each do all set-up first.

SHELL := /bin/bash
DENO_VERSION := 2.9.6
DENO_DIR_LOCAL := $(CURDIR)/.tools/deno-$(DENO_VERSION)
# The pinned Deno: the one on PATH when it is that version, else the copy `setup` installs from npm.
DENO := $(shell if command -v deno >/dev/null 2>&1 && deno --version 2>/dev/null | head -n1 | grep -q '^deno $(DENO_VERSION) '; then command -v deno; else echo $(DENO_DIR_LOCAL)/node_modules/.bin/deno; fi)
export PATH := $(dir $(DENO)):$(PATH)
DEBIAN_PACKAGES := libnl-3-200 libnl-route-3-200 containernetworking-plugins iproute2 strace

# Permissions of the plugin at run time: the narrowest set that works (see README, "Permissions").
PLUGIN_FLAGS := --no-prompt --allow-env --allow-read --allow-run --allow-ffi --allow-write
# Integration tests create namespaces and links and run the plugin and Go plugins as processes.
INTEGRATION_FLAGS := --allow-env --allow-read --allow-write=/tmp,/run/netns --allow-run --allow-ffi

.PHONY: setup deno-install debian-packages test test-unit test-integration lint fmt fmt-check check demo

setup: deno-install debian-packages
	@$(DENO) install --quiet --frozen >/dev/null

deno-install:
	@if [ ! -x "$(DENO)" ]; then \
	  echo "setup: installing deno $(DENO_VERSION) from npm into $(DENO_DIR_LOCAL)"; \
	  mkdir -p "$(DENO_DIR_LOCAL)" && cd "$(DENO_DIR_LOCAL)" && echo '{"private":true}' > package.json && \
	  npm install --silent --no-audit --no-fund --no-save deno@$(DENO_VERSION) >/dev/null; \
	fi
	@"$(DENO)" --version | head -n1 | grep -q '^deno $(DENO_VERSION) ' || { echo "setup: deno $(DENO_VERSION) missing"; exit 1; }

debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:$$missing"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: setup fmt-check lint check test-unit test-integration

test-unit:
	$(DENO) test tests/unit

test-integration:
	$(DENO) test $(INTEGRATION_FLAGS) tests/integration

lint:
	$(DENO) lint

fmt:
	$(DENO) fmt

fmt-check:
	$(DENO) fmt --check

check:
	$(DENO) check main.ts tests/
