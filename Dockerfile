# One image for every lifenet process: `lifenet server`, `lifenet worker`, `lifenet bot`,
# `lifenet web`.
#
#   docker build -t lifenet .                       # official slim Python base, PyPI
#   ./scripts/docker-build                          # the same, or a local base without
#                                                   # a registry (see the script)
#
# BASE_IMAGE must provide python3 (3.11+) with its venv module; openssl is installed
# when the base lacks it (the snapshots pipe through the openssl command). Wheels put in
# docker/wheels/ are installed without a package index (what scripts/docker-build does
# for a local base); with none there, pip uses its index.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/lifenet
COPY docker/wheels/ /wheels/
COPY pyproject.toml /src/
# The dependencies get their own layer, read from pyproject.toml: editing the code
# does not reinstall numpy.
RUN set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt; \
    /opt/lifenet/bin/pip install --quiet -r /tmp/requirements.txt
RUN /opt/lifenet/bin/python -m compileall -q /opt/lifenet >/dev/null
COPY README.md /src/
COPY shared /src/shared
COPY client /src/client
COPY server /src/server
# lifenet itself as a wheel, installed in the last stage: a change of code makes a small
# layer there, not a new copy of the whole environment.
RUN set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    /opt/lifenet/bin/pip wheel --quiet --no-deps --wheel-dir /dist /src

FROM ${BASE_IMAGE}
RUN set -eu; \
    if ! command -v openssl >/dev/null; then \
        apt-get update; \
        apt-get install -y --no-install-recommends openssl; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid 10001 lifenet; \
    useradd --system --uid 10001 --gid lifenet --home-dir /home/lifenet --create-home \
        --shell /usr/sbin/nologin lifenet; \
    mkdir -p /data/snapshots; \
    chown -R lifenet:lifenet /data
# Settings before the code: each step costs seconds on some storage drivers, and these
# stay cached when only the code changes.
ENV PATH=/opt/lifenet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LIFENET_SERVER_HOST=0.0.0.0
WORKDIR /data
EXPOSE 5555 5556 5557 5558 8080 9464 9465
# Asks the server in this container for its status (worker and bot containers turn the
# check off in docker-compose.yml: they have no server to ask).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD lifenet status --connect "tcp://127.0.0.1:${LIFENET_SERVER_PLAYER_PORT:-5556}" \
        --timeout 3 >/dev/null || exit 1
ENTRYPOINT ["lifenet"]
CMD ["server"]
COPY --from=build /opt/lifenet /opt/lifenet
COPY --from=build /dist/ /tmp/dist/
RUN /opt/lifenet/bin/pip install --quiet --no-deps --no-index --no-cache-dir \
        --disable-pip-version-check --no-compile /tmp/dist/*.whl \
    && /opt/lifenet/bin/python -m compileall -q /opt/lifenet/lib/*/site-packages/server \
        /opt/lifenet/lib/*/site-packages/client /opt/lifenet/lib/*/site-packages/shared \
        >/dev/null \
    && rm -rf /tmp/dist
USER lifenet
