"""Benchmarks, each a `python -m eval.bench.<name>` command that prints figures (never a timed test)."""
