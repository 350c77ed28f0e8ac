# saleor-vtmarketing: one image for every role. The command picks it:
#   serve (default; web + in-process worker) | serve --no-worker | worker | migrate | channels … | deliveries … | backfill …
# Build:  docker build -t saleor-vtmarketing .
# Run:    docker run -p 8000:8000 -v vtm-data:/data -e APP_URL=https://vtm.example.com saleor-vtmarketing
# No BuildKit front-end is named (no `# syntax=` line): the build needs no registry beyond its base image.
# PYTHON_IMAGE: any Debian-like image with python3 (3.11+) and its venv module, e.g. a mirror of python:3.11-slim.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the app as a wheel, installed with its dependencies into a self-contained venv --------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY manifest ./manifest
COPY saleor_app ./saleor_app
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/saleor_vtmarketing-*.whl

# --- runtime: the venv only (no compiler, no sources, no pip cache), as an unprivileged user --------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="saleor-vtmarketing" \
      org.opencontainers.image.description="Saleor App that sends confirmed orders to VTmarketing" \
      org.opencontainers.image.licenses="BSD-3-Clause"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && mkdir -p /data \
 && chown app:app /data
COPY --from=builder /opt/venv /opt/venv
# An empty working folder: no `.env` is picked up by accident (configuration comes from the environment).
WORKDIR /app
USER app:app
# The SQLite database and the generated SECRET_KEY (when none is given) live here: keep it on a volume.
VOLUME ["/data"]
EXPOSE 8000
# Liveness only (the database is /readyz's business). `healthcheck` probes /healthz on the port the server of this
# container really listens on (`serve --port 9000`, `worker --http-port 9100`); a `worker` without --http-port
# serves no HTTP: run it with --no-healthcheck (docker run) or `healthcheck: disable: true` (compose).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["saleor-vtmarketing", "healthcheck", "--timeout", "8"]
# SIGTERM (docker stop) drains in-flight deliveries for up to 20 s: give containers a stop timeout of 30 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["saleor-vtmarketing"]
CMD ["serve"]
