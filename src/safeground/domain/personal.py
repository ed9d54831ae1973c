"""Masking of personal data for display: enough to tell records apart, not to identify anyone."""

from typing import Any


def mask(value: Any) -> Any:
    """'Leyla Mammadova' → 'L**** M********'; None stays None."""
    if value is None:
        return None
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in str(value).split())
