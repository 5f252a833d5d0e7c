"""Generators for tests, benchmarks and the offline demo, not pipeline steps.

`flatlays`: synthetic packshots with known masks (and the demo's generated catalogue); `random_models`: diffusion
components built from configs with random weights (tiny for CPU tests, full size for GPU throughput). Nothing on
the production path imports this package (tests/test_import_boundaries.py checks it).
"""
