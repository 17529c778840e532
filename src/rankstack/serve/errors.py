"""The errors the service answers with: an HTTP status, a type and a message, never a stack trace or a file path."""

from __future__ import annotations

import re

from rankstack.errors import RankstackError

#: Absolute paths (POSIX or Windows) and relative ones with at least one folder: replaced in every message sent out.
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+-]+){2,}[\\/]?|(?:\.{1,2}[\\/])?(?:[\w.@+-]+[\\/])+[\w.@+-]+\.\w+")
_TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]*\", line \d+")


class ServiceError(Exception):
    """An error answered to the client as {"error": type, "message": ..., ["limit": name]}."""

    status = 400
    type = "bad_request"

    def __init__(self, message: str, limit: str | None = None):
        super().__init__(message)
        self.message, self.limit = message, limit

    def body(self) -> dict:
        out = {"error": self.type, "message": public_message(self.message)}
        if self.limit is not None:
            out["limit"] = self.limit
        return out


class Unauthorized(ServiceError):
    status, type = 401, "unauthorized"


class NotFound(ServiceError):
    status, type = 404, "not_found"


class LimitExceeded(ServiceError):
    """A request beyond one of the configured limits (the message and `limit` name it)."""

    status, type = 400, "limit_exceeded"


class BodyTooLarge(LimitExceeded):
    status = 413


class RequestTimeout(LimitExceeded):
    """The request ran past the request-time limit; its work stops at the next stage or model batch."""

    status = 408

    def __init__(self, seconds: float):
        super().__init__(f"the request took longer than the request-time limit (request_seconds = {seconds:g})",
                         "request_seconds")


class NotReady(ServiceError):
    status, type = 503, "not_ready"


def public_message(message: str) -> str:
    """A message safe to send: file paths replaced by '<path>', and at most one line of 500 characters."""
    message = _PATH.sub("<path>", str(message))
    message = _TRACE.sub("", message).strip().splitlines()
    text = message[0] if message else "error"
    return text if len(text) <= 500 else text[:497] + "..."


def from_exception(e: BaseException) -> ServiceError:
    """The ServiceError to answer for an exception raised while serving a request: rankstack's own errors (bad
    input) are 400 with their message; anything else is 500 with a generic message (the log has the details)."""
    if isinstance(e, ServiceError):
        return e
    if isinstance(e, RankstackError):
        return ServiceError(str(e))
    error = ServiceError("internal error; the server log has the details")
    error.status, error.type = 500, "internal"
    return error
