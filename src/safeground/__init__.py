"""Safeground: the register, risk, planning and monitoring system for mine action programmes."""

__version__ = "0.1.0"
