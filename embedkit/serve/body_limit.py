"""Refuse request bodies over the size limit before they are read, with the service's JSON error.

Written here rather than using FastAPI's ``max_body_size``: when a request announces a Content-Length
over the limit, Starlette's limiter replaces the response with a plain-text 413, and every error of
this service is one JSON line (:mod:`embedkit.serve.errors`).
"""
from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedkit.serve.errors import error_response


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:  # a chunked body announces no length: count it as it comes
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413)  # the app's handler turns it into the JSON error
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"the request body is larger than the server's limit ({self.max_bytes} bytes)")
        response.headers["Connection"] = "close"  # the unread body must not be taken for the next request
        await response(scope, receive, send)
