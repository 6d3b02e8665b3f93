"""A fake Slack or webhook endpoint for end-to-end tests and the bench: a real HTTP/1.1 server.

Threaded, with keep-alive (one thread per connection, as a pooled client
keeps its connections open), and it records every request it receives: the
key it carried (``Idempotency-Key``), the path, the body and the time. A test
can script the answers, and hold requests open until it lets them go.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    key: str
    path: str
    body: bytes
    at: float  # time.time() when the request arrived

    def json(self) -> Any:
        return json.loads(self.body)


# (status, body) for a request; the default answers 200 "ok" like Slack.
Answer = Callable[[Received], tuple[int, bytes]]


class Receiver:
    def __init__(self, answer: Answer | None = None, *, port: int = 0) -> None:
        self.answer: Answer = answer or (lambda received: (200, b"ok"))
        self.received: list[Received] = []
        self.held = threading.Event()  # set when a request is being held
        self._release = threading.Event()
        self._hold_next = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's
            # algorithm holds the body for the client's delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                record = Received(
                    self.headers.get("Idempotency-Key", ""),
                    self.path,
                    self.rfile.read(length),
                    time.time(),
                )
                with receiver._lock:
                    receiver.received.append(record)
                    hold = receiver._hold_next > 0
                    receiver._hold_next -= hold
                if hold:
                    receiver.held.set()
                    receiver._release.wait(60)
                    self.close_connection = True
                    return  # the client is gone by now; no answer
                status, body = receiver.answer(record)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def hold_next(self, count: int = 1) -> None:
        """Hold the next ``count`` requests open, unanswered, until :meth:`release`."""
        with self._lock:
            self._hold_next = count
        self.held.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def keys(self) -> list[str]:
        with self._lock:
            return [r.key for r in self.received]


def main() -> None:
    """``python -m tests.receiver --port N --out FILE``: serve until SIGTERM, one line a request.

    The bench runs the fake in a process of its own, so that it never takes
    the load generator's interpreter lock. Each line is ``key<TAB>time``.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    lock = threading.Lock()
    with open(args.out, "a", buffering=1) as out:

        def answer(received: Received) -> tuple[int, bytes]:
            with lock:
                out.write(f"{received.key}\t{received.at:.6f}\n")
            return 200, b"ok"

        receiver = Receiver(answer, port=args.port).start()
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        finally:
            receiver.stop()


if __name__ == "__main__":
    main()
