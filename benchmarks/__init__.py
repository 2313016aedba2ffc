"""Benchmarks of ssm-etl: the whole CLI against the obvious script, throttling, quiet
nights, open commands, and the views and a night on a year of history.

Every figure that matters is a ratio of two measurements taken side by side
in one run, or a count: the machines this runs on are small and noisy, so
absolute timings are context and nothing here is ever asserted. Run
`python -m benchmarks --help`.
"""
