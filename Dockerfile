# syntax=docker/dockerfile:1
# ipoib-cni image: the compiled plugin, its libnl libraries and the installer, which is the entrypoint.
# Build it with `make image` (host architecture) or `make image ARCH=arm64`; README "Build" explains both.
#
# Layout: /opt/ipoib-cni/ipoib            the plugin (copied to the host's CNI bin directory)
#         /opt/ipoib-cni/ipoib.d/         libnl-3.so.200, libnl-route-3.so.200 of the target architecture
#         /opt/ipoib-cni/ipoib-installer  the entrypoint (images/ipoib-cni-daemonset.yaml)

ARG DEBIAN_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# The build stage runs on the build machine's own platform and cross-compiles: deno compile needs only the
# target's denort runtime, and Debian multiarch supplies the target's libnl, so an arm64 image builds on an
# amd64 machine without emulation.
FROM --platform=$BUILDPLATFORM ${DEBIAN_IMAGE} AS build
ARG TARGETARCH
ARG DENO_VERSION=2.9.6
# Stamped into `ipoib --version`; `make image` passes the checkout's values (.git is not in the context).
ARG VERSION=
ARG COMMIT=unknown
ARG DATE=unknown
RUN set -eu; \
    case "${TARGETARCH}" in amd64|arm64) ;; \
      "") echo "ipoib-cni: TARGETARCH is unset: build with BuildKit (docker buildx build, or make image)" >&2; \
         exit 1;; \
      *) echo "ipoib-cni: TARGETARCH=${TARGETARCH} is not supported (amd64, arm64; README, Architectures)" >&2; \
         exit 1;; \
    esac; \
    if [ "${TARGETARCH}" != "$(dpkg --print-architecture)" ]; then dpkg --add-architecture "${TARGETARCH}"; fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates make nodejs npm \
      "libnl-3-200:${TARGETARCH}" "libnl-route-3-200:${TARGETARCH}"; \
    rm -rf /var/lib/apt/lists/*
# Deno comes from npm, which carries the build machine's own Deno binary as an optional dependency.
RUN npm install --global --no-audit --no-fund "deno@${DENO_VERSION}" && deno --version
WORKDIR /src
COPY . .
# deno compile downloads the target's denort unless given one. Offline, put it in the build context as
# build/denort/denort-<target> (`make image DENORT_BIN=/path/to/denort` does that); make build stops with an
# explanation when it has neither.
RUN set -eu; \
    case "${TARGETARCH}" in amd64) target=x86_64-unknown-linux-gnu;; arm64) target=aarch64-unknown-linux-gnu;; esac; \
    if [ -f "build/denort/denort-${target}" ]; then export DENORT_BIN="/src/build/denort/denort-${target}"; fi; \
    make build ARCH="${TARGETARCH}" BUILD_DIR=/out VERSION="${VERSION}" COMMIT="${COMMIT}" DATE="${DATE}"

# The runtime stage only copies files (no RUN), so it needs no emulation for a foreign architecture either.
FROM ${RUNTIME_IMAGE}
ARG VERSION=
LABEL org.opencontainers.image.title="ipoib-cni" \
      org.opencontainers.image.description="IP-over-InfiniBand CNI plugin and its host installer" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/ipoib /out/ipoib-installer /opt/ipoib-cni/
COPY --from=build /out/ipoib.d/ /opt/ipoib-cni/ipoib.d/
ENTRYPOINT ["/opt/ipoib-cni/ipoib-installer"]
CMD ["--cni-bin-dir=/host/opt/cni/bin"]
