"""Benchmarks of ssm-etl: extraction, throttling, memory and queries at scale.

Every figure is a ratio of two measurements taken side by side in one run:
the machines this runs on are small and noisy, so absolute timings mean
little and nothing here is ever asserted. Run `python -m benchmarks --help`.
"""
