# Build and run c2c-gateway. (Not exercised in this repository's CI: the build machines
# have no container engine. The same steps are what tests/run-all.sh does natively.)
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p c2c-gateway

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/c2c-gateway c2c && mkdir -p /var/lib/c2c-gateway && chown c2c /var/lib/c2c-gateway
COPY --from=build /src/target/release/c2c-gateway /usr/local/bin/c2c-gateway
COPY policies /etc/c2c-gateway/policies
USER c2c
ENV C2C_POLICIES=/etc/c2c-gateway/policies C2C_DATA=/var/lib/c2c-gateway C2C_LOG_FORMAT=json
EXPOSE 8080 5060/udp 5060/tcp
# One writer per data directory: mount a volume at /var/lib/c2c-gateway per instance.
VOLUME ["/var/lib/c2c-gateway"]
ENTRYPOINT ["/usr/local/bin/c2c-gateway"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--sip-listen", "0.0.0.0:5060"]
