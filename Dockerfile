# --- build -------------------------------------------------------------------
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# Dependencies first, against stub sources: this layer is rebuilt only when
# Cargo.toml or Cargo.lock change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > build.rs \
    && cargo build --release --locked \
    && cargo clean --release --package mcp-server \
    && rm -rf src build.rs

# The real sources. `cargo clean --package` above dropped the stub's
# artifacts and fingerprints: COPY keeps the sources' older timestamps, so
# cargo would otherwise take the empty stub library as up to date.
# The migrations are embedded into the binary at compile time.
COPY build.rs ./
COPY src src
COPY migrations migrations
RUN cargo build --release --locked \
    && strip target/release/mcp-server

# --- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin mcp
WORKDIR /app
COPY --from=build /app/target/release/mcp-server /usr/local/bin/mcp-server
USER mcp
ENV ROCKET_PROFILE=release \
    ROCKET_ADDRESS=0.0.0.0 \
    ROCKET_PORT=8000 \
    RUST_LOG=info
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["mcp-server", "healthcheck"]
CMD ["mcp-server", "serve"]
