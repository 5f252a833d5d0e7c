"""Producing a catalogue, without Prefect: profile, plan, the product pipeline's stages, run bookkeeping,
outcomes and the run report. `flows/` wires these into Prefect tasks; `reproduce`, the benchmarks and the
workers call the same functions.
"""
