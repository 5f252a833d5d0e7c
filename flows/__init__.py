"""Thin Prefect orchestration: tasks, flows, caches and the `onmodel` command line."""

import os

# Before Prefect is imported anywhere: no analytics, no telemetry (DESIGN.md).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
