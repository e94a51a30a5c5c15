# The perfhost image for `perfhost k8s render --image IMAGE`: the `dist` build (release with fat
# LTO: less CPU per request, docs/benchmarks.md; the built-in plugins are inside it) on Debian
# slim, run as an unprivileged user (uid 10001, which the rendered pods ask for).
#
#   docker build -t REGISTRY/perfhost:TAG . && docker push REGISTRY/perfhost:TAG

FROM rust:1.99.1-bookworm AS build
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the toolchain; the plugins compile to wasm32-wasip2.
RUN rustup target add wasm32-wasip2 \
    && cargo build --profile dist --locked --bin perfhost \
    && strip target/dist/perfhost

FROM debian:bookworm-slim
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp perfhost
COPY --from=build /src/target/dist/perfhost /usr/local/bin/perfhost
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["perfhost"]
CMD ["--help"]
