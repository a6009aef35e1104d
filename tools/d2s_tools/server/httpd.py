# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP front ends: the API server, the fileserver and a tiny web page, optionally behind TLS."""

from __future__ import annotations

import functools
import html
import json
import logging
import mimetypes
import re
import shutil
import socket
import ssl
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .api import App
from .errors import ApiError
from .files import CHUNK, BadPath, BadUpload, BodyReader, DurableFile, object_name, parse_multipart, safe_path

LOG = logging.getLogger("d2s_tools.server")
_VERSION_RE = re.compile(r"^v\d+(\.\d+)?$")
CONNECTION_TIMEOUT_SEC = 600


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        app: App,
        ssl_context: ssl.SSLContext | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.options = options
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(CONNECTION_TIMEOUT_SEC)
        # headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # the handshake happens on the first read, in the request's own thread
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        LOG.debug("connection from %s failed: %s", client_address, traceback.format_exc())


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Answer 400 (never a dropped connection, never a 5xx) when a handler fails unexpectedly."""

    @functools.wraps(method)
    def wrapper(self: _Base, *args: Any, **kwargs: Any) -> None:
        self._response_started = False
        try:
            method(self, *args, **kwargs)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:  # a 400 with the reason beats a reset connection
            LOG.warning("%s %s failed: %s", self.command, self.path, traceback.format_exc())
            self.close_connection = True
            if not self._response_started:
                self._send_json(400, {"error": f"{type(exc).__name__}: {exc}"})

    return wrapper


class _Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server
    server_version = "d2s-clearml-server"
    _response_started = False

    def send_response(self, code: int, message: str | None = None) -> None:
        self._response_started = True
        super().send_response(code, message)

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)

    @property
    def app(self) -> App:
        return self.server.app

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _reader(self) -> BodyReader:
        length = self.headers.get("Content-Length")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        if length is None and not chunked:
            return BodyReader(self.rfile, 0, False)
        try:
            return BodyReader(self.rfile, int(length) if length is not None else None, chunked)
        except ValueError:
            raise BadUpload("bad Content-Length") from None

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, head: bool = False) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8", head=head)


class ApiHandler(_Base):
    """``/v<version>/<service>.<action>`` (and unversioned ``/auth.login``): GET/POST with a JSON body."""

    @_guarded
    def _handle(self) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts and parts[0] == "api":
            parts = parts[1:]
        version = ""
        if parts and _VERSION_RE.match(parts[0]):
            version = parts.pop(0)[1:]
        endpoint_name = "/".join(parts)
        headers = self._headers()
        try:
            reader = self._reader()
            raw = reader.read_all()
            body = self._parse_body(raw, headers.get("content-type", ""))
        except (BadUpload, ValueError) as exc:
            self.close_connection = True
            status, envelope = self.app.handle(endpoint_name, version, _Invalid(str(exc)), headers)
            self._send_json(status, envelope)
            return
        if isinstance(body, dict):
            for key, value in parse_qsl(url.query, keep_blank_values=True):
                body.setdefault(key, value)
        status, envelope = self.app.handle(endpoint_name, version, body, headers)
        self._send_json(status, envelope, head=self.command == "HEAD")

    @staticmethod
    def _parse_body(raw: bytes, content_type: str) -> Any:
        text = raw.decode("utf-8").strip()
        if not text:
            return {}
        if "json-lines" in content_type or "jsonlines" in content_type or "ndjson" in content_type:
            return {"__jsonlines__": [json.loads(line) for line in text.splitlines() if line.strip()]}
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            # several JSON documents, one per line, without the json-lines content type
            return {"__jsonlines__": [json.loads(line) for line in text.splitlines() if line.strip()]}
        if body is None:
            return {}
        if isinstance(body, list):
            return {"__jsonlines__": body}
        return body

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class _Invalid:
    """A body that could not be parsed: ``App.handle`` turns it into a 400 envelope."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class FilesHandler(_Base):
    """ClearML's fileserver protocol: multipart POST, GET/HEAD/DELETE by path, POST /delete_many."""

    @property
    def root(self) -> Path:
        return self.server.options["files_root"]

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization")
        if not self.server.options.get("require_auth"):
            return True
        if not auth:
            return False
        try:
            return self.app.authenticate(self._headers()) is not None
        except ApiError:
            return False

    def _deny(self) -> None:
        self._send_json(401, {"error": "unauthorized"})

    def _object_path(self) -> Path:
        raw = unquote(urlsplit(self.path).path, errors="surrogateescape")
        return safe_path(self.root, raw)

    @_guarded
    def do_GET(self, head: bool = False) -> None:
        path = urlsplit(self.path).path
        try:
            self._reader().drain()
        except BadUpload:
            self.close_connection = True
        if path in ("", "/"):
            self._send(200, b"OK", "text/plain; charset=utf-8", head=head)
            return
        if not self._authorized():
            self._deny()
            return
        try:
            target = self._object_path()
        except BadPath as exc:
            self._send_json(400, {"error": str(exc)}, head=head)
            return
        if not target.is_file():
            self._send_json(404, {"error": "not found"}, head=head)
            return
        size = target.stat().st_size
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.send_header("Content-Disposition", f"inline; filename*=UTF-8''{_quote_name(target.name)}")
        self.end_headers()
        if head:
            return
        with open(target, "rb") as handle:
            shutil.copyfileobj(handle, self.wfile, CHUNK)

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    @_guarded
    def do_DELETE(self) -> None:
        try:
            self._reader().drain()
        except BadUpload:
            self.close_connection = True
        if not self._authorized():
            self._deny()
            return
        try:
            target = self._object_path()
        except BadPath as exc:
            self._send_json(400, {"error": str(exc)})
            return
        if not target.is_file():
            self._send_json(404, {"error": "not found"})
            return
        target.unlink()
        self._send_json(200, {"deleted": object_name(self.root, target)})

    @_guarded
    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if not self._authorized():
            self.close_connection = True
            self._deny()
            return
        try:
            reader = self._reader()
            if url.path.rstrip("/") == "/delete_many":
                self._delete_many(reader)
                return
            content_type = self.headers.get("Content-Type", "")
            match = re.search(r'boundary="?([^";]+)"?', content_type)
            if "multipart/form-data" not in content_type or not match:
                raise BadUpload("expected a multipart/form-data upload")
            prefix = unquote(url.path, errors="surrogateescape").strip("/")

            def open_part(name: str) -> DurableFile:
                target = safe_path(self.root, f"{prefix}/{name}" if prefix else name)
                return DurableFile(target, self.server.options["upload_tmp"])

            saved = parse_multipart(reader, match.group(1).encode("latin-1"), open_part)
        except (BadUpload, BadPath) as exc:
            self.close_connection = True
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(
            200, [f"{prefix}/{name.lstrip('/')}" if prefix else name.lstrip("/") for name in saved]
        )

    def _delete_many(self, reader: BodyReader) -> None:
        try:
            payload = json.loads(reader.read_all(64 << 20) or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": "expected a JSON body {files: [...]}"})
            return
        deleted: dict[str, bool] = {}
        errors: dict[str, str] = {}
        for name in payload.get("files") or []:
            try:
                target = safe_path(self.root, unquote(str(name)))
            except BadPath as exc:
                errors[str(name)] = str(exc)
                continue
            if target.is_file():
                target.unlink()
                deleted[str(name)] = True
            else:
                errors[str(name)] = "not found"
        self._send_json(200, {"deleted": deleted, "errors": errors})


def _quote_name(name: str) -> str:
    return quote(name, safe="")


class WebHandler(_Base):
    """A placeholder for the ClearML web UI: one page with the server's URLs."""

    @_guarded
    def do_GET(self, head: bool = False) -> None:
        try:
            self._reader().drain()
        except BadUpload:
            self.close_connection = True
        config = self.app.config
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>d2s ClearML server</title></head><body>"
            "<h1>d2s local ClearML-compatible server</h1>"
            "<p>This server has no web UI. Use the ClearML SDK or the REST API.</p><ul>"
            f"<li>API: {html.escape(config.api_url)}</li>"
            f"<li>Files: {html.escape(config.files_url)}</li>"
            "</ul></body></html>"
        ).encode()
        self._send(200, body, "text/html; charset=utf-8", head=head)

    def do_HEAD(self) -> None:
        self.do_GET(head=True)


def serve_in_thread(server: Server, name: str) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True
    )
    thread.start()
    return thread
