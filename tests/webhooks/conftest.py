"""A real HTTP receiver on 127.0.0.1 (http.server in a thread) and endpoints pointing at it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jitaccess.webhooks.events import WEBHOOK_EVENTS
from jitaccess.webhooks.services import endpoint_create


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status of ``answers`` (the last one from then on)."""

    url: str
    answers: list[int] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, received: Received) -> int:
        with self.lock:
            self.requests.append(received)
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 — http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = state["receiver"].answer(Received(dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            if 300 <= status < 400:
                self.send_header("Location", state["receiver"].url + "/moved")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"receiver says no\n  try later")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_port}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Endpoint:
    secret: str
    endpoint: Any


@pytest.fixture
def endpoint(cast: dict[str, Any], receiver: Receiver) -> Endpoint:
    secret, record = endpoint_create(
        name="siem", url=receiver.url, events=list(WEBHOOK_EVENTS), acting_user=cast["secadmin"]
    )
    return Endpoint(secret, record)
