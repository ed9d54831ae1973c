"""Settings of the web application, from arguments or ``SAFEGROUND_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from safeground.service.layers import FEATURES_KEPT
from safeground.storage.store import default_location


class Settings(BaseModel):
    store: str = Field(default_factory=default_location, description="GeoPackage path or URL")
    # Mixed into sessions' CSRF tokens (which are keyed by the session secret itself); changing
    # it invalidates the CSRF tokens of open sessions.
    secret_key: str = ""
    base_map: Path | None = Field(None, description="A local .mbtiles or .pmtiles base map")
    max_upload_bytes: int = 20 * 1024 * 1024
    cookie_secure: bool = Field(False, description="Send cookies over HTTPS only")
    session_hours: float = 12.0
    session_idle_minutes: float = Field(30.0, gt=0, description="Unused this long, a session ends")
    login_attempts: int = 5
    login_client_attempts: int = 30
    login_window_s: int = 300
    # Threads a server process runs blocking requests on. Requests are mostly CPU work that
    # holds the GIL: with anyio's default of 40, 50 busy clients made threads take turns and
    # the p95 of OGC items pages doubled (bench/bench_web.py); a few still overlap database waits.
    request_threads: int = Field(4, ge=1)
    # Features of each layer a server process keeps once read, for OGC items pages (see
    # service.layers.Envelopes); 0 keeps none.
    features_kept: int = Field(FEATURES_KEPT, ge=0)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``SAFEGROUND_<NAME>`` variables, then explicit overrides."""
        values: dict[str, object] = {}
        for name in cls.model_fields:
            found = os.environ.get(f"SAFEGROUND_{name.upper()}")
            if found is not None:
                values[name] = found
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
