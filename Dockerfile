# Multi-stage image: build a wheel, install it into a venv, run as a non-root user.
# The chart (helm/hitl-gateway) runs this image with `serve` and mounts policies, data and /tmp;
# the root filesystem can stay read-only.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY reviewer_ui ./reviewer_ui
RUN python -m venv /opt/hitl \
 && /opt/hitl/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/hitl/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 hitl \
 && useradd --system --uid 10001 --gid hitl --home-dir /var/lib/hitl-gateway --no-create-home hitl \
 && install -d -o hitl -g hitl -m 0750 /var/lib/hitl-gateway
COPY --from=build /opt/hitl /opt/hitl
COPY policies /etc/hitl-gateway/policies
ENV PATH=/opt/hitl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    HITL_DATA_DIR=/var/lib/hitl-gateway \
    HITL_POLICIES=/etc/hitl-gateway/policies \
    HITL_GRPC_HOST=0.0.0.0 \
    HITL_HTTP_HOST=0.0.0.0
USER 10001:10001
EXPOSE 50051 8080
ENTRYPOINT ["hitl-gateway"]
CMD ["serve"]
