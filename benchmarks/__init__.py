"""Benchmark scripts (plain Python; see README, "Performance")."""
