"""A local stand-in for Numerai's API on 127.0.0.1, for tests that drive the real numerapi client.

It speaks the GraphQL shapes numerapi sends (``{"query": ..., "variables": ...}`` posted to the API
URL, answered with ``{"data": ...}`` or ``{"errors": [...]}``) and serves files over HTTP.
Tests point numerapi at it with ``monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL",
server.url)``. Nothing here leaves the machine.

Built-in GraphQL fields: ``listDatasets``, ``dataset`` (a URL on this server), ``rounds``.
:meth:`FakeNumerai.serve_dataset` offers a synthetic v5 dataset under Numerai's names
(``v5.3/train.parquet``, ``v5.3/live_benchmark_models.parquet``, ...), every file Numerai lists
for a version, so ``data_source="numerai"`` runs against it the same code as against Numerai.
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

The daily round (issue 11; :meth:`FakeNumerai.enable_daily`, a separate block below): rounds
with open/close times (``open_round`` / ``close_round``), an account with models by name and
API keys checked on every authorized call, prediction upload (``submission_upload_auth``, PUT,
``create_submission``), model upload (``computePickleUploadAuth``, PUT,
``createComputePickleUpload``), ``computePickleDataVersions``, ``computePickleDockerImages``,
``submissionScores`` and ``roundScoreConfigs`` with the round's payout multipliers,
``submissions`` (numerapi's ``submission_ids``).
Knob: ``server.daily.fail_put`` (status codes for the next PUTs, whatever the path).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
        self.daily: DailyState | None = None  # set by enable_daily()

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

    def enable_daily(self, **options: Any) -> DailyState:
        """Serve the daily-round fields (see :class:`DailyState` at the end of this module)."""
        self.daily = DailyState(**options)
        self.daily.install(self)
        return self.daily

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

    def serve_dataset(self, directory: str | os.PathLike, version: str | None = None) -> list[str]:
        """Offer every file of a synthetic v5 dataset directory as ``<version>/<name>``.

        ``version`` defaults to the directory's name (``v5.3``). Hidden files (the generator's
        marker) are not offered, as Numerai lists none. Returns the names now listed.
        """
        root = Path(directory)
        version = version or root.name
        names = []
        for path in sorted(root.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                self.files[f"{version}/{path.name}"] = path.read_bytes()
                names.append(f"{version}/{path.name}")
        return names

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
                if fake.daily is not None and fake.daily.fail_put:  # daily block's knob
                    self._send(fake.daily.fail_put.pop(0), b"injected")
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


# == the daily round (issue 11) ===================================================================
def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class DailyState:
    """Rounds, the account's models, uploads and scores, as the daily commands see them.

    ``public_id``/``secret_key``: the only keys accepted (``Authorization: Token pub$secret``).
    ``models``: model name -> id. ``rounds``: round dicts with ``number``, ``openTime``,
    ``closeStakingTime``, ``closeTime``, ``payoutFactor`` (ISO strings); the last one is current.
    ``submissions``/``model_uploads``: what ``create_submission``/``createComputePickleUpload``
    received (with the bytes PUT for it). ``scores``: model id -> ``submissionScores`` rows.
    """

    public_id: str = "PUBLICdaily"
    secret_key: str = "SECRETdaily"
    models: dict[str, str] = field(default_factory=lambda: {"my_model": "model-id-1"})
    rounds: list[dict[str, Any]] = field(default_factory=list)
    corr_multiplier: float = 0.5
    mmc_multiplier: float = 2.0
    data_versions: dict[str, str] = field(
        default_factory=lambda: {"v5.2": "11111111-1111-4111-8111-111111111111"}
    )
    docker_images: dict[str, str] = field(
        default_factory=lambda: {
            "Python 3.11": "22222222-2222-4222-8222-222222222222",
            "Python 3.12": "33333333-3333-4333-8333-333333333333",
        }
    )
    submissions: list[dict[str, Any]] = field(default_factory=list)
    model_uploads: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_put: list[int] = field(default_factory=list)
    upcoming: dict[str, Any] | None = None  # the next round, once the current one closed
    _pending: dict[str, str] = field(default_factory=dict)  # upload filename -> PUT path
    _server: Any = None

    # -- rounds ---------------------------------------------------------------------------------
    def open_round(self, number: int, hours_left: float = 20.0, payout_factor: float = 1.0) -> None:
        """Round ``number`` opened an hour ago and takes submissions for ``hours_left`` more."""
        now = datetime.now(UTC)
        self.rounds.append(
            {
                "number": number,
                "openTime": _iso(now - timedelta(hours=1)),
                "closeStakingTime": _iso(now + timedelta(hours=hours_left)),
                "closeTime": _iso(now + timedelta(hours=hours_left)),
                "payoutFactor": str(payout_factor),
            }
        )
        if self._server is not None:
            self._server.round_number = number

    def close_round(self, next_opens_in_hours: float = 5.0) -> None:
        """The current round's deadline passed; an upcoming round opens later."""
        now = datetime.now(UTC)
        current = self.rounds[-1]
        current["closeStakingTime"] = _iso(now - timedelta(hours=1))
        current["closeTime"] = _iso(now - timedelta(hours=1))
        self.upcoming = {
            "number": current["number"] + 1,
            "openTime": _iso(now + timedelta(hours=next_opens_in_hours)),
            "closeStakingTime": _iso(now + timedelta(hours=next_opens_in_hours + 24)),
            "closeTime": _iso(now + timedelta(hours=next_opens_in_hours + 24)),
            "payoutFactor": "1.0",
        }

    def _round_record(self, rnd: dict[str, Any]) -> dict[str, Any]:
        configs = [
            {
                "id": f"c{rnd['number']}-corr",
                "scoreConfigId": "corr",
                "name": "v2_corr20",
                "displayName": "CORR20v2",
                "isPayout": True,
                "defaultMultiplier": self.corr_multiplier,
                "payoutFactor": rnd["payoutFactor"],
                "scoringStart": None,
                "scoringEnd": None,
            },
            {
                "id": f"c{rnd['number']}-mmc",
                "scoreConfigId": "mmc",
                "name": "mmc",
                "displayName": "MMC",
                "isPayout": True,
                "defaultMultiplier": self.mmc_multiplier,
                "payoutFactor": rnd["payoutFactor"],
                "scoringStart": None,
                "scoringEnd": None,
            },
        ]
        return {
            "id": f"round-{rnd['number']}",
            "tournament": 8,
            **rnd,
            "roundScoreConfigs": configs,
        }

    def _rounds(self, variables: dict, headers: dict) -> list[dict[str, Any]]:
        number = variables.get("number")
        status = variables.get("status")
        if status == "UPCOMING":
            return [self._round_record(self.upcoming)] if self.upcoming else []
        if number == 0:
            if not self.rounds:  # what Numerai answers between rounds
                raise GraphQLError("Current round not open for submissions")
            return [self._round_record(self.rounds[-1])]
        if number is not None:
            return [self._round_record(r) for r in self.rounds if r["number"] == number]
        return [self._round_record(r) for r in reversed(self.rounds)]

    # -- auth -----------------------------------------------------------------------------------
    def _authorize(self, headers: dict) -> None:
        if headers.get("Authorization") != f"Token {self.public_id}${self.secret_key}":
            # like the real API, the message does not echo the key
            raise GraphQLError("You must be authenticated to perform this action")

    def _model_id(self, variables: dict) -> str:
        model_id = variables.get("modelId")
        if model_id not in self.models.values():
            raise GraphQLError(f"model {model_id} not found")
        return model_id

    # -- fields ---------------------------------------------------------------------------------
    def install(self, server: FakeNumerai) -> None:
        self._server = server
        if self.rounds:
            server.round_number = self.rounds[-1]["number"]
        server.graphql.update(
            {
                "rounds": self._rounds,
                "account": self._account,
                "submission_upload_auth": self._upload_auth("submissions"),
                "create_submission": self._create_submission,
                "computePickleUploadAuth": self._upload_auth("pickles"),
                "createComputePickleUpload": self._create_model_upload,
                "computePickleDataVersions": self._named(self.data_versions),
                "computePickleDockerImages": self._named(self.docker_images),
                "submissionScores": self._submission_scores,
                "submissions": self._submission_list,
            }
        )

    def _account(self, variables: dict, headers: dict) -> dict[str, Any]:
        self._authorize(headers)
        return {
            "username": "tester",
            "models": [{"id": i, "name": n, "tournament": 8} for n, i in self.models.items()],
        }

    def _upload_auth(self, kind: str) -> Callable[[dict, dict], dict[str, str]]:
        def handler(variables: dict, headers: dict) -> dict[str, str]:
            self._authorize(headers)
            if variables.get("modelId") is not None:
                self._model_id(variables)
            filename = f"{uuid.uuid4().hex}-{variables['filename']}"
            path = f"/upload/{kind}/{filename}"
            self._pending[filename] = path
            return {"filename": filename, "url": f"{self._server.url}{path}"}

        return handler

    def _received(self, filename: str) -> bytes | None:
        """The bytes PUT for ``filename``; None when the PUT failed. Like Numerai (issue 13,
        item 2), the create step still answers with an id: only the PUT's status tells."""
        if filename not in self._pending:
            raise GraphQLError(f"unknown upload {filename}")
        return self._server.uploads.get(self._pending[filename])

    def _current_open_round(self) -> int:
        if not self.rounds:
            raise GraphQLError("Current round not open for submissions")
        rnd = self.rounds[-1]
        now = _iso(datetime.now(UTC))
        if not rnd["openTime"] <= now < rnd["closeTime"]:
            raise GraphQLError("Current round not open for submissions")
        return rnd["number"]

    def _create_submission(self, variables: dict, headers: dict) -> dict[str, str]:
        self._authorize(headers)
        model_id = self._model_id(variables)
        content = self._received(variables["filename"])
        number = self._current_open_round()
        sub_id = f"submission-{len(self.submissions) + 1}"
        self.submissions.append(
            {
                "id": sub_id,
                "model_id": model_id,
                "round": number,
                "content": content,
                "filename": variables["filename"],
                "insertedAt": _iso(datetime.now(UTC)),
            }
        )
        return {"id": sub_id}

    def _submission_list(self, variables: dict, headers: dict) -> list[dict[str, Any]]:
        """numerapi's ``submission_ids``: the model's submissions (id, filename, insertedAt)."""
        self._authorize(headers)
        model_id = self._model_id(variables)
        return [
            {"id": s["id"], "filename": s["filename"], "insertedAt": s["insertedAt"]}
            for s in self.submissions
            if s["model_id"] == model_id
        ]

    def _create_model_upload(self, variables: dict, headers: dict) -> dict[str, str]:
        self._authorize(headers)
        model_id = self._model_id(variables)
        content = self._received(variables["filename"])
        for name, ids in (
            ("dataVersionId", self.data_versions),
            ("dockerImageId", self.docker_images),
        ):
            value = variables.get(name)
            if value is not None and value not in ids.values():
                raise GraphQLError(f"unknown {name} {value}")
        upload_id = f"model-upload-{len(self.model_uploads) + 1}"
        self.model_uploads.append(
            {
                "id": upload_id,
                "model_id": model_id,
                "content": content,
                "data_version": variables.get("dataVersionId"),
                "docker_image": variables.get("dockerImageId"),
            }
        )
        return {"id": upload_id}

    def _named(self, mapping: dict[str, str]) -> Callable[[dict, dict], list[dict[str, str]]]:
        def handler(variables: dict, headers: dict) -> list[dict[str, str]]:
            self._authorize(headers)
            return [{"name": n, "id": i} for n, i in mapping.items()]

        return handler

    def _submission_scores(self, variables: dict, headers: dict) -> list[dict[str, Any]]:
        rows = self.scores.get(self._model_id(variables), [])
        last = variables.get("lastNRounds")
        if last:
            keep = sorted({r["roundNumber"] for r in rows})[-last:]
            rows = [r for r in rows if r["roundNumber"] in keep]
        return rows

    def add_score(self, model_name: str, round_number: int, name: str, value: float) -> None:
        """One resolved ``submissionScores`` row (``name``: e.g. ``v2_corr20``, ``mmc``)."""
        resolve = _iso(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=round_number))
        self.scores.setdefault(self.models[model_name], []).append(
            {
                "roundId": f"round-{round_number}",
                "submissionId": "s",
                "roundNumber": round_number,
                "roundResolveTime": resolve,
                "roundScoreTime": resolve,
                "roundCloseStakingTime": resolve,
                "value": value,
                "percentile": 0.5,
                "displayName": name,
                "version": "2",
                "date": resolve,
                "day": 20,
                "resolveDate": resolve,
                "resolved": True,
            }
        )
