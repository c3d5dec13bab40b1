"""A cap on request bodies: above ``Settings.api_max_body_bytes`` a request is answered 413 before it is parsed."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; FastAPI passes its HTTPExceptions on, so the answer is this 413."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=f"Request body larger than {limit} bytes (API_MAX_BODY_BYTES).")


class BodySizeLimit:
    """Pure ASGI middleware: a declared ``Content-Length`` over the limit is refused at once; otherwise the bytes
    are counted as they are received (chunked bodies declare no length)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # not a number: the streamed count below still applies
                if declared > limit:
                    await JSONResponse({"detail": BodyTooLarge(limit).detail}, status_code=413)(scope, receive, send)
                    return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # read outside a route's body parsing: answer here if nothing was sent yet
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, status_code=413)(scope, receive, send)
