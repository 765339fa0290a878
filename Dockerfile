# GeoStream DNS container image.
#
#   docker build -t geostream-dns .
#   docker run --rm -p 8053:8053/udp -p 8053:8053/tcp geostream-dns serve --zones /usr/share/geostream-dns/zones
#
# The package goes in as a wheel built in the first stage; the runtime stage
# has no compiler, no source tree and runs as an unprivileged user. DNS listens
# on 8053 inside the container (a port an unprivileged user may bind); publish
# it on 53 with `-p 53:8053/udp -p 53:8053/tcp`.

# ---- build: the project's wheel and its dependencies' wheels, installed into a
# virtualenv that the runtime stage copies whole (same base image, same Python).
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# a C compiler for the one extension (batched UDP I/O); only in this stage
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY geostream_dns ./geostream_dns
RUN pip wheel --wheel-dir /wheels . \
 && python -m venv /opt/geostream-dns \
 && /opt/geostream-dns/bin/pip install --no-index --find-links /wheels geostream-dns

# ---- runtime -------------------------------------------------------------------
# Same base as the build stage: the virtualenv's python links to it.
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10001 geostream \
 && useradd --system --uid 10001 --gid geostream --no-create-home \
        --home-dir /var/lib/geostream-dns --shell /usr/sbin/nologin geostream \
 && install -d -o geostream -g geostream -m 0750 /var/lib/geostream-dns

COPY --from=build /opt/geostream-dns /opt/geostream-dns

# Schema migrations (for `geostream-dns migrate`) and the sample zones.
COPY migrations /usr/share/geostream-dns/migrations
COPY zones /usr/share/geostream-dns/zones
COPY deploy/docker/healthcheck.py /usr/local/bin/geostream-healthcheck
RUN chmod 0755 /usr/local/bin/geostream-healthcheck

# Listen on every address of the container; the state dir is writable by the user.
ENV PATH=/opt/geostream-dns/bin:$PATH \
    GEOSTREAM_LISTEN=0.0.0.0:8053 \
    GEOSTREAM_HTTP=0.0.0.0:8080 \
    GEOSTREAM_STATE_DIR=/var/lib/geostream-dns \
    GEOSTREAM_MIGRATIONS=/usr/share/geostream-dns/migrations

USER geostream:geostream
WORKDIR /var/lib/geostream-dns
EXPOSE 8053/udp 8053/tcp 8080/tcp

# GET /health on GEOSTREAM_HTTP (set GEOSTREAM_HTTP rather than --http, so that
# this check knows where to look).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["geostream-healthcheck"]

ENTRYPOINT ["geostream-dns"]
CMD ["serve"]
