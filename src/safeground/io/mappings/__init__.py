"""Mappings shipped with Safeground, found by name (``colombia-mine-events``) or listed.

The YAML files sit next to this module so that they travel with the installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safeground.io.mapping import Mapping

FOLDER = Path(__file__).parent


def shipped() -> list[str]:
    """Names of the shipped mappings, sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def shipped_path(name: str) -> Path | None:
    """The file of a shipped mapping, or None when there is none by that name."""
    path = FOLDER / f"{name}.yaml"
    return path if path.is_file() else None


def load_mapping(name_or_path: str) -> Mapping:
    """Same as ``safeground.io.mapping.load_mapping`` (imported late: that module imports us)."""
    from safeground.io.mapping import load_mapping as load

    return load(name_or_path)
