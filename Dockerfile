# Static iocsync binary in a minimal image.
#   docker build -t iocsync .
# In the mounted iocsync.toml set `state = "/var/lib/iocsync/iocsync.db"` (the volume below):
# the default state path is beside the config file, which is mounted read-only here.
#   docker run --rm -v /etc/iocsync:/etc/iocsync:ro -v iocsync-state:/var/lib/iocsync \
#     -e IOCSYNC_CLIENT_SECRET iocsync --config /etc/iocsync/iocsync.toml sync
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p iocsync --target x86_64-unknown-linux-musl \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/iocsync /out/iocsync \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/iocsync /usr/local/bin/iocsync
COPY --from=build --chown=nonroot:nonroot /out/state /var/lib/iocsync
WORKDIR /var/lib/iocsync
USER nonroot
# /metrics and /healthz of `iocsync daemon` (set [daemon] listen = "0.0.0.0:9464" in a container).
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/iocsync"]
CMD ["--help"]
