# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a small Debian image as a non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that code changes do not rebuild them. Cargo reads every workspace member's
# manifest (and needs a target in each), so each gets an empty stand-in source here; the stand-ins
# compile, so a failure here (a dependency that does not build, a Cargo.lock out of date) stops the
# build instead of surfacing later.
COPY Cargo.toml Cargo.lock ./
COPY crates/awsim/Cargo.toml crates/awsim/Cargo.toml
COPY crates/slack-standin/Cargo.toml crates/slack-standin/Cargo.toml
RUN mkdir -p src crates/awsim/src crates/slack-standin/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > crates/awsim/src/main.rs && touch crates/awsim/src/lib.rs \
 && touch crates/slack-standin/src/lib.rs \
 && cargo build --release --locked --no-default-features --bin aurora-failover-bot
COPY . .
# The production binary: without the `demo` feature, so without the AWS emulator and the Slack
# stand-in (`cargo tree --no-default-features -e normal` lists neither).
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --no-default-features --bin aurora-failover-bot \
 && strip target/release/aurora-failover-bot

FROM debian:bookworm-slim
# CA certificates: the bot verifies TLS to Slack and AWS against the system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/aurora-failover-bot bot
COPY --from=build /src/target/release/aurora-failover-bot /usr/local/bin/aurora-failover-bot
USER 10001:10001
# The SQLite store lives here by default (store.path is relative to the working directory): mount a
# persistent volume.
WORKDIR /var/lib/aurora-failover-bot
VOLUME ["/var/lib/aurora-failover-bot"]
EXPOSE 3000
# Liveness for Docker and for ECS task definitions that copy it (Kubernetes ignores HEALTHCHECK: see
# README, "Health"). The binary is its own probe (the image has no curl): GET /healthz at the config's
# listen address, exit 0 on 200, 1 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/aurora-failover-bot", "healthcheck", "--config", "/etc/aurora-failover-bot/config.toml"]
ENTRYPOINT ["aurora-failover-bot"]
# Mount the config at this path; set listen = "0.0.0.0:3000" in it.
CMD ["serve", "--config", "/etc/aurora-failover-bot/config.toml"]
