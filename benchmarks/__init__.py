"""Benchmarks for the quality bars of the brief: `scripts/bench` runs them all."""
