"""How a server process runs requests: the size of its thread pool follows the settings."""

from __future__ import annotations

import anyio.to_thread
from fastapi.testclient import TestClient

from safeground.web.app import create_app


async def _pool_size() -> float:
    return anyio.to_thread.current_default_thread_limiter().total_tokens


def test_blocking_requests_run_on_as_many_threads_as_the_setting_says(scenario) -> None:
    for threads in (3, 7):
        app = create_app(scenario.settings.model_copy(update={"request_threads": threads}))
        with TestClient(app) as client:
            assert client.portal is not None
            assert client.portal.call(_pool_size) == threads
            assert client.get("/ogc").status_code == 200
        app.state.register.store.engine.dispose()
