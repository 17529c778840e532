"""Who may read and write: a bearer token (from a file or the environment, never logged), and the body-size limit.

Writes always need the token; reads need it when the config says `"reads": "token"`. Without a configured token,
no request can write.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Awaitable, Callable

from rankstack.errors import InputError
from rankstack.serve.errors import BodyTooLarge, ServiceError, Unauthorized

TOKEN_ENV = "RANKSTACK_TOKEN"


def load_token(token_file: str | os.PathLike | None = None) -> str | None:
    """The token in `token_file` (surrounding whitespace stripped), else in $RANKSTACK_TOKEN, else None."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the token file ({type(e).__name__})", token_file) from None
        if not token:
            raise InputError("the token file is empty", token_file)
    else:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is not None and (len(token) < 8 or any(c.isspace() for c in token)):
        raise InputError("the token must be at least 8 characters, without spaces")
    return token


class Access:
    """Checks a request's `Authorization: Bearer <token>` header."""

    def __init__(self, token: str | None, reads: str = "open"):
        self._token = token.encode() if token else None
        self.reads_need_token = reads == "token"

    @property
    def writes_enabled(self) -> bool:
        return self._token is not None

    def check(self, authorization: str | None, write: bool) -> None:
        """Unauthorized unless the header holds the token (reads pass without one when reads are open)."""
        if not write and not self.reads_need_token:
            return
        what = "writes" if write else "reads"
        if self._token is None:
            raise Unauthorized(f"{what} need a bearer token, and this server has none configured "
                               "(start it with --token-file or $RANKSTACK_TOKEN)")
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(f"{what} need a bearer token: send 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(value.strip().encode(), self._token):
            raise Unauthorized("the bearer token is not valid")


ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


def error_response(error: ServiceError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    import json

    headers = [(b"content-type", b"application/json")]
    if isinstance(error, Unauthorized):
        headers.append((b"www-authenticate", b"Bearer"))
    return error.status, headers, json.dumps(error.body()).encode()


async def send_error(send: Callable, error: ServiceError) -> None:
    status, headers, body = error_response(error)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 naming the limit (checked from the
    Content-Length header, and again while the body is read)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _error(self, size: str) -> BodyTooLarge:
        return BodyTooLarge(f"the request body is {size} bytes; the limit (body_bytes) is {self.max_bytes:,}",
                            "body_bytes")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await send_error(send, self._error(f"{int(length):,}"))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await send_error(send, self._error(f"over {self.max_bytes:,}"))
            if not message.get("more_body"):
                break
        body, done = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal done
            if not done:
                done = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequireToken:
    """ASGI wrapper of a mounted app (the MCP endpoint): requests pass only if `access` lets them read."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization")
            try:
                self.access.check(header.decode("latin-1") if header else None, write=False)
            except Unauthorized as e:
                return await send_error(send, e)
        await self.app(scope, receive, send)
