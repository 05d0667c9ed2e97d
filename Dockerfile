# syntax=docker/dockerfile:1
# ftpgate container image: build with `docker build -t ftpgate .`, run with
#   docker run -p 2121:2121 -p 50000-50019:50000-50019 -e FTPGATE_PASSWORD=secret \
#     -e FTPGATE_PUBLIC_HOST=192.0.2.10 -v ftpdata:/srv/ftpgate/data ftpgate
# Every `ftpgate serve` flag can be set by its FTPGATE_* variable (see README, "Container").

FROM rust:1-slim-bookworm AS build
# PAM logins (the default `pam` feature) link libpam; the image's runtime libpam0g is enough
# (the build script links to libpam.so.0 when the -dev link is absent).
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ftpgate-daemon \
    && cp target/release/ftpgate /usr/local/bin/ftpgate

FROM debian:bookworm-slim
# CA certificates for S3/Azure/GCS endpoints and https hooks (unpinned: the distribution's
# current certificates are wanted).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ftpgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv/ftpgate --create-home ftpgate \
    && mkdir -p /srv/ftpgate/data /var/log/ftpgate \
    && chown ftpgate:ftpgate /srv/ftpgate/data /var/log/ftpgate
COPY --from=build /usr/local/bin/ftpgate /usr/local/bin/ftpgate

# The ftpgate user made above.
USER 10001:10001
WORKDIR /srv/ftpgate
# The quick-start user's files (the default root is ./data), or mount homes of your own.
VOLUME ["/srv/ftpgate/data"]
# These override a config file's [server] listen and passive_ports (flags win over the file);
# set them to what the published ports are. Mount a config and set FTPGATE_CONFIG for more.
ENV FTPGATE_LISTEN=0.0.0.0:2121 \
    FTPGATE_PASSIVE_PORTS=50000-50019
EXPOSE 2121 50000-50019
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ftpgate"]
CMD ["serve"]
