"""OpenAIClient against a scripted OpenAI-compatible server on localhost: retries on 5xx/429/timeouts/bad bodies,
no retry on other 4xx, the concurrency limit, the API key from the environment."""

import json
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rankstack.errors import InputError
from rankstack.rerank.openai_client import OpenAIClient, RequestFailed, message_text, token_logprobs


def completion(text: str, logprobs: list | None = None) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


class ScriptedServer:
    """A chat-completions server replaying scripted actions per query (the text after "Search Query: " in the last
    message, else "*"), then answering the default: the window's ids in reverse order.

    Actions: ("text", str), ("status", code), ("status", code, retry_after), ("hang", seconds, then), ("raw", bytes),
    ("logprobs", text, content), ("delay", seconds) (then the default answer).
    """

    def __init__(self):
        self.script: dict[str, list] = defaultdict(list)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    user = body["messages"][-1]["content"]
                    m = re.search(r"Search Query: (.*)\.\n", user)
                    key = m.group(1) if m else "*"
                    action = server.script[key].pop(0) if server.script[key] else ("default",)
                self.answered = False
                try:
                    self.act(action, user)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass
                finally:
                    self.leave()

            def leave(self):
                """Out of flight once the answer is about to go: the client may send its next request as soon as
                it reads it, before this thread returns."""
                if not self.answered:
                    self.answered = True
                    with server.lock:
                        server.in_flight -= 1

            def act(self, action, user):
                kind = action[0]
                if kind == "status":
                    self.leave()
                    self.send_response(action[1])
                    if len(action) > 2:
                        self.send_header("Retry-After", str(action[2]))
                    self.send_header("Content-Length", "5")
                    self.end_headers()
                    self.wfile.write(b"error")
                    return
                if kind == "hang":
                    time.sleep(action[1])
                if kind == "delay":
                    time.sleep(action[1])
                if kind == "raw":
                    return self.reply(action[1])
                if kind == "text":
                    return self.reply(json.dumps(completion(action[1])).encode())
                if kind == "logprobs":
                    return self.reply(json.dumps(completion(action[1], action[2])).encode())
                ids = re.findall(r"^\[(\w+)\] ", user, flags=re.M)
                self.reply(json.dumps(completion(" > ".join(f"[{i}]" for i in reversed(ids)))).encode())

            def reply(self, data: bytes):
                self.leave()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


def ask(client, query="q"):
    return client.chat({"model": "m", "messages": [{"role": "user", "content": f"[1] a\n[2] b\nSearch Query: {query}.\n"}]})


def test_answers_and_reads_the_message(server):
    answer = ask(OpenAIClient(server.url))
    assert message_text(answer) == "[2] > [1]"
    assert server.requests[0]["model"] == "m" and len(server.requests) == 1


def test_5xx_then_success_is_retried_with_backoff(server):
    server.script["q"] = [("status", 500), ("status", 503)]
    start = time.monotonic()
    answer = ask(OpenAIClient(server.url, retries=3, backoff=0.05))
    assert message_text(answer) == "[2] > [1]" and len(server.requests) == 3
    assert time.monotonic() - start >= 0.05 + 0.1  # backoff 0.05 then 0.1 s


def test_429_honours_retry_after(server):
    server.script["q"] = [("status", 429, 0.3)]
    start = time.monotonic()
    ask(OpenAIClient(server.url, backoff=0.0))
    assert len(server.requests) == 2 and time.monotonic() - start >= 0.3


def test_a_hang_times_out_and_is_retried(server):
    server.script["q"] = [("hang", 2.0)]
    start = time.monotonic()
    answer = ask(OpenAIClient(server.url, timeout=0.3, backoff=0.0))
    elapsed = time.monotonic() - start
    assert message_text(answer) == "[2] > [1]" and len(server.requests) == 2
    assert 0.3 <= elapsed < 2.0


def test_a_body_that_is_not_json_is_retried(server):
    server.script["q"] = [("raw", b"{not json"), ("raw", b"[1, 2]")]
    assert message_text(ask(OpenAIClient(server.url, backoff=0.0))) == "[2] > [1]"
    assert len(server.requests) == 3


def test_gives_up_after_the_retries(server):
    server.script["q"] = [("status", 500)] * 10
    with pytest.raises(RequestFailed, match="3 attempts.*HTTP 500"):
        ask(OpenAIClient(server.url, retries=2, backoff=0.0))
    assert len(server.requests) == 3


def test_other_4xx_fail_at_once(server):
    server.script["q"] = [("status", 400)]
    with pytest.raises(RequestFailed, match="HTTP 400"):
        ask(OpenAIClient(server.url, retries=5, backoff=0.0))
    assert len(server.requests) == 1


def test_connection_refused_fails_clearly():
    s = ScriptedServer()
    url = s.url
    s.close()
    with pytest.raises(RequestFailed, match="2 attempts"):
        ask(OpenAIClient(url, retries=1, backoff=0.0, timeout=2))


def test_chat_many_keeps_order_and_the_concurrency_limit(server):
    for i in range(12):
        server.script[f"q{i}"] = [("delay", 0.15)]
    client = OpenAIClient(server.url, concurrency=3)
    bodies = [{"model": "m", "messages": [{"role": "user", "content": f"[1] a\n[2] b\n[3] c\nSearch Query: q{i}.\n"}]}
              for i in range(12)]
    server.script["q5"] = [("status", 400)]
    answers = client.chat_many(bodies)
    assert 2 <= server.max_in_flight <= 3
    assert isinstance(answers[5], RequestFailed)
    assert all(message_text(a) == "[3] > [2] > [1]" for i, a in enumerate(answers) if i != 5)


def test_api_key_comes_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "sk-test")
    ask(OpenAIClient(server.url, api_key_env="MY_LLM_KEY"))
    monkeypatch.delenv("MY_LLM_KEY")
    ask(OpenAIClient(server.url, api_key_env="MY_LLM_KEY"))
    assert server.headers[0].get("Authorization") == "Bearer sk-test"
    assert "Authorization" not in server.headers[1]


def test_answer_readers():
    assert message_text({"choices": []}) is None and message_text({}) is None
    content = [{"token": "[", "logprob": -0.1, "top_logprobs": [{"token": "[", "logprob": -0.1}]},
               {"token": "B", "logprob": -0.2, "top_logprobs": [{"token": "B", "logprob": -0.2},
                                                                 {"token": "A", "logprob": -1.5}]}]
    assert token_logprobs(completion("[B]", content)) == [("[", [("[", -0.1)]), ("B", [("B", -0.2), ("A", -1.5)])]
    assert token_logprobs(completion("[B]")) is None


def test_bad_settings_are_named():
    with pytest.raises(InputError, match="base_url"):
        OpenAIClient("localhost:8000")
    with pytest.raises(InputError, match="concurrency"):
        OpenAIClient("http://x/v1", concurrency=0)
