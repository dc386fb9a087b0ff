# soak in a small image: built in the official Rust image, run on distroless (glibc, CA
# certificates, no shell, non-root). TLS is rustls with bundled roots: no OpenSSL.
#   docker build -t registry.example.com/soak:0.1.0 .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin soak && strip target/release/soak

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/soak /usr/local/bin/soak
# Results go to /results (mount a volume there); the working directory is writable by
# the nonroot user only there.
WORKDIR /results
ENTRYPOINT ["/usr/local/bin/soak"]
