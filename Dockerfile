# syntax=docker/dockerfile:1
# Build and run c2c-gateway.
#
#   docker build --build-arg C2C_REVISION=$(git rev-parse --short=12 HEAD) -t c2c-gateway .
#   docker run -v /etc/c2c-gateway/policies:/etc/c2c-gateway/policies:ro \
#              -v c2c-data:/var/lib/c2c-gateway -p 8080:8080 -p 5060:5060/udp \
#              -e C2C_SIP_ADVERTISE=<the address LiveKit reaches the SIP edge at> c2c-gateway
#
# The SIP edge listens on 0.0.0.0 inside the container, so it needs C2C_SIP_ADVERTISE
# (the address for its Via and Record-Route): without it the gateway refuses to start,
# saying so, rather than run without its SIP edge.
#
# Or deploy/compose.yaml (gateway + Prometheus + Grafana). Not exercised in this
# repository's CI, whose machines have no container engine: tests/ops/tests/container.rs
# checks this file and the compose file statically.

FROM rust:1-bookworm AS build
# cmake: Pingora builds zlib-ng with it.
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# .dockerignore keeps .git out of the context, so gateway/build.rs cannot ask git for
# the revision; pass it in (it ends up in --version and c2c_build_info).
ARG C2C_REVISION=unknown
ENV C2C_REVISION=${C2C_REVISION}
# Cargo features: none for production (no bundled LiveKit simulator in the binary).
# deploy/compose.yaml's local try passes C2C_FEATURES=sim for the example policies.
ARG C2C_FEATURES=
RUN cargo build --release -p c2c-gateway ${C2C_FEATURES:+--features "$C2C_FEATURES"}

FROM debian:bookworm-slim
# ca-certificates: the CRM webhook client verifies HTTPS endpoints against the system
# trust store (reqwest with rustls-platform-verifier); without it every https:// CRM
# delivery fails.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged uid/gid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 c2c \
    && useradd --system --uid 10001 --gid c2c --home-dir /var/lib/c2c-gateway --shell /usr/sbin/nologin c2c \
    && mkdir -p /var/lib/c2c-gateway /etc/c2c-gateway/policies \
    && chown c2c:c2c /var/lib/c2c-gateway
COPY --from=build /src/target/release/c2c-gateway /usr/local/bin/c2c-gateway
# No policies in the image: example policies carry development keys. Mount the policy
# directory (gateway.toml, tenants/, secrets) read-only at C2C_POLICIES.
ENV C2C_POLICIES=/etc/c2c-gateway/policies \
    C2C_DATA=/var/lib/c2c-gateway \
    C2C_LOG_FORMAT=json
USER c2c:c2c
EXPOSE 8080 5060/udp 5060/tcp
# One writer per data directory: mount a volume at /var/lib/c2c-gateway per instance.
VOLUME ["/var/lib/c2c-gateway"]
# Liveness, not readiness: /livez answers while the process serves HTTP. /readyz turns
# 503 while the gateway starts (store opening) or drains, and an orchestrator that
# replaces unhealthy containers must not kill a gateway for that; load balancers should
# probe /readyz themselves. The binary probes itself: the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/c2c-gateway", "health", "--url", "http://127.0.0.1:8080/livez"]
ENTRYPOINT ["/usr/local/bin/c2c-gateway"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--sip-listen", "0.0.0.0:5060"]
