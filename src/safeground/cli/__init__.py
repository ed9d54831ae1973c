"""The ``safeground`` command."""
