"""Heads: the online predictor is an :class:`~mmmsf.models.necks.MLPNeck` (see configs)."""
