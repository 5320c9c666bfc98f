"""Benchmark scripts (plain Python; see docs/performance.md)."""
