"""The parent's side of a peer worker: a script in another virtualenv that answers one JSON line per request
(bench/peers/st_backends.py, bench/peers/colbert_plaid.py), so that a benchmark can alternate rankstack's runs
with a peer's in one run although the two cannot share an environment."""

from __future__ import annotations

import json
import os
import subprocess


class JsonWorker:
    """Starts `cmd`, reads its first line (`first`: what it says once ready), then `ask` sends one request and
    returns its reply; `close` asks it to quit."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": "", **(env or {})})
        self.first = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer worker ended (exit {self.proc.wait()}); its stderr says why")
        return json.loads(line)

    def ask(self, message: dict) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=120)
