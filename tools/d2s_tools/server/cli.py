# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``d2s-clearml-server``: run the local ClearML-compatible server (API, fileserver, web page)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

from .api import App, ServerConfig
from .httpd import ApiHandler, FilesHandler, Server, WebHandler, serve_in_thread
from .store import DataDirBusy, Store
from .util import atomic_write

DEFAULT_ACCESS_KEY = "d2s-access-key"
DEFAULT_SECRET_KEY = "d2s-secret-key"  # noqa: S105 - documented local default, override it on shared hosts
DEFAULT_API_PORT = 8008
DEFAULT_WEB_PORT = 8080
DEFAULT_FILES_PORT = 8081

LOG = logging.getLogger("d2s_tools.server")


class LocalServer:
    """The three listeners and the store of one server instance, in this process."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        host: str = "127.0.0.1",
        api_port: int = DEFAULT_API_PORT,
        files_port: int = DEFAULT_FILES_PORT,
        web_port: int = DEFAULT_WEB_PORT,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        public_host: str | None = None,
        require_files_auth: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.store = Store(self.data_dir)
        files_root = self.data_dir / "files"
        files_root.mkdir(parents=True, exist_ok=True)
        # uploads are written here, then renamed into files/ (same file system) once complete
        upload_tmp = self.data_dir / "uploads.tmp"
        upload_tmp.mkdir(parents=True, exist_ok=True)
        remove_partial_uploads(upload_tmp)
        ssl_context = None
        if tls_cert:
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(tls_cert, tls_key or None)
        scheme = "https" if ssl_context else "http"
        advertised = public_host or (host if host not in ("", "0.0.0.0", "::") else "127.0.0.1")  # noqa: S104
        if ":" in advertised and not advertised.startswith("["):
            advertised = f"[{advertised}]"
        config = ServerConfig(access_key=access_key, secret_key=secret_key)
        self.app = App(self.store, config)
        try:
            self.api = Server((host, api_port), ApiHandler, self.app, ssl_context)
            self.files = Server(
                (host, files_port),
                FilesHandler,
                self.app,
                ssl_context,
                files_root=files_root,
                upload_tmp=upload_tmp,
                require_auth=require_files_auth,
            )
            self.web = Server((host, web_port), WebHandler, self.app, ssl_context)
        except OSError:
            self.close()
            raise
        config.api_url = f"{scheme}://{advertised}:{self.api.server_address[1]}"
        config.files_url = f"{scheme}://{advertised}:{self.files.server_address[1]}"
        config.web_url = f"{scheme}://{advertised}:{self.web.server_address[1]}"
        self._threads: list[threading.Thread] = []

    @property
    def urls(self) -> dict[str, str]:
        config = self.app.config
        return {"api": config.api_url, "web": config.web_url, "files": config.files_url}

    def start(self) -> None:
        for name, server in (("api", self.api), ("files", self.files), ("web", self.web)):
            self._threads.append(serve_in_thread(server, f"d2s-{name}"))

    def close(self) -> None:
        for name in ("api", "files", "web"):
            server = getattr(self, name, None)
            if server is None:
                continue
            if self._threads_started():
                server.shutdown()
            server.server_close()
        self.store.close()

    def _threads_started(self) -> bool:
        return bool(getattr(self, "_threads", None))


def remove_partial_uploads(tmp_dir: Path) -> int:
    """Delete what uploads cut short by a crash left in the upload staging directory."""
    removed = 0
    for path in tmp_dir.iterdir():
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    if removed:
        LOG.warning("removed %d partial upload(s) left by an earlier crash", removed)
    return removed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d2s-clearml-server",
        description="Local ClearML-API-compatible server: REST API, fileserver and a placeholder web page. "
        "Data persists in --data-dir (SQLite + files).",
    )
    parser.add_argument("--data-dir", required=True, help="directory for the database and the uploaded files")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--public-host",
        default=None,
        help="host name written into the advertised URLs (default: --host, or 127.0.0.1 for a wildcard)",
    )
    parser.add_argument("--api-port", type=int, default=DEFAULT_API_PORT, help="API port, 0 = any free port")
    parser.add_argument("--files-port", type=int, default=DEFAULT_FILES_PORT, help="fileserver port, 0 = any")
    parser.add_argument("--web-port", type=int, default=DEFAULT_WEB_PORT, help="web page port, 0 = any")
    parser.add_argument(
        "--access-key",
        default=os.environ.get("D2S_SERVER_ACCESS_KEY", DEFAULT_ACCESS_KEY),
        help="API access key (default: $D2S_SERVER_ACCESS_KEY or %(default)s)",
    )
    parser.add_argument(
        "--secret-key",
        default=os.environ.get("D2S_SERVER_SECRET_KEY", DEFAULT_SECRET_KEY),
        help="API secret key (default: $D2S_SERVER_SECRET_KEY or the documented default)",
    )
    parser.add_argument("--tls-cert", default=None, help="PEM certificate (chain): serve HTTPS on all ports")
    parser.add_argument(
        "--tls-key", default=None, help="PEM private key of --tls-cert (if not in the same file)"
    )
    parser.add_argument(
        "--require-files-auth",
        action="store_true",
        help="refuse fileserver requests without a valid API token or key pair (default: allow anonymous)",
    )
    parser.add_argument("--ready-file", default=None, help="write the JSON ready line to this file as well")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.tls_key and not args.tls_cert:
        print("d2s-clearml-server: --tls-key needs --tls-cert", file=sys.stderr)
        return 2
    try:
        server = LocalServer(
            args.data_dir,
            host=args.host,
            api_port=args.api_port,
            files_port=args.files_port,
            web_port=args.web_port,
            access_key=args.access_key,
            secret_key=args.secret_key,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            public_host=args.public_host,
            require_files_auth=args.require_files_auth,
        )
    except DataDirBusy as exc:
        print(f"d2s-clearml-server: {exc}", file=sys.stderr)
        return 3
    except (OSError, ssl.SSLError) as exc:
        print(f"d2s-clearml-server: cannot start: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    ready = dict(server.urls, pid=os.getpid(), data_dir=str(server.data_dir), access_key=args.access_key)
    line = json.dumps(ready)
    if args.ready_file:
        atomic_write(Path(args.ready_file), (line + "\n").encode("utf-8"))
    print(line, flush=True)
    while not stop.wait(3600):
        pass
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
