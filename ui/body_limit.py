"""A bound on the size of every request body, checked before Gradio reads it.

Gradio bounds uploads (``max_file_size``) but reads any JSON body whole: a 100 MB prompt is
refused in one line only after it was parsed, and the memory it took is not given back. This
ASGI middleware answers 413 before the body is read when its declared length is over the bound,
and stops reading one sent without a length once it passes it.
"""

from __future__ import annotations

import json

from ui import limits

UPLOAD_SLACK = 65_536  # a multipart upload carries headers and boundaries beside the file


def bound_for(path: str) -> int:
    """The largest body a request to ``path`` may send: an upload's file, else a JSON call."""
    if path.rstrip("/").endswith("/upload"):
        return limits.MAX_UPLOAD_BYTES + UPLOAD_SLACK
    return limits.MAX_REQUEST_BYTES


class BodyLimit:
    """ASGI middleware: refuse a request body over ``bound_for(path)`` with 413, one line."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        bound = bound_for(scope.get("path", ""))
        length = dict(scope.get("headers", [])).get(b"content-length", b"")
        if length.isdigit() and int(length) > bound:
            return await _refuse(send, bound)
        read = 0

        async def bounded_receive():
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > bound:  # no declared length: stop reading it here
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, bounded_receive, send)


async def _refuse(send, bound: int) -> None:
    message = (f"The request is larger than {bound:,} bytes; every input of this app is far "
               "smaller (see docs/limits.md).")
    body = json.dumps({"error": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
