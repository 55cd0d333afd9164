"""Benchmarks behind `agentic bench`: each reports a ratio against a baseline run in the same process."""
