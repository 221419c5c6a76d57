"""HTTP front end (``http.server``) and the ``GraphEmulator`` Python API."""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .engine import Engine

ADMIN_PREFIX = "/__admin"
SAVE_EVERY = 0.2  # seconds: at most this often a --state file is rewritten after changes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    engine: Engine
    open_sockets: set[socket.socket]
    sockets_lock: threading.Lock

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # a client went away: normal for drops, benchmarks and killed tests
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn): slow on some hosts. Skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GraphEmulator/1.0"
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)
        self.server.engine.conn_opened()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            with self.server.sockets_lock:
                self.server.open_sockets.discard(self.connection)
            self.server.engine.conn_closed()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "private, no-cache, no-store, must-revalidate")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        # Headers and body in one write: two small writes trip Nagle + delayed ACK (~40 ms a call).
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        if body:
            self._headers_buffer.append(body)  # type: ignore[attr-defined]
        self.flush_headers()

    def _handle(self) -> None:
        engine = self.server.engine
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        if url.path == ADMIN_PREFIX or url.path.startswith(ADMIN_PREFIX + "/"):
            status, obj = engine.admin(
                self.command,
                url.path[len(ADMIN_PREFIX) :],
                dict(parse_qsl(url.query, keep_blank_values=True)),
                raw,
            )
            self._send(status, {}, json.dumps(obj).encode())
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = self.headers.get("Host") or f"{self.server.server_name}:{self.server.server_port}"
        result = engine.handle_http(self.command, url.path, url.query, headers, raw, f"http://{host}")
        if result.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(result.status, result.headers, result.body)


class GraphEmulator:
    """A local Graph API emulator. ``with GraphEmulator(port=0) as emu: emu.url``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: list[str] | None = None,
        app_secret: str | None = None,
        latency: float = 0.0,
        null_fraction: float = 0.0,
        state_file: str | None = None,
        async_pace: float = 200.0,
    ) -> None:
        self.host = host
        self.port = port
        self.engine = Engine(
            tokens=list(tokens) if tokens else None,
            app_secret=app_secret,
            latency=latency,
            null_fraction=null_fraction,
            async_pace=async_pace,
            state_file=state_file,
        )
        self._server: _Server | None = None
        self._url: str | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        if self._server is not None:
            self._url = f"http://{self.host}:{self._server.server_port}"
        if self._url is None:
            raise RuntimeError("the emulator is not started")
        return self._url

    def start(self) -> GraphEmulator:
        if self._server is not None:
            return self
        self.engine.load_state()
        server = _Server((self.host, self.port), _Handler, bind_and_activate=True)
        server.engine = self.engine
        server.open_sockets = set()
        server.sockets_lock = threading.Lock()
        self._server = server
        self.engine.base_url = self.url
        self._stop.clear()
        self._threads = [
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="emulator-http", daemon=True
            ),
            threading.Thread(target=self._process_loop, name="emulator-async", daemon=True),
            threading.Thread(target=self._save_loop, name="emulator-state", daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.engine.resume_notifications()
        return self

    def _process_loop(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.engine.tick()
            except Exception:  # keep processing whatever happens to one tick
                traceback.print_exc()

    def _save_loop(self) -> None:
        while not self._stop.wait(0.05):
            eng = self.engine
            if eng.state_file and eng.store.save_due(SAVE_EVERY):
                try:
                    eng.save_state()
                except OSError:
                    pass

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            socks = list(server.open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=2)
        self._threads = []
        self._server = None
        if self.engine.state_file:
            self.engine.save_state()

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ admin API in Python

    def reset(self) -> None:
        self.engine.reset()

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.engine.configure(changes)

    def inject_fault(self, type: str, count: int = 1, **kwargs: Any) -> list[dict[str, Any]]:
        with self.engine.lock:
            self.engine.faults.add({"type": type, "count": count, **kwargs})
            return self.engine.faults.listing()

    def clear_faults(self) -> None:
        with self.engine.lock:
            self.engine.faults.clear()

    def counters(self) -> dict[str, Any]:
        return self.engine.admin("GET", "counters", {}, b"")[1]

    def calls(self) -> list[dict[str, Any]]:
        return self.engine.admin("GET", "calls", {}, b"")[1]["calls"]

    def objects(self, type: str | None = None) -> list[dict[str, Any]]:
        return self.engine.admin("GET", "objects", {"type": type} if type else {}, b"")[1]["objects"]

    def notifications(self) -> list[dict[str, Any]]:
        return self.engine.admin("GET", "notifications", {}, b"")[1]["notifications"]
