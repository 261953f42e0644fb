"""A real HTTP file server on loopback, with Range support and scripted faults.

Faults are queued per path and consumed one per GET request:

- ``"drop"``: send the headers of a full answer, half of the body, then close;
- ``"503"`` (or any status code): answer with that status and no body;
- ``"ignore-range"``: answer 200 with the whole file even if a Range was asked.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    """What the server holds and what it saw."""

    files: dict[str, bytes]
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)  # {"method", "path", "range"}
    base_url: str = ""

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def gets(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == "/" + path.lstrip("/")]


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            rng = self.headers.get("Range")
            served.requests.append({"method": "GET", "path": path, "range": rng})
            queue = served.faults.get(path.lstrip("/"), [])
            fault = queue.pop(0) if queue else None
            body = served.files.get(path.lstrip("/"))
            if body is None:
                return self._status(404)
            if fault and fault.isdigit():
                return self._status(int(fault))
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and fault != "ignore-range":
                start = int(m.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            rest = body[start:]
            self.send_header("Content-Length", str(len(rest)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if fault == "drop":
                self.wfile.write(rest[: len(rest) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(rest)

        def _status(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def serve_files(files: dict[str, bytes]) -> Iterator[Served]:
    """Serve ``files`` ({path: bytes}) on 127.0.0.1 on a free port for the duration of the block."""
    served = Served(files=dict(files))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    server.daemon_threads = True
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
