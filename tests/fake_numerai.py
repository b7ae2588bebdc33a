"""A local stand-in for Numerai's API on 127.0.0.1, for tests that drive the real numerapi client.

It speaks the GraphQL shapes numerapi sends (``{"query": ..., "variables": ...}`` posted to the API
URL, answered with ``{"data": ...}`` or ``{"errors": [...]}``) and serves files over HTTP.
Tests point numerapi at it with ``monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL",
server.url)``. Nothing here leaves the machine.

Built-in GraphQL fields: ``listDatasets``, ``dataset`` (a URL on this server), ``rounds``.
Register more with ``server.graphql["fieldName"] = handler`` where
``handler(variables, headers) -> data`` and raises :class:`GraphQLError` for an error answer.

Failure injection:
- ``server.fail_post``: list of HTTP status codes returned to the next GraphQL posts, in order;
- ``server.fail_get[path]``: list of status codes for the next GETs of ``path``;
- ``server.fail_put[path]``: list of status codes for the next PUTs of ``path`` (file uploads);
- ``server.truncate[path]``: number of bytes after which a GET of ``path`` is cut off (the full
  Content-Length is announced, then the connection closes);
- corrupted bodies, servers that never answer, stalled bodies, announced checksums: see the
  "data reliability knobs" block of :class:`FakeNumerai`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_FIELD = re.compile(r"\{\s*(\w+)")


class GraphQLError(Exception):
    """Raised by a handler to answer with ``{"errors": [{"message": ...}]}``."""


class FakeNumerai:
    def __init__(self, round_number: int = 1000) -> None:
        self.round_number = round_number
        self.files: dict[str, bytes] = {}  # dataset name ("v5.2/train.parquet") -> content
        self.uploads: dict[str, bytes] = {}  # path -> bytes received by PUT
        self.requests: list[dict[str, Any]] = []  # every request: method, path, headers, body
        self.graphql: dict[str, Callable[[dict, dict], Any]] = {
            "listDatasets": lambda v, h: sorted(self.files),
            "dataset": self._dataset_url,
            "rounds": lambda v, h: [{"number": self.round_number}],
        }
        self.fail_post: list[int] = []
        self.fail_get: dict[str, list[int]] = {}
        self.truncate: dict[str, int] = {}
        self._init_reliability_knobs()
        # -- reliability (issue 13): PUT failures, e.g. ``fail_put["/upload/x"] = [500]`` ------------
        self.fail_put: dict[str, list[int]] = {}
        # -- end reliability ------------------------------------------------------------------------
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeNumerai:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()  # ends the handlers the reliability knobs hold
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeNumerai:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def file_url(self, name: str) -> str:
        return f"{self.url}/files/{name}"

    def _dataset_url(self, variables: dict, headers: dict) -> str:
        name = variables.get("filename")
        if name not in self.files:
            raise GraphQLError(f"dataset {name} not found")
        return self.file_url(name)

    def graphql_requests(self, field: str) -> list[dict[str, Any]]:
        """The recorded GraphQL posts whose first field is ``field``."""
        return [r for r in self.requests if r.get("field") == field]

    # == data reliability knobs (download verification and timeouts) ==========================
    # - ``hang_post = True``: GraphQL posts are read and never answered (until the server stops);
    # - ``corrupt[path] = (offset, n)``: a GET of ``path`` sends ``n`` bytes from ``offset`` inverted,
    #   the same Content-Length, the rest (a parquet footer) intact;
    # - ``stall[path] = n``: a GET of ``path`` sends its headers and ``n`` bytes, then nothing;
    # - ``announce[path] = (header, data)``: a GET of ``path`` announces the checksum of ``data``
    #   in ``header`` ("Content-MD5" or "x-amz-checksum-sha256", base64 as S3 does).
    def _init_reliability_knobs(self) -> None:
        self.hang_post = False
        self.corrupt: dict[str, tuple[int, int]] = {}
        self.stall: dict[str, int] = {}
        self.announce: dict[str, tuple[str, bytes]] = {}
        self.released = threading.Event()

    def _knobbed_body(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> bytes:
        """Send the announced checksum header; return the body to send (maybe corrupted)."""
        if path in self.announce:
            header, data = self.announce[path]
            algorithm = "md5" if header == "Content-MD5" else "sha256"
            digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
            handler.send_header(header, digest)
        if path in self.corrupt:
            offset, n = self.corrupt[path]
            flipped = bytes(b ^ 0xFF for b in body[offset : offset + n])
            body = body[:offset] + flipped + body[offset + n :]
        return body

    def _stalled(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> bool:
        """Send the first bytes of a stalled body and hold the connection; True if it stalled."""
        if path not in self.stall:
            return False
        handler.wfile.write(body[: self.stall[path]])
        handler.wfile.flush()
        self.released.wait(60)
        handler.close_connection = True
        return True

    # == end of the data reliability knobs ====================================================

    # -- HTTP ----------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _read_body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_POST(self) -> None:
                body = self._read_body()
                record: dict[str, Any] = {
                    "method": "POST",
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
                fake.requests.append(record)
                if fake.hang_post:  # data reliability knob
                    fake.released.wait(60)
                    return
                if fake.fail_post:
                    self._send(fake.fail_post.pop(0), b'{"error": "injected"}')
                    return
                try:
                    payload = json.loads(body or b"{}")
                except json.JSONDecodeError:
                    self._send(400, b'{"error": "bad json"}')
                    return
                query = payload.get("query") or ""
                variables = payload.get("variables") or {}
                match = _FIELD.search(query)
                field = match.group(1) if match else ""
                record["field"] = field
                record["variables"] = variables
                handler = fake.graphql.get(field)
                if handler is None:
                    answer: dict[str, Any] = {"errors": [{"message": f"unknown field {field}"}]}
                else:
                    try:
                        answer = {"data": {field: handler(variables, dict(self.headers))}}
                    except GraphQLError as err:
                        answer = {"errors": [{"message": str(err)}]}
                self._send(200, json.dumps(answer).encode())

            def do_PUT(self) -> None:
                body = self._read_body()
                fake.requests.append(
                    {
                        "method": "PUT",
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                codes = fake.fail_put.get(self.path) or fake.fail_get.get(self.path)
                if codes:
                    self._send(codes.pop(0), b"injected")
                    return
                fake.uploads[self.path] = body
                self._send(200, b"")

            def do_GET(self) -> None:
                fake.requests.append(
                    {"method": "GET", "path": self.path, "headers": dict(self.headers), "body": b""}
                )
                codes = fake.fail_get.get(self.path)
                if codes:
                    self._send(codes.pop(0), b"injected", "text/plain")
                    return
                if not self.path.startswith("/files/"):
                    self._send(404, b"not found", "text/plain")
                    return
                name = self.path[len("/files/") :]
                content = fake.files.get(name)
                if content is None:
                    self._send(404, b"not found", "text/plain")
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[len("bytes=") :].split("-")[0] or 0)
                part = content[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(part)))
                part = fake._knobbed_body(self, self.path, part)  # data reliability knobs
                self.end_headers()
                if fake._stalled(self, self.path, part):  # data reliability knob
                    return
                cut = fake.truncate.get(self.path)
                if cut is not None:
                    fake.truncate.pop(self.path)
                    self.wfile.write(part[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        return Handler
