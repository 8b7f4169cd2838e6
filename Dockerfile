# syntax=docker/dockerfile:1
# oidc-authz container image.
#   docker build -t oidc-authz .
#   docker run --rm -v $PWD/config.yaml:/etc/oidc-authz/config.yaml:ro -p 127.0.0.1:9192:9192 oidc-authz
# NEVER publish the gRPC Check port (9191): an allowed Check's answer carries the user's access and
# ID tokens, so anyone who reaches it with a session cookie can read them. Keep it on loopback or a
# pod-local address next to Envoy, or use a Unix socket (`listen: unix:/run/oidc-authz/grpc.sock`
# on a volume shared with Envoy only; see envoy/envoy-unix-socket.yaml).
# Needs BuildKit (default in Docker >= 23) for the cache mounts.

# ---- build -------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# No system protoc needed: build.rs compiles the .proto files with protox (pure Rust).
COPY . .
# The cargo registry and target dir are BuildKit cache mounts (fast rebuilds); the binary is copied
# out of the cached target dir so that it ends up in the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin oidc-authz \
 && install -D -m 0755 target/release/oidc-authz /out/oidc-authz

# ---- runtime -----------------------------------------------------------------------------------
# distroless/cc: glibc + libgcc, no shell, runs as uid 65532. TLS uses rustls with bundled
# webpki roots, so no OpenSSL or CA bundle is required (the image has one anyway).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/oidc-authz /usr/local/bin/oidc-authz
USER nonroot:nonroot
# 9192: admin (/healthz, /readyz, /metrics). 9191, gRPC ext_authz (Check), is deliberately not
# EXPOSEd: it is for the Envoy next to it only (see the top of this file).
EXPOSE 9192
ENTRYPOINT ["/usr/local/bin/oidc-authz"]
CMD ["--config", "/etc/oidc-authz/config.yaml"]
