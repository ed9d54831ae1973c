"""Model files: a pickle with a format tag, so that a wrong or stale file fails with a clear error.

Pickle runs code when loaded: load only model files you made or trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TypeVar

Model = TypeVar("Model")


def save_model(model: object, path: str | Path, fmt: str) -> None:
    with open(path, "wb") as fh:
        pickle.dump({"format": fmt, "model": model}, fh, protocol=pickle.HIGHEST_PROTOCOL)


def load_model(path: str | Path, fmt: str, kind: type[Model], what: str) -> Model:
    with open(path, "rb") as fh:
        obj = pickle.load(fh)
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ValueError(f"{path} is not a Safeground {what} ({fmt})")
    model = obj["model"]
    if not isinstance(model, kind):
        raise ValueError(f"{path} does not hold a {kind.__name__}")
    return model
