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
PLUGIN_FLAGS := --no-prompt --allow-env --allow-read --allow-ffi --allow-write
# Integration tests create namespaces and links and run the plugin and Go plugins as processes.
INTEGRATION_FLAGS := --allow-env --allow-read --allow-write=/tmp,/run/netns --allow-run --allow-ffi

.PHONY: setup deno-install debian-packages demo test test-unit test-integration test-hardware lint fmt fmt-check \
  check test-faults test-fuzz test-concurrency test-soak

setup: deno-install debian-packages
	@$(DENO) install --quiet --frozen >/dev/null

deno-install:
	@if [ ! -x "$(DENO)" ]; then \
	  echo "setup: installing deno $(DENO_VERSION) from npm into $(DENO_DIR_LOCAL)"; \
	  mkdir -p "$(DENO_DIR_LOCAL)" && cd "$(DENO_DIR_LOCAL)" && echo '{"private":true}' > package.json && \
	  npm install --silent --no-audit --no-fund --no-save deno@$(DENO_VERSION) >/dev/null; \
	fi
	@"$(DENO)" --version | head -n1 | grep -q '^deno $(DENO_VERSION) ' || { echo "setup: deno $(DENO_VERSION) missing"; exit 1; }

# Installs what is missing of DEBIAN_PACKAGES, without recommended packages; apt-get update runs only when
# the package lists cannot supply them. PACKAGES_FOR names the caller in its message.
PACKAGES_FOR := setup
debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "$(PACKAGES_FOR): installing Debian packages:$$missing"; \
	  apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; \
	  apt_install 2>/dev/null || { apt-get update -qq >/dev/null && apt_install; }; \
	fi

# The main job: the plugin on an embedded default config (real IPoIB with MASTER=ib0 or when one exists).
demo: setup
	$(DENO) run --allow-env --allow-read --allow-write=/tmp,/run/netns --allow-run demo/demo.ts

# Everything CI runs, in one command (README, Quick start): about 8 minutes on a 2-core machine.
test: setup fmt-check lint check test-unit test-integration test-hardware test-package test-e2e test-faults \
  test-fuzz test-concurrency test-soak

test-unit:
	$(DENO) test tests/unit

test-integration:
	$(DENO) test $(INTEGRATION_FLAGS) tests/integration

# Runs against real InfiniBand when IPOIB_TEST_MASTER names an IPoIB interface; reported as ignored otherwise.
test-hardware:
	$(DENO) test $(INTEGRATION_FLAGS) tests/hardware

# Robustness (issue 4): every ADD step made to fail, hostile input (security and a seeded fuzz run of 10,000
# in-process and 300 process cases: FUZZ_SEED, FUZZ_CASES, FUZZ_PROCESS_CASES), the log, concurrent runs.
# The suites create links and namespaces and run plugin processes, which get the plugin's own flags.
ROBUSTNESS_FLAGS := --allow-env --allow-read --allow-write=/tmp,/run/netns --allow-run

test-faults:
	$(DENO) test $(ROBUSTNESS_FLAGS) tests/faults

test-fuzz:
	$(DENO) test $(ROBUSTNESS_FLAGS) tests/fuzz

test-concurrency:
	$(DENO) test $(ROBUSTNESS_FLAGS) tests/soak/concurrency.test.ts

# 1,000 ADD/DEL cycles with leak and peak-RSS figures (about 3 minutes; SOAK_CYCLES=n), the last step of
# `make test`. GNU time measures each run's peak RSS.
test-soak: setup
	@$(MAKE) --no-print-directory debian-packages DEBIAN_PACKAGES="time" PACKAGES_FOR=test-soak
	$(DENO) test $(ROBUSTNESS_FLAGS) tests/soak/soak.test.ts

lint:
	$(DENO) lint

fmt:
	$(DENO) fmt

fmt-check:
	$(DENO) fmt --check

check:
	$(DENO) check

# =====================================================================================================
# Packaging: compiled executables, host install, container images (issue 5). See README "Build",
# "Install" and "Architectures".
#   make build [ARCH=amd64|arm64]   -> $(BUILD_DIR)/ipoib, $(BUILD_DIR)/ipoib-installer, $(BUILD_DIR)/ipoib.d/
#   make image [ARCH=...] [DOCKERFILE=...]   -> image $(IMAGE):$(IMAGE_TAG) (-$(ARCH) when not the host's)
# =====================================================================================================

HOST_ARCH := $(shell uname -m | sed -e 's/^x86_64$$/amd64/' -e 's/^aarch64$$/arm64/')
ARCH ?= $(HOST_ARCH)
DENO_TARGET_amd64 := x86_64-unknown-linux-gnu
DENO_TARGET_arm64 := aarch64-unknown-linux-gnu
DEBIAN_MULTIARCH_amd64 := x86_64-linux-gnu
DEBIAN_MULTIARCH_arm64 := aarch64-linux-gnu
DENO_TARGET = $(DENO_TARGET_$(ARCH))
BUILD_DIR ?= build
STAGE_DIR = $(BUILD_DIR)/stage
# libnl of the target architecture, shipped in ipoib.d/ beside the plugin (Debian multiarch layout).
LIBNL_DIR ?= /usr/lib/$(DEBIAN_MULTIARCH_$(ARCH))
LIBNL_SONAMES := libnl-3.so.200 libnl-route-3.so.200
# The installer reads its sources and writes the CNI bin directory it is given at run time, so neither
# path can be fixed at compile time; it needs nothing else (no env, run, net or FFI).
INSTALLER_FLAGS := --no-prompt --allow-read --allow-write
# --frozen: the lockfile decides the npm packages; --exclude-unused-npm: only packages the entry imports.
COMPILE_FLAGS = --frozen --exclude-unused-npm --target $(DENO_TARGET)
# The executable of the pinned Deno (npm may link it through a wrapper): the build helpers may run it, nothing else.
DENO_REAL = $(shell "$(DENO)" eval --no-config 'console.log(Deno.execPath())')
# Stamped into the staged lib/build_info.json; empty keeps the source default. Override on the command line.
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//')
COMMIT ?= $(shell git describe --always --dirty --abbrev=12 --exclude='*' 2>/dev/null)
DATE ?= $(shell date -u $${SOURCE_DATE_EPOCH:+-d @$$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)
DOCKER ?= docker
DOCKERFILE ?= Dockerfile
IMAGE ?= ipoib-cni
IMAGE_TAG ?= latest
# A denort handed to `make image` travels in the build context here (see .dockerignore and Dockerfile).
IMAGE_DENORT_DIR := build/denort
PPC64LE_MESSAGE := ppc64le is not supported: Deno has no ppc64le build because its V8 binding, rusty_v8, \
has no ppc64le port (denoland/rusty_v8 issue 1445), so deno compile has no ppc64le runtime to put the plugin \
in. No ppc64le executable or image is built. Supported: ARCH=amd64, ARCH=arm64.

.PHONY: build build-plugin build-installer build-libs arch-check denort-check clean-build image image-check \
  image-multiarch test-package

build: build-plugin build-installer build-libs
	@echo "make build: $(BUILD_DIR)/ipoib, $(BUILD_DIR)/ipoib-installer, $(BUILD_DIR)/ipoib.d/ for linux/$(ARCH)" \
	  "(version '$(VERSION)', commit '$(COMMIT)', date '$(DATE)')"

arch-check:
	@case "$(ARCH)" in \
	  amd64|arm64) ;; \
	  ppc64le) echo "make: $(PPC64LE_MESSAGE)" >&2; exit 1;; \
	  *) echo "make: ARCH=$(ARCH) is not supported: use ARCH=amd64 or ARCH=arm64" >&2; exit 1;; \
	esac

# Decides before compiling whether deno compile can get denort (DENORT_BIN, its cache, or a download
# probed with a timeout), so that an offline build stops at once with a message instead of a DNS error.
denort-check: arch-check deno-install
	@timeout 60 $(DENO) run --no-config --no-lock --no-prompt --allow-env=DENORT_BIN --allow-read \
	  --allow-run="$(DENO_REAL)" --allow-net=dl.deno.land packaging/denort_check.ts $(DENO_TARGET); \
	rc=$$?; if [ $$rc = 124 ]; then echo "make build: the denort check did not finish in 60 s" >&2; fi; exit $$rc

# $(call compile,ENTRY,NAME,FLAGS): stage ENTRY's module graph with the stamped build info, then compile
# the staged copy into $(BUILD_DIR)/NAME, keeping deno compile's list of embedded files in NAME.compile.txt.
define compile
set -o pipefail; \
$(DENO) run --no-config --no-lock --no-prompt --allow-read --allow-write="$(BUILD_DIR)" \
  --allow-run="$(DENO_REAL)" packaging/stage.ts --out="$(STAGE_DIR)/$(2)" --entry="$(1)" \
  --version="$(VERSION)" --commit="$(COMMIT)" --date="$(DATE)" && \
out="$(abspath $(BUILD_DIR))/$(2)" && rm -f "$$out" && \
(cd "$(STAGE_DIR)/$(2)" && NO_COLOR=1 $(DENO) compile $(COMPILE_FLAGS) $(3) --output "$$out" "$(1)") 2>&1 \
  | tee "$$out.compile.txt"
endef

build-plugin: denort-check
	@$(call compile,main.ts,ipoib,$(PLUGIN_FLAGS))

build-installer: denort-check
	@$(call compile,installer/main.ts,ipoib-installer,$(INSTALLER_FLAGS))

build-libs: arch-check
	@mkdir -p "$(BUILD_DIR)/ipoib.d"
	@for so in $(LIBNL_SONAMES); do \
	  if [ ! -e "$(LIBNL_DIR)/$$so" ]; then \
	    echo "make build: $(LIBNL_DIR)/$$so is missing: install libnl-3-200 and libnl-route-3-200 for $(ARCH)" \
	      "(apt-get install libnl-3-200:$(ARCH) libnl-route-3-200:$(ARCH), after dpkg --add-architecture" \
	      "$(ARCH) for a foreign one) or set LIBNL_DIR" >&2; \
	    exit 1; \
	  fi; \
	  install -m 0644 "$(LIBNL_DIR)/$$so" "$(BUILD_DIR)/ipoib.d/$$so" || exit 1; \
	done

clean-build:
	rm -rf "$(BUILD_DIR)"

# Checks everything it can before calling docker: a ppc64le request stops here, never reaching a build.
image-check: arch-check
	@case "$(notdir $(DOCKERFILE))" in *ppc64le*) echo "make image: $(PPC64LE_MESSAGE)" >&2; exit 1;; esac
	@[ -f "$(DOCKERFILE)" ] || { echo "make image: no such Dockerfile: $(DOCKERFILE)" >&2; exit 1; }
	@command -v $(DOCKER) >/dev/null || { echo "make image: $(DOCKER) not found" >&2; exit 1; }
	@$(DOCKER) buildx version >/dev/null 2>&1 || { echo "make image: needs docker buildx (BuildKit): the" \
	  "Dockerfile relies on BuildKit's BUILDPLATFORM/TARGETARCH, which the legacy builder does not set" >&2; exit 1; }

# What every image build passes: the Dockerfile and the build stamp.
IMAGE_BUILD_ARGS = -f $(DOCKERFILE) --build-arg VERSION="$(VERSION)" --build-arg COMMIT="$(COMMIT)" \
  --build-arg DATE="$(DATE)"

# Builds for ARCH on any host: the build stage runs natively and cross-compiles, the runtime stage only
# copies files, so no emulation is needed. A DENORT_BIN given here is checked, then lent to the build stage
# through the build context as $(IMAGE_DENORT_DIR)/denort-<target> and removed afterwards, so no stale runtime
# lingers. Without one the build stage uses a denort placed there by hand, or downloads it.
image: image-check
	@set -e; \
	if [ -n "$(DENORT_BIN)" ]; then \
	  $(MAKE) --no-print-directory denort-check; \
	  lent="$(IMAGE_DENORT_DIR)/denort-$(DENO_TARGET)"; trap 'rm -f "$$lent"' EXIT; \
	  mkdir -p "$(IMAGE_DENORT_DIR)"; cp "$(DENORT_BIN)" "$$lent"; \
	fi; \
	set -x; \
	$(DOCKER) buildx build --load --platform linux/$(ARCH) $(IMAGE_BUILD_ARGS) \
	  -t $(IMAGE):$(IMAGE_TAG)$(if $(filter $(ARCH),$(HOST_ARCH)),,-$(ARCH)) .

# One multi-arch image (amd64 + arm64) pushed to a registry: what the DaemonSet wants on mixed clusters.
# Offline, place denort for both targets in $(IMAGE_DENORT_DIR)/denort-<target> beforehand.
image-multiarch:
	@$(MAKE) --no-print-directory image-check ARCH=amd64
	$(DOCKER) buildx build --platform linux/amd64,linux/arm64 $(IMAGE_BUILD_ARGS) -t $(IMAGE):$(IMAGE_TAG) --push .

# Packaging tests: installer, build and image guards, manifests; compiled executables when DENORT_BIN is set.
test-package:
	$(DENO) check installer/ packaging/
	$(DENO) test --allow-read --allow-write="$${TMPDIR:-/tmp}" --allow-run --allow-env tests/package

# =====================================================================================================
# End-to-end tests with real runtimes (issues 6, 10): podman 4.3 (CNI backend), containerd 1.6 (its CRI
# plugin through a CRI client of ours, and ctr run --cni) and a libcni client, the Go clients built offline
# from Debian's sources; each confined to its own temporary directories. See README "End-to-end tests".
# =====================================================================================================

E2E_DEBIAN_PACKAGES := podman runc conmon busybox-static golang-go golang-github-appc-cni-dev containerd \
  golang-google-grpc-dev golang-google-protobuf-dev
# The test process writes only below the temp dir; it runs the runtimes, go, ip and the plugin as processes.
E2E_FLAGS := --allow-env --allow-read --allow-write="$${TMPDIR:-/tmp}" --allow-run

.PHONY: e2e-packages test-e2e

e2e-packages:
	@$(MAKE) --no-print-directory debian-packages DEBIAN_PACKAGES="$(E2E_DEBIAN_PACKAGES)" PACKAGES_FOR=test-e2e

test-e2e: setup e2e-packages
	$(DENO) test $(E2E_FLAGS) tests/e2e

# =====================================================================================================
# Benchmark (issue 7): the plugin through the stand-in entry against Debian's Go macvlan, interleaved,
# medians; table on stdout, JSON and burst plot under bench/results/. Not part of `make test`.
# QUICK=1 for fewer iterations; DENORT_BIN=<denort> to measure the compiled form too. See bench/README.md.
# =====================================================================================================

# GNU time for peak RSS; librsvg's rsvg-convert and a font for the PNG plot.
BENCH_DEBIAN_PACKAGES := time librsvg2-bin fonts-dejavu-core
# Creates links and namespaces (ip), runs plugins and deno compile, times the move through the FFI layer.
BENCH_FLAGS := --allow-env --allow-read --allow-write --allow-run --allow-ffi --allow-sys=uid,osRelease

.PHONY: bench bench-packages

bench-packages:
	@$(MAKE) --no-print-directory debian-packages DEBIAN_PACKAGES="$(BENCH_DEBIAN_PACKAGES)" PACKAGES_FOR=bench

bench: setup bench-packages
	$(DENO) run $(BENCH_FLAGS) bench/bench.ts
