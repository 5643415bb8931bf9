"""The request body limit, enforced while the body arrives (ASGI middleware).

A declared ``Content-Length`` over the limit is answered 413 before a byte is read; a body without
one (chunked) is counted as it streams and stopped at the limit, so an oversized upload never
fills memory or disk. The limit depends on the route: video uploads (``/v1/jobs``) may be larger
than images.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detect.serve.errors import ApiError, error_response

#: room for the multipart envelope and form fields around the file itself
ENVELOPE_BYTES = 64 * 1024


class BodyTooLarge(ApiError):
    def __init__(self, limit: int, got: str) -> None:
        super().__init__(413, f"the request body is larger than this route accepts ({limit} bytes)",
                         expected=f"at most {limit} bytes", got=got)


class BodyLimit:
    """Refuse bodies over ``limit_for(path)`` bytes (413, the service's JSON error)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"]) + ENVELOPE_BYTES
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(BodyTooLarge(limit, f"Content-Length {int(declared)}"))(scope, receive, send)
            return
        seen, refused = 0, None

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = BodyTooLarge(limit, f"more than {limit} bytes (the upload was stopped there)")
                    raise refused
            return message

        async def guarded(message: Message) -> None:
            if refused is None:  # once the body was refused, the app's own answer (400, 500...) is replaced
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            pass
        if refused is not None:
            await error_response(refused)(scope, receive, send)
