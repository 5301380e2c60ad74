# Static iocsync binary in a minimal image, for linux/amd64 and linux/arm64:
#   docker buildx build --platform linux/amd64,linux/arm64 -t iocsync .
# The build runs on each target platform and picks the matching musl target triple, so cargo's
# own target support produces both architectures from one Dockerfile.
#
# Run (config read-only; state in a volume; the secret as a file, never in the config):
#   docker run -d --name iocsync -p 127.0.0.1:8944:8944 \
#     -v /etc/iocsync:/etc/iocsync:ro -v iocsync-state:/var/lib/iocsync iocsync
# with `[daemon] listen = "0.0.0.0:8944"` and `client_secret = { file = "/etc/iocsync/secret" }`
# in /etc/iocsync/iocsync.toml. `state` can stay unset: STATE_DIRECTORY below is its default.
#
# Base images are referenced by tag: this project's build machines cannot reach a container
# registry to resolve digests. Pin them before publishing an image:
#   docker buildx imagetools inspect rust:1-bookworm   (and the distroless image), then
#   FROM rust:1-bookworm@sha256:<digest>
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN target="$(uname -m)-unknown-linux-musl" \
 && rustup target add "$target" \
 && cargo build --release --locked -p iocsync --target "$target" \
 && install -D -m 0755 "target/$target/release/iocsync" /out/iocsync \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="iocsync" \
      org.opencontainers.image.description="Keep Microsoft Defender for Endpoint custom indicators in sync with threat-intelligence feeds." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/iocsync" \
      org.opencontainers.image.documentation="https://example.invalid/iocsync#readme"
COPY --from=build /out/iocsync /usr/local/bin/iocsync
COPY --from=build --chown=65532:65532 /out/state /var/lib/iocsync
ENV IOCSYNC_CONFIG=/etc/iocsync/iocsync.toml \
    STATE_DIRECTORY=/var/lib/iocsync
WORKDIR /var/lib/iocsync
USER 65532:65532
# /metrics, /healthz and /readyz of `iocsync daemon` (default port 8944, see README).
EXPOSE 8944
# distroless has no shell or curl: the binary probes its own /healthz.
HEALTHCHECK --interval=1m --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/iocsync", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/iocsync"]
CMD ["daemon"]
