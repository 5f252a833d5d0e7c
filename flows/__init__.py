"""Thin Prefect orchestration: tasks, flows, caches and the `onmodel` command line."""

import os

# Before Prefect is imported anywhere: no analytics, no telemetry (DESIGN.md).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The first ephemeral API start in a new PREFECT_HOME creates and migrates its database: on a busy 2-core
# machine that took longer than Prefect's 20 s default (`make demo` timed out at 23 s), so allow 2 minutes.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
