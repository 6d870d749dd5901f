# syntax=docker/dockerfile:1
# Aurigraph node image: the release `aurigraph` binary on Debian bookworm-slim, run as a
# non-root user. Build from the repository root:
#
#   docker build -t aurigraph:0.1.0 .
#   docker run --rm -p 7600:7600 -v aurigraph-data:/var/lib/aurigraph aurigraph:0.1.0
#
# The binary links Debian's RocksDB 7.8 dynamically (see .cargo/config.toml: ROCKSDB_LIB_DIR;
# `ldd target/release/aurigraph` lists librocksdb.so.7.8, libgflags, libsnappy, liblz4,
# libzstd, libbz2, libz, libstdc++ and glibc), so builder and runtime are both bookworm and
# the runtime installs librocksdb7.8, which brings the rest.

############################ builder ############################
FROM rust:1.95.0-bookworm AS builder

# librocksdb-dev: the RocksDB the node links; libclang-dev: bindgen (librocksdb-sys);
# protobuf-compiler: protoc for the gRPC contract (node/build.rs, consensus/build.rs).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librocksdb-dev=7.8.3-2 \
        libclang-dev=1:14.0-55.* \
        protobuf-compiler=3.21.12-3* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The whole workspace (every member's manifest is read even for one package); .dockerignore
# keeps target/ and the plugins' build output out of the context.
COPY . .

# --locked: exactly Cargo.lock. The cache mounts keep the registry and target between builds
# (BuildKit); the binary is copied out of the cached target before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p aurigraph-cli --bin aurigraph \
    && cp target/release/aurigraph /usr/local/bin/aurigraph \
    && strip --strip-debug /usr/local/bin/aurigraph

############################ runtime ############################
FROM debian:bookworm-slim AS runtime

# librocksdb7.8 (and through it libgflags, libsnappy, liblz4, libzstd, libbz2, zlib,
# libstdc++): what the binary links; curl: the HEALTHCHECK.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librocksdb7.8=7.8.3-2 \
        curl=7.88.1-10+deb12u* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 aurigraph \
    && useradd --system --uid 10001 --gid aurigraph --home-dir /var/lib/aurigraph \
        --shell /usr/sbin/nologin aurigraph \
    && mkdir -p /var/lib/aurigraph /opt/aurigraph/plugins /etc/aurigraph \
    && chown aurigraph:aurigraph /var/lib/aurigraph

COPY --from=builder /usr/local/bin/aurigraph /usr/local/bin/aurigraph
# The shipped models (watched; nothing goes live without `aurigraph policy load`). Plugins
# are built separately (scripts/build-plugins, wasm32): mount them at /opt/aurigraph/plugins.
COPY models /opt/aurigraph/models

# The configuration's defaults for a container: listen on every interface, data on the
# volume. A config file (--config or AURIGRAPH_CONFIG) is read first and these override it.
ENV AURIGRAPH_DATA_DIR=/var/lib/aurigraph/data \
    AURIGRAPH_LISTEN=0.0.0.0:7600 \
    AURIGRAPH_MODELS_DIR=/opt/aurigraph/models \
    AURIGRAPH_PLUGINS_DIR=/opt/aurigraph/plugins

USER 10001:10001
WORKDIR /var/lib/aurigraph
VOLUME ["/var/lib/aurigraph"]
# gRPC and HTTP (/v1, /healthz, /readyz, /metrics) on one port; the Raft RPCs share it.
EXPOSE 7600

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:7600/healthz"]

# The node stops cleanly on SIGTERM (docker stop, Kubernetes).
ENTRYPOINT ["aurigraph"]
CMD ["start"]
