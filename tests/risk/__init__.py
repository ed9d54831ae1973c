"""Tests of safeground.risk and the ``risk`` commands."""
