"""Benchmarks of mlnb against plain IPython and MLflow; run them with ``python -m benchmarks``."""
