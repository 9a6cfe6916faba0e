# syntax=docker/dockerfile:1
# One image for every WattStream app service (migrate, bridge, stream, api, simulate); the
# compose file picks the subcommand. Build: docker compose build  (or: docker build -t wattstream:local .)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: install the package and its pinned dependencies into a self-contained venv ----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Every dependency ships a manylinux wheel for CPython 3.11, so no compiler is installed.
# README.md* matches nothing while the repo has no README; pyproject names it as the readme.
COPY pyproject.toml README.md* ./
COPY schema/ schema/
COPY simulator/ simulator/
COPY stream/ stream/
COPY api/ api/
COPY wattstream/ wattstream/
RUN pip install . && pip check

# ---- runtime: the venv, the model artifacts, a non-root user ----
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Code and artifacts stay root-owned (read-only to the service); local state such as the Faust
# data dir goes under /var/lib/wattstream, the one directory the service user can write.
RUN groupadd --system --gid 10001 wattstream \
 && useradd --system --uid 10001 --gid wattstream --no-create-home \
        --home-dir /var/lib/wattstream --shell /usr/sbin/nologin wattstream \
 && install -d -o wattstream -g wattstream -m 0750 /var/lib/wattstream

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Trained model files (not a Python package). The bracket makes the source a wildcard, which
# may match nothing: artifacts/ is absent from a clone until the train command's output is
# committed, and the build must not fail on that. When present, its contents land in ./artifacts.
COPY artifact[s]/ artifacts/

USER wattstream:wattstream

# Health is checked per service in docker-compose.yml: each subcommand serves something else.
ENTRYPOINT ["wattstream"]
CMD ["--help"]
