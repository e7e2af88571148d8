"""Traindeck: run, version and compare ML training jobs from the terminal."""

__version__ = "0.1.0"
