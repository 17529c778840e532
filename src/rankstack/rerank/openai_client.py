"""A small client for OpenAI-compatible chat endpoints (`POST {base_url}/chat/completions`): OpenAI, vLLM, llama.cpp
server, Ollama, TGI... Standard library only (urllib, threads).

Each request has a timeout and is retried with exponential backoff (`backoff * 2**attempt` seconds, capped at
`max_backoff`, or the server's Retry-After) on HTTP 429 and 5xx, connection errors, timeouts and bodies that are
not JSON; other 4xx answers fail at once. `chat_many` sends requests in parallel, at most `concurrency` at a time.
The API key is read from the environment variable `api_key_env` (default OPENAI_API_KEY) at each request and sent
as a Bearer token when set; it is never stored in a stage's configuration.

    >>> client = OpenAIClient("http://localhost:8000/v1", timeout=30, concurrency=4)          # doctest: +SKIP
    >>> client.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})["choices"]  # doctest: +SKIP
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rankstack.errors import InputError, RankstackError

log = logging.getLogger(__name__)


class RequestFailed(RankstackError):
    """A request that failed for good (retries spent, or an answer that retrying cannot change)."""


class OpenAIClient:
    """POST chat completions to `base_url` (e.g. "http://localhost:8000/v1"), with retries and a concurrency limit."""

    def __init__(self, base_url: str, *, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 retries: int = 3, backoff: float = 1.0, max_backoff: float = 30.0, concurrency: int = 8):
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"base_url must be an http(s) URL such as 'http://localhost:8000/v1', got {base_url!r}")
        if timeout <= 0 or retries < 0 or backoff < 0 or concurrency < 1:
            raise InputError("timeout must be positive, retries and backoff at least 0, concurrency at least 1")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env, self.timeout, self.retries = api_key_env, timeout, retries
        self.backoff, self.max_backoff, self.concurrency = backoff, max_backoff, concurrency

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The decoded JSON answer to one request; RequestFailed once the retries are spent."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        for attempt in range(self.retries + 1):
            wait = None
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    answer = json.loads(response.read())
                if not isinstance(answer, dict):
                    raise ValueError(f"expected a JSON object, got {type(answer).__name__}")
                return answer
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                if e.code != 429 and e.code < 500:
                    raise RequestFailed(f"{self.url} answered HTTP {e.code}: {detail}") from None
                error = f"HTTP {e.code}: {detail}"
                wait = _retry_after(e.headers.get("Retry-After"))
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError,
                    http.client.HTTPException, ValueError) as e:
                error = f"{type(e).__name__}: {e}"
            if attempt == self.retries:
                raise RequestFailed(f"{self.url}: request failed after {attempt + 1} attempts; last error: {error}")
            delay = min(self.max_backoff, wait if wait is not None else self.backoff * 2 ** attempt)
            log.info("%s: %s; retrying in %.1fs", self.url, error, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def chat_many(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any] | RequestFailed]:
        """Answers to several requests, in order, at most `concurrency` in flight; a request that failed for good
        gives its RequestFailed in its place."""
        def one(body: dict[str, Any]) -> dict[str, Any] | RequestFailed:
            try:
                return self.chat(body)
            except RequestFailed as e:
                return e

        if len(bodies) <= 1:
            return [one(b) for b in bodies]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies)),
                                thread_name_prefix="rankstack-http") as pool:
            return list(pool.map(one, bodies))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: use the backoff instead
        return None


def message_text(answer: dict[str, Any]) -> str | None:
    """The first choice's message content, or None where the answer has none."""
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def token_logprobs(answer: dict[str, Any]) -> list[tuple[str, list[tuple[str, float]]]] | None:
    """Each generated token with its top alternatives as (token, log-probability), or None where the server gave
    no `logprobs` (OpenAI's `choices[0].logprobs.content[i]` with `token` and `top_logprobs`)."""
    try:
        content = answer["choices"][0]["logprobs"]["content"]
        out = [(str(item["token"]), [(str(t["token"]), float(t["logprob"])) for t in (item.get("top_logprobs") or [item])])
               for item in content]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return out or None
