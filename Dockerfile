# syntax=docker/dockerfile:1
# Notiflow's image: one process per container. The default command is the API; the same image
# runs `notiflow worker`, `notiflow migrate` (a one-shot job) and `notiflow sandbox`.
#   docker build -t notiflow .
#   docker run -e NOTIFLOW_DATABASE_URL=postgresql://… -p 8000:8000 notiflow
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- builder: the wheel of Notiflow and the wheels of its dependencies ------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN pip install "build==1.2.2.post1"
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m build --wheel --outdir /dist \
    && pip wheel --wheel-dir /wheels /dist/notiflow-*.whl

# --- runtime: the wheels installed on a slim Python, no build tools, not root -----------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NOTIFLOW_LOG_FORMAT=json
RUN groupadd --system --gid 10001 notiflow \
    && useradd --system --uid 10001 --gid notiflow --home-dir /app --shell /usr/sbin/nologin notiflow \
    && mkdir /app \
    && chown notiflow:notiflow /app
# Installed from the builder's wheels only (--no-index): what was built is what runs.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/notiflow-*.whl
WORKDIR /app
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# 8000: the API (`notiflow api`); 9100: a worker's /metrics and /health (NOTIFLOW_WORKER_PORT).
EXPOSE 8000 9100
# Liveness of the API with Python's standard library (the image has no curl). A worker serves its
# probes on 9100: docker-compose.yml and the Kubernetes manifests give workers their own check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]
# SIGTERM (Docker's default stop signal) makes every command stop gracefully.
CMD ["notiflow", "api", "--host", "0.0.0.0", "--port", "8000"]
