# Multi-stage build of the gatehouse binary. Not built in CI (no Docker engine there);
# scripts/check_compose.py validates docker-compose.yml against the binary's flags.
FROM rust:1.95-bookworm AS build
# OpenSSL: librdkafka's TLS and SASL (--kafka-config).
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p gatehouse-ingest --bin gatehouse

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 gatehouse
COPY --from=build /src/target/release/gatehouse /usr/local/bin/gatehouse
USER gatehouse
EXPOSE 8080
ENTRYPOINT ["gatehouse"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
