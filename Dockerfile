# A small image of throng: built with the Rust toolchain, run from Debian
# slim as an unprivileged user (uid 10001, which `throng kube` pods use).
#   docker build -t throng:0.1 .
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# rusqlite (the lab's database) compiles SQLite with the image's gcc.
RUN cargo build --release --locked -p throng \
    && cp target/release/throng /throng \
    && strip /throng

FROM debian:bookworm-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin throng
COPY --from=build /throng /usr/local/bin/throng
USER 10001
ENTRYPOINT ["throng"]
CMD ["--help"]
