"""A safe request (GET, HEAD) whose database connection turns out dead runs once more; any
other request tests its PostgreSQL connections before use instead.

PostgreSQL connections are pooled and, for speed, tested before use only after some idle time
(``storage.store._ping_when_idle``), so after a server restart a request can pick up a
connection that died a moment ago. The first statement on it fails and SQLAlchemy invalidates
it and the connections pooled with it. A read transaction cannot run its own body again, so the
whole request is: it changes nothing but, idempotently, a session's last use, and nothing of
its answer has been sent yet. Other methods may have written before the failure: never again;
so they test each connection before its first statement (``storage.store.checked_before_use``), a
round trip per connection for the few requests that may write.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safeground.storage.store import checked_before_use
from safeground.web.deps import SAFE_METHODS


class DroppedConnections:
    """Runs a safe request a second time, on fresh connections, when the first attempt failed
    on an invalidated connection before its answer began; runs any other request with its
    connections tested before use. A plain ASGI middleware, as ``errors.RequestGuard`` is, for
    the same reason."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS:
            with checked_before_use():
                await self.app(scope, receive, send)
            return
        received: list[Message] = []
        answered = False

        async def recording() -> Message:
            message = await receive()
            received.append(message)
            return message

        async def answering(message: Message) -> None:
            nonlocal answered
            answered = True
            await send(message)

        try:
            await self.app(scope, recording, answering)
            return
        except DBAPIError as error:
            if answered or not error.connection_invalidated:
                raise
        await self.app(scope, _replayed(received, receive), send)


def _replayed(messages: list[Message], receive: Receive) -> Receive:
    """What the first attempt received (its body, if it read one), then the client's own."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
