# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ClearML access for the collection's modules: a small REST client and the fileserver transport.

Private to this collection: not a public API, may change without notice.

Why not the SDK's ``Task``/``Model`` classes here: they keep process-global state (one server per
process, class-level API version, task reuse), retry failed connections forever, and reshape documents
(``export_task`` drops artifacts and status). Export and import need the exact documents, bounded
retries with a clear message, and sometimes two servers in one process (sync-back). The wire protocol
is the one the SDK speaks (see docs/local-server.md): JWT login, versioned ``service.action`` calls,
the ``meta``/``data`` envelope. Storage other than the ClearML fileserver (``s3://`` …) goes through the
SDK's ``StorageManager``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import traceback
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError

try:
    import requests
except ImportError:  # pragma: no cover - requests ships with every clearml install
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

# The API version this collection speaks (the SDK 2.1.x's newest service module); servers claim higher.
API_VERSION = "2.23"
CHUNK = 1024 * 1024
PAGE_SIZE = 500


def _jwt_claims(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError):
        return {}


class ClearmlClient:
    """One ClearML server: API calls and fileserver transfers.

    Connection errors and 5xx answers are retried ``retries`` times with back-off, then raise a
    ``ClearmlModuleError`` that names the server and the call (the SDK would retry forever).
    """

    def __init__(
        self,
        api_host: str,
        access_key: str,
        secret_key: str,
        web_host: str | None = None,
        files_host: str | None = None,
        validate_certs: bool = True,
        ca_path: str | None = None,
        retries: int = 3,
        timeout: float = 60.0,
        storage_credentials: list[dict[str, Any]] | None = None,
    ) -> None:
        if not HAS_REQUESTS:
            raise ClearmlModuleError(
                "The 'requests' Python package is required", exception=REQUESTS_IMPORT_ERROR
            )
        self.api_host = api_host.rstrip("/")
        self.web_host = (web_host or "").rstrip("/") or None
        self.files_host = (files_host or "").rstrip("/") or None
        self._access_key = access_key
        self._secret_key = secret_key
        self.retries = max(0, retries)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = (ca_path or True) if validate_certs else False
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self._token: str | None = None
        self.claims: dict[str, Any] = {}
        self.storage_credentials = list(storage_credentials or [])
        self._storage_ready = False

    # -- environment for the SDK (StorageManager, subprocesses) -----------------------------------
    def sdk_env(self) -> dict[str, str]:
        """The CLEARML_* variables that point the SDK at this server."""
        env = {
            "CLEARML_API_HOST": self.api_host,
            "CLEARML_API_ACCESS_KEY": self._access_key,
            "CLEARML_API_SECRET_KEY": self._secret_key,
        }
        if self.web_host:
            env["CLEARML_WEB_HOST"] = self.web_host
        if self.files_host:
            env["CLEARML_FILES_HOST"] = self.files_host
        if not self.validate_certs:
            env["CLEARML_API_HOST_VERIFY_CERT"] = "0"
        elif self.ca_path:
            env["CLEARML_API_HOST_VERIFY_CERT"] = self.ca_path
            env["REQUESTS_CA_BUNDLE"] = self.ca_path
        return env

    # -- transport ---------------------------------------------------------------------------------
    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(2.0**attempt * 0.25, 5.0))
            try:
                resp = self.session.request(method, url, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise ClearmlModuleError(f"TLS verification failed for {what} at {url}: {exc}") from exc
            except requests.exceptions.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
            return resp
        raise ClearmlModuleError(
            f"ClearML server unreachable for {what} at {url} after {self.retries + 1} tries: {last}"
        )

    def login(self) -> None:
        url = f"{self.api_host}/auth.login"
        resp = self._request("GET", url, "auth.login", auth=(self._access_key, self._secret_key))
        body = self._envelope(resp, "auth.login")
        token = (body or {}).get("token")
        if not token:
            raise ClearmlModuleError(f"ClearML server at {self.api_host} answered auth.login without a token")
        self._token = token
        self.claims = _jwt_claims(token)

    @property
    def server_version(self) -> str | None:
        return self.claims.get("server_version")

    @property
    def server_api_version(self) -> str | None:
        return self.claims.get("api_version")

    def _envelope(self, resp: requests.Response, endpoint: str) -> Any:
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        meta = payload.get("meta", {}) if isinstance(payload, dict) else {}
        code = meta.get("result_code", resp.status_code)
        if code == 401 and endpoint == "auth.login":
            raise ClearmlModuleError(
                f"ClearML server at {self.api_host} rejected the credentials (auth.login)"
            )
        if code not in (200, 202):
            msg = meta.get("result_msg") or resp.text[:300]
            raise ClearmlModuleError(
                f"ClearML call {endpoint} failed at {self.api_host}: {code}/{meta.get('result_subcode', 0)} {msg}",
                endpoint=endpoint,
                result_code=code,
                result_subcode=meta.get("result_subcode", 0),
            )
        return payload.get("data") if isinstance(payload, dict) else None

    def call(self, endpoint: str, body: dict[str, Any] | None = None) -> Any:
        """Call ``service.action`` and return its ``data``; raises ``ClearmlModuleError`` on any failure."""
        if self._token is None:
            self.login()
        url = f"{self.api_host}/v{API_VERSION}/{endpoint}"
        for attempt in (0, 1):
            resp = self._request(
                "POST", url, endpoint, json=body or {}, headers={"Authorization": f"Bearer {self._token}"}
            )
            if resp.status_code == 401 and attempt == 0:
                self.login()
                continue
            return self._envelope(resp, endpoint)
        raise ClearmlModuleError(f"ClearML call {endpoint} was refused at {self.api_host} after a new login")

    def call_lines(self, endpoint: str, items: list[dict[str, Any]]) -> Any:
        """Call an endpoint that takes JSON lines (``events.add_batch``), as the SDK sends it."""
        if self._token is None:
            self.login()
        url = f"{self.api_host}/v{API_VERSION}/{endpoint}"
        payload = "\n".join(json.dumps(item) for item in items)
        for attempt in (0, 1):
            resp = self._request(
                "POST",
                url,
                endpoint,
                data=payload.encode("utf-8"),
                headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json-lines"},
            )
            if resp.status_code == 401 and attempt == 0:
                self.login()
                continue
            return self._envelope(resp, endpoint)
        raise ClearmlModuleError(f"ClearML call {endpoint} was refused at {self.api_host} after a new login")

    def get_all(self, endpoint: str, key: str, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Page through ``<service>.get_all``-style calls; ``key`` is the list's name in ``data``."""
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            data = self.call(endpoint, {**(body or {}), "page": page, "page_size": PAGE_SIZE}) or {}
            items = data.get(key) or []
            out.extend(items)
            if len(items) < PAGE_SIZE:
                return out
            page += 1

    # -- files -----------------------------------------------------------------------------------------
    def is_files_url(self, url: str) -> bool:
        return bool(self.files_host) and url.startswith(self.files_host + "/")

    def _auth_headers(self, url: str) -> dict[str, str]:
        if self.is_files_url(url):
            if self._token is None:
                self.login()
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def download(self, url: str, dest: str | os.PathLike[str]) -> tuple[str, int]:
        """Stream ``url`` to ``dest`` (atomically); return (sha256, size). http(s) directly, other schemes
        (s3://, gs://, azure://) through the SDK's StorageManager."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme in ("http", "https"):
            resp = self._request("GET", url, "download", stream=True, headers=self._auth_headers(url))
            if resp.status_code != 200:
                raise ClearmlModuleError(f"Download of {url} failed: HTTP {resp.status_code}", url=url)
            digest = hashlib.sha256()
            size = 0
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_content(CHUNK):
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            return digest.hexdigest(), size
        if scheme == "file":
            src = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
            if not src.is_file():
                raise ClearmlModuleError(
                    f"Model or artifact file {url} does not exist on the export host", url=url
                )
            return _copy_hashed(src, tmp, dest)
        return self._download_storage(url, tmp, dest)

    def _storage_manager(self, url: str) -> Any:
        """The SDK's StorageManager, with this client's object-storage credentials registered."""
        try:
            from clearml import StorageManager  # noqa: PLC0415 - optional, only for object stores
            from clearml.backend_config.bucket_config import S3BucketConfig  # noqa: PLC0415
            from clearml.storage.helper import StorageHelper  # noqa: PLC0415
        except ImportError as exc:
            raise ClearmlModuleError(f"Reaching {url} needs the clearml SDK (StorageManager)") from exc
        if not self._storage_ready:
            for cred in self.storage_credentials:
                StorageHelper.add_aws_configuration(
                    S3BucketConfig(
                        bucket=cred["bucket"],
                        host=cred.get("host") or "",
                        key=cred["key"],
                        secret=cred["secret"],
                        region=cred.get("region") or "",
                        secure=bool(cred.get("secure", True)),
                        verify=cred.get("verify", True),
                        multipart=False,
                    ),
                    _test_config=False,
                )
            self._storage_ready = True
        return StorageManager

    def _download_storage(self, url: str, tmp: Path, dest: Path) -> tuple[str, int]:
        storage = self._storage_manager(url)
        try:
            local = storage.get_local_copy(url, extract_archive=False, force_download=True)
        except Exception as exc:  # the SDK raises many types for storage errors
            raise ClearmlModuleError(f"Download of {url} failed: {exc}", url=url) from exc
        if not local or not Path(local).is_file():
            raise ClearmlModuleError(f"Download of {url} failed (StorageManager returned nothing)", url=url)
        return _copy_hashed(Path(local), tmp, dest)

    def files_url(self, object_path: str) -> str:
        """URL of ``object_path`` (raw, unquoted) on this server's fileserver, quoted as the SDK quotes it."""
        if not self.files_host:
            raise ClearmlModuleError(f"No files_host is set for the ClearML server at {self.api_host}")
        return f"{self.files_host}/{urllib.parse.quote(object_path.lstrip('/'))}"

    def upload(self, src: str | os.PathLike[str], url: str) -> None:
        """Upload a local file to ``url``: the ClearML fileserver (multipart, part name = raw path) or,
        for other schemes, the SDK's StorageManager."""
        src = Path(src)
        if self.is_files_url(url):
            raw_path = "/" + urllib.parse.unquote(url[len(self.files_host or "") + 1 :])
            with open(src, "rb") as fh:
                resp = self._request(
                    "POST",
                    f"{self.files_host}/",
                    "upload",
                    files={raw_path: (raw_path, fh)},
                    headers=self._auth_headers(url),
                )
            if resp.status_code != 200:
                raise ClearmlModuleError(
                    f"Upload of {src.name} to {url} failed: HTTP {resp.status_code}", url=url
                )
            return
        storage = self._storage_manager(url)
        try:
            done = storage.upload_file(str(src), url, wait_for_upload=True)
        except Exception as exc:  # the SDK raises many types for storage errors
            raise ClearmlModuleError(f"Upload of {src.name} to {url} failed: {exc}", url=url) from exc
        if not done:
            raise ClearmlModuleError(f"Upload of {src.name} to {url} failed", url=url)

    def exists(self, url: str) -> bool:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            return False
        resp = self._request("HEAD", url, "exists", headers=self._auth_headers(url))
        return resp.status_code == 200


def _copy_hashed(src: Path, tmp: Path, dest: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        for chunk in iter(lambda: fin.read(CHUNK), b""):
            fout.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dest)
    return digest.hexdigest(), size


def client_from_params(params: dict[str, Any], prefix: str = "") -> ClearmlClient:
    """Build a client from module parameters named as in ``_common.CLEARML_COMMON_ARGS`` (optionally prefixed)."""
    return ClearmlClient(
        api_host=params[prefix + "api_host"],
        access_key=params[prefix + "access_key"],
        secret_key=params[prefix + "secret_key"],
        web_host=params.get(prefix + "web_host"),
        files_host=params.get(prefix + "files_host"),
        validate_certs=params.get(prefix + "validate_certs", True),
        ca_path=params.get(prefix + "ca_path"),
        storage_credentials=params.get(prefix + "storage_credentials"),
    )


def iter_tag_values(tags: list[str] | None, prefix: str) -> Iterator[str]:
    """Values of ``prefix``-tags (``d2s-origin:<id>`` → ``<id>``)."""
    for tag in tags or []:
        if tag.startswith(prefix):
            yield tag[len(prefix) :]
