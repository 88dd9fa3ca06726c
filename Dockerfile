# Syrinx images. Two targets from one file:
#   docker build --target cpu -t syrinx:cpu .    (torch's CPU wheel, about 1 GB smaller)
#   docker build --target gpu -t syrinx:gpu .    (torch's CUDA wheel; the driver comes from the node)
# The default voice (en_US-joe-medium) is installed as a Python package; more Piper
# voices come from a volume mounted at SYRINX_VOICES_DIR (see docs/deployment.md).
# checkov:skip=CKV_DOCKER_7: the base image is a build argument whose default is pinned (3.11-slim-bookworm)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with Syrinx and its dependencies, nothing else ----
FROM ${PYTHON_IMAGE} AS build-base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/syrinx
ENV PATH=/opt/syrinx/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY constraints/ constraints/
COPY protos/ protos/
COPY server/ server/
COPY client/ client/

FROM build-base AS build-cpu
# Where no registry or torch index can be reached (docs/deployment.md): a directory of wheels
# mounted into the build (PIP_FIND_LINKS=/wheels) and the machine's CA bundle for pip (PIP_CERT).
# Unset by default; pip reads both from the environment.
ARG PIP_FIND_LINKS
ARG PIP_CERT
# PyTorch publishes its CPU-only wheels on its own index; PyPI's Linux wheel is the CUDA one.
# An empty TORCH_CPU_INDEX leaves it out (the wheel then comes from PIP_FIND_LINKS).
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
# torch ships one test helper in Python 3.12-only syntax (torch/testing/_internal/py312_intrinsics.py);
# compileall would fail on it, and nothing imports it at run time.
RUN pip install ${TORCH_CPU_INDEX:+--extra-index-url "$TORCH_CPU_INDEX"} -c constraints/cpu.txt . \
    && python -m compileall -q -x 'py312_intrinsics\.py$' /opt/syrinx/lib

FROM build-base AS build-gpu
ARG PIP_FIND_LINKS
ARG PIP_CERT
RUN pip install . \
    && python -m compileall -q -x 'py312_intrinsics\.py$' /opt/syrinx/lib

# ---- runtime: the virtual environment on a slim Python, as an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin syrinx
ENV PATH=/opt/syrinx/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    SYRINX_PORT=50051 \
    SYRINX_METRICS_PORT=9464
EXPOSE 50051 9464
# The gRPC health protocol, as Kubernetes' grpc probes use it: exit 0 only when SERVING.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 CMD ["syrinx", "health"]
USER 10001:10001
ENTRYPOINT ["syrinx-server"]

FROM runtime AS gpu
COPY --from=build-gpu /opt/syrinx /opt/syrinx
ENV SYRINX_DEVICE=cuda

FROM runtime AS cpu
COPY --from=build-cpu /opt/syrinx /opt/syrinx
