# syntax=docker/dockerfile:1
#
# One image for the platform profile: every service (`m3o run <service>`), the HTTP front
# (`m3o run gateway`) and the migrations (`m3o migrate`).
#
#   docker build -t m3o:dev .
#   docker run --rm m3o:dev --help
#
# Two stages: `build` installs the locked dependencies and the project into a virtual
# environment with uv; the final stage is the same slim Python with only that environment
# copied in: no uv, pip, compiler or download cache. No HEALTHCHECK: Kubernetes probes the
# processes (gRPC health, /healthz, /readyz) and compose.yaml declares its own checks.
# checkov:skip=CKV_DOCKER_2: probes come from Kubernetes and compose.yaml, not the image

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# checkov:skip=CKV_DOCKER_7: the tag is in PYTHON_IMAGE (3.11-slim-bookworm), which checkov does not expand
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.8
# Build-stage only, and the stage is thrown away: pip's own cache is not kept.
RUN python -m pip install --no-cache-dir "uv==${UV_VERSION}"
# Compile bytecode at build time (the root filesystem is read-only at run time), copy files
# out of the cache mount instead of linking to it, never download a Python: use the image's.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/m3o
WORKDIR /src
# Dependencies first, from uv.lock alone: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --no-editable
# Then the project itself, installed as a package (not editable: /src is not copied on).
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# checkov:skip=CKV_DOCKER_7: the tag is in PYTHON_IMAGE (3.11-slim-bookworm), which checkov does not expand
FROM ${PYTHON_IMAGE}
# Nothing installs packages at run time: the base image's installers go too.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && groupadd --system --gid 10001 m3o \
    && useradd --system --uid 10001 --gid m3o --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin m3o \
    && install -d -o m3o -g m3o -m 0700 /data
COPY --from=build /opt/m3o /opt/m3o
# M3O_DATA_DIR: where the CLI keeps local state (`m3o serve`'s SQLite file, `m3o login`'s
# token); a volume here, an emptyDir under Kubernetes' read-only root filesystem.
ENV PATH=/opt/m3o/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    M3O_DATA_DIR=/data/.m3o
WORKDIR /data
USER 10001:10001
# The HTTP front's port, a service's gRPC port, a service's metrics port.
EXPOSE 8080 9090 9091
ENTRYPOINT ["m3o"]
CMD ["--help"]
