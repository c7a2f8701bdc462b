"""A tiny stand-in Kubernetes API server on 127.0.0.1 that replays recorded API behaviour.

It speaks real HTTP/1.1 to the official client (JSON bodies shaped like the API's,
``Status`` objects for errors, chunked watch streams, and the websocket exec
protocol ``v5.channel.k8s.io``) and records every request so tests can assert
exactly what the driver sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Exec", "FakeKubeAPI", "Json", "Recorded", "Watch", "pod", "status"]

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any = None


@dataclass
class Json:
    code: int
    body: Any


@dataclass
class Watch:
    """A chunked watch response: one JSON event per line, then the stream ends."""

    events: list[dict[str, Any]]


@dataclass
class Exec:
    """A websocket exec session: optional stdin to read, frames to send, then a final Status."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    read_stdin: bool = False
    stdin_seen: list[bytes] = field(default_factory=list)


Reply = Json | Watch | Exec | str
Route = tuple[str, re.Pattern[str], Callable[[Recorded], Reply]]


def status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A ``Status`` failure body exactly as the API server returns it."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def pod(
    name: str,
    k8s_ns: str,
    labels: dict[str, str],
    *,
    phase: str = "Running",
    ready: bool = True,
    waiting: str | None = None,
    deleting: bool = False,
    resource_version: str = "1",
) -> dict[str, Any]:
    """A Pod object as the API returns it (only the fields the driver reads, plus realistic metadata)."""
    state: dict[str, Any] = {"running": {"startedAt": "2025-01-01T00:00:00Z"}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": f"{waiting} for image"}}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": k8s_ns,
        "uid": f"uid-{name}",
        "resourceVersion": resource_version,
        "creationTimestamp": "2025-01-01T00:00:00Z",
        "labels": labels,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-01T00:01:00Z"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {"containers": [{"name": "sandbox", "image": "busybox:1.36"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "sandbox",
                    "ready": ready,
                    "restartCount": 0,
                    "image": "busybox:1.36",
                    "imageID": "",
                    "state": state,
                }
            ],
        },
    }


class FakeKubeAPI:
    """Routes (method, path regex) to recorded replies; unmatched requests get a 404 Status."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: list[Route] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def on(self, method: str, path: str, reply: Reply | Callable[[Recorded], Reply]) -> None:
        """Answer ``method`` on paths fully matching the regex ``path``; later routes win."""
        responder = reply if callable(reply) else (lambda _req, r=reply: r)
        with self._lock:
            self._routes.insert(0, (method, re.compile(path), responder))

    def on_sequence(self, method: str, path: str, replies: list[Reply]) -> None:
        """Answer successive matching requests with successive replies (the last one repeats)."""
        pending = list(replies)

        def next_reply(_req: Recorded) -> Reply:
            return pending.pop(0) if len(pending) > 1 else pending[0]

        self.on(method, path, next_reply)

    def calls(self, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method]

    # -- serving ---------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        req = Recorded(h.command, parts.path, parse_qs(parts.query), body)
        with self._lock:
            self.requests.append(req)
            routes = list(self._routes)
        for method, pattern, responder in routes:
            if method == h.command and pattern.fullmatch(parts.path):
                reply = responder(req)
                break
        else:
            reply = Json(
                404, status(404, "NotFound", f"the server could not find the requested resource ({parts.path})")
            )
        if isinstance(reply, Json):
            _send(h, reply.code, "application/json", json.dumps(reply.body).encode())
        elif isinstance(reply, str):
            _send(h, 200, "text/plain", reply.encode())
        elif isinstance(reply, Watch):
            _send_watch(h, reply)
        else:
            _serve_exec(h, reply)


def _send(h: BaseHTTPRequestHandler, code: int, content_type: str, payload: bytes) -> None:
    h.send_response(code)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(payload)))
    h.end_headers()
    h.wfile.write(payload)


def _send_watch(h: BaseHTTPRequestHandler, reply: Watch) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for event in reply.events:
        line = json.dumps(event).encode() + b"\n"
        h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        h.wfile.flush()
    h.wfile.write(b"0\r\n\r\n")
    h.wfile.flush()
    h.close_connection = True


def _frame(payload: bytes, opcode: int = 0x2) -> bytes:
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 65536:
        head += bytes([126]) + struct.pack(">H", len(payload))
    else:
        head += bytes([127]) + struct.pack(">Q", len(payload))
    return head + payload


def _read_frame(h: BaseHTTPRequestHandler) -> tuple[int, bytes]:
    b0, b1 = h.rfile.read(2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack(">H", h.rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", h.rfile.read(8))[0]
    mask = h.rfile.read(4) if b1 & 0x80 else b"\0\0\0\0"
    data = h.rfile.read(length)
    return b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(data))


def _serve_exec(h: BaseHTTPRequestHandler, reply: Exec) -> None:
    key = h.headers["Sec-WebSocket-Key"]
    accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
    h.send_response(101, "Switching Protocols")
    h.send_header("Upgrade", "websocket")
    h.send_header("Connection", "Upgrade")
    h.send_header("Sec-WebSocket-Accept", accept)
    h.send_header("Sec-WebSocket-Protocol", "v5.channel.k8s.io")
    h.end_headers()
    h.wfile.flush()
    if reply.read_stdin:
        # v5: channel 0 carries stdin; a [255, 0] frame closes it.
        while True:
            _, data = _read_frame(h)
            if data[:2] == b"\xff\x00":
                break
            reply.stdin_seen.append(data[1:])
    if reply.stdout:
        h.wfile.write(_frame(b"\x01" + reply.stdout))
    if reply.stderr:
        h.wfile.write(_frame(b"\x02" + reply.stderr))
    if reply.exit_code == 0:
        final: dict[str, Any] = {"metadata": {}, "status": "Success"}
    else:
        final = {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {reply.exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(reply.exit_code)}]},
        }
    h.wfile.write(_frame(b"\x03" + json.dumps(final).encode()))
    h.wfile.write(_frame(struct.pack(">H", 1000), opcode=0x8))
    h.wfile.flush()
    h.close_connection = True
