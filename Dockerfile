# fleetgauge: one image for the agent and the dashboard.
#   docker build -t fleetgauge:0.1.0 .
#   docker run --rm fleetgauge:0.1.0 agent --help
#   docker run --rm fleetgauge:0.1.0 dashboard --help
# docker-compose.yml runs both; see "Run the full stack" in README.md.
FROM python:3.11.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package is built from (see .dockerignore): no tests, no test extras.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY fleetgauge ./fleetgauge
COPY agent ./agent
COPY dashboard ./dashboard
RUN pip install '.[all]' && rm -rf /build

# A user of its own. Reading the host's /proc (mounted read-only at /host/proc) and
# statfs() of its filesystems need no root; a mount under a directory only root may enter
# is left out of the disk metrics. The spool (and the default SQLite file) live in
# $XDG_DATA_HOME/fleetgauge = /var/lib/fleetgauge: mount a volume there.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/fleetgauge --create-home \
        --shell /usr/sbin/nologin fleetgauge
ENV XDG_DATA_HOME=/var/lib
WORKDIR /var/lib/fleetgauge
USER 10001:10001

# 9108: agent /metrics; 9109: agent push endpoint for model metrics; 8050: dashboard.
# Both servers listen on 127.0.0.1 unless told otherwise: off loopback the agent needs
# FLEETGAUGE_METRICS_TOKEN / FLEETGAUGE_PUSH_TOKEN and the dashboard FLEETGAUGE_DASHBOARD_AUTH.
EXPOSE 9108 9109 8050

# The default command is the agent, so the check asks its /metrics (with
# $FLEETGAUGE_METRICS_TOKEN when set). docker-compose.yml gives the dashboard its own check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "fleetgauge.agent.probe"]

ENTRYPOINT ["fleetgauge"]
CMD ["agent"]
