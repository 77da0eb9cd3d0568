# syntax=docker/dockerfile:1
# The hub's image: one image for every role; the command picks the role
# (`serve`, `run gateway|core|relay|connector NAME`, `db upgrade`, `topics ensure`, ...).
#
#   docker build -t stock-hub .
#   docker run --rm -p 8080:8080 stock-hub serve
#
# The base is pinned to an exact Python patch release on Debian bookworm; bump it deliberately
# (and pin by digest, `python:3.11.14-slim-bookworm@sha256:...`, where the registry is reachable).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: install the project and its dependencies into a self-contained virtualenv ------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# README* rather than README.md: the package metadata reads it when present, and a glob
# that matches nothing does not fail the build.
COPY pyproject.toml README* ./
COPY hub ./hub
COPY connectors ./connectors
COPY schemas ./schemas
# A regular (not editable) install: the runtime image needs no source tree.
RUN pip install --upgrade pip setuptools wheel \
 && pip install . \
 && hub --help >/dev/null

# --- runtime: the virtualenv only, run as an unprivileged user ------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="stock-hub" \
      org.opencontainers.image.description="Integration hub linking purchase, sales and inventory over Kafka"

RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --home-dir /app --no-create-home --shell /usr/sbin/nologin hub \
 && mkdir -p /app/var \
 && chown -R hub:hub /app

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_HTTP_HOST=0.0.0.0 \
    HUB_HTTP_PORT=8080 \
    HUB_VAR_DIR=/app/var \
    HUB_LOG_FORMAT=json

WORKDIR /app
USER 10001:10001
EXPOSE 8080

# Every role serves /healthz on HUB_HTTP_PORT. Python, not curl: the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HUB_HTTP_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["hub"]
CMD ["serve"]
