# The kprof image: the operator (`kprof run`, the default) and the sidecar (`kprof sidecar`).
#   docker build -t kprof/kprof:0.1.0 .
# The builder makes a wheel and installs it into a virtualenv; the final stage is a slim Python
# with that virtualenv and nothing else: no compiler, no pip cache, no source tree. It runs as
# 65532 and writes only to /var/lib/kprof and /tmp, so it works with a read-only root filesystem.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md operator_main.py ./
COPY schemas ./schemas
COPY kprof_lib ./kprof_lib
# pip leaves the venv once kprof is in (the image installs nothing later); the modules are
# compiled ahead of time because nothing can be written next to them at run time.
RUN python -m venv /opt/kprof \
    && python -m pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/kprof/bin/pip install /wheels/kprof-*.whl \
    && /opt/kprof/bin/pip uninstall -y pip \
    && /opt/kprof/bin/python -m compileall -q /opt/kprof/lib

FROM python:3.11-slim
COPY --from=builder /opt/kprof /opt/kprof
RUN mkdir -p /var/lib/kprof/profiles /var/lib/kprof/spool \
    && chown -R 65532:65532 /var/lib/kprof
ENV PATH=/opt/kprof/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# Local profiles and the upload spool; mount a volume here (emptyDir or a PersistentVolumeClaim).
VOLUME ["/var/lib/kprof"]
USER 65532:65532
# Metrics, health (operator); health (sidecar).
EXPOSE 8080 8081 8082
ENTRYPOINT ["kprof"]
CMD ["run"]
