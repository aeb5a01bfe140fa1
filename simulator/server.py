"""Real HTTP on 127.0.0.1: one ThreadingHTTPServer (and thread) per target, each serving ``/metrics``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A page function returns (status, body) for a target id.
PageFn = Callable[[str], tuple[int, str]]


def _handler(target_id: str, page: PageFn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._send(404, "not found: only /metrics is served here\n")
                return
            status, body = page(target_id)
            self._send(status, body)

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes are frequent: keep stderr quiet."""

    return Handler


class TargetServers:
    """Every target's server; ``start`` binds them (port 0 = a free port), ``stop`` closes them all."""

    def __init__(self, page: PageFn) -> None:
        self.page = page
        self.servers: dict[str, ThreadingHTTPServer] = {}
        self.threads: dict[str, threading.Thread] = {}

    def start(self, wanted: dict[str, int]) -> dict[str, int]:
        """Bind one server per target id (``wanted`` maps id -> port, 0 for any); return the bound ports."""
        try:
            for tid, port in wanted.items():
                srv = ThreadingHTTPServer(("127.0.0.1", port), _handler(tid, self.page))
                srv.daemon_threads = True
                self.servers[tid] = srv
        except OSError:
            self.stop()
            raise
        for tid, srv in self.servers.items():
            t = threading.Thread(
                target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name=f"sim-{tid}", daemon=True
            )
            t.start()
            self.threads[tid] = t
        return {tid: srv.server_address[1] for tid, srv in self.servers.items()}

    def stop(self) -> None:
        """Shut down every server and join its thread."""
        for tid, srv in self.servers.items():
            t = self.threads.get(tid)
            if t is not None and t.is_alive():
                srv.shutdown()  # blocks until serve_forever returns
                t.join(timeout=5)
            srv.server_close()
        self.servers, self.threads = {}, {}
