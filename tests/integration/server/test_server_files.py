# SPDX-License-Identifier: GPL-3.0-or-later
"""The fileserver protocol: multipart POST with the raw path as part name (sent with the SDK's own
encoder), GET/HEAD/DELETE of the percent-encoded path, POST /delete_many, Bearer auth, no escape from
the storage root, large and chunked uploads."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from clearml.utilities.requests_toolbelt import MultipartEncoder

from d2s_tools.server.testing import ServerHandle


def upload(server: ServerHandle, parts: dict[str, bytes], token: str | None = None) -> requests.Response:
    """Upload like the SDK's HTTP driver: one field per file, field name = filename = the raw path."""
    encoder = MultipartEncoder(
        fields={name: (name, io.BytesIO(data), "application/octet-stream") for name, data in parts.items()}
    )
    headers = {"Content-Type": encoder.content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(f"{server.files_url}/", data=encoder, headers=headers, timeout=60)


def url_of(server: ServerHandle, path: str) -> str:
    return f"{server.files_url}/{quote(path.lstrip('/'))}"


def test_ping(clearml_server: ServerHandle) -> None:
    reply = requests.get(f"{clearml_server.files_url}/", timeout=30)
    assert (reply.status_code, reply.text) == (200, "OK")


@pytest.mark.parametrize(
    "path",
    [
        "/Proj A/train task.0123/artifacts/data file/data file.bin",
        "/Ünïcode Pröject/täsk.abc/models/mödel.pt",
        "/odd/chars #1 + 50%/a&b=c;d'e(f)[g]!/x y.bin",
        "/Proj/.datasets/ds/ds.0a1b/artifacts/data_001/dataset.0a1b.xyz.zip",
    ],
)
def test_upload_get_head_delete(clearml_server: ServerHandle, path: str) -> None:
    data = os.urandom(4096) + path.encode()
    reply = upload(clearml_server, {path: data}, token=clearml_server.token())
    assert reply.status_code == 200, reply.text
    assert reply.json() == [path.lstrip("/")]
    url = url_of(clearml_server, path)
    got = requests.get(url, timeout=30)
    assert got.status_code == 200
    assert got.content == data
    head = requests.head(url, timeout=30)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(data)
    assert (clearml_server.data_dir / "files" / path.lstrip("/")).read_bytes() == data
    assert requests.delete(url, timeout=30).status_code == 200
    assert requests.get(url, timeout=30).status_code == 404
    assert requests.delete(url, timeout=30).status_code == 404


def test_several_parts_and_overwrite(clearml_server: ServerHandle) -> None:
    parts = {f"/multi/part {i}.txt": f"content {i}\n".encode() for i in range(3)}
    assert upload(clearml_server, parts).status_code == 200
    assert upload(clearml_server, {"/multi/part 1.txt": b"replaced\n"}).status_code == 200
    contents = [requests.get(url_of(clearml_server, p), timeout=30).content for p in parts]
    assert contents == [b"content 0\n", b"replaced\n", b"content 2\n"]
    leftovers = [p.name for p in (clearml_server.data_dir / "files" / "multi").iterdir()]
    assert sorted(leftovers) == ["part 0.txt", "part 1.txt", "part 2.txt"]  # no temporary files left


def test_delete_many(clearml_server: ServerHandle) -> None:
    upload(clearml_server, {"/many/a.txt": b"a", "/many/b.txt": b"b"})
    reply = requests.post(
        f"{clearml_server.files_url}/delete_many",
        json={"files": ["many/a.txt", "many/b.txt", "many/c.txt"]},
        timeout=30,
    )
    assert reply.status_code == 200
    assert reply.json() == {
        "deleted": {"many/a.txt": True, "many/b.txt": True},
        "errors": {"many/c.txt": "not found"},
    }
    assert requests.get(url_of(clearml_server, "/many/a.txt"), timeout=30).status_code == 404


@pytest.mark.parametrize("name", ["/../escape.txt", "/a/../../escape.txt", "/a/./b.txt"])
def test_no_escape_from_the_storage_root(clearml_server: ServerHandle, name: str) -> None:
    reply = upload(clearml_server, {name: b"evil"})
    assert reply.status_code == 400
    assert not (clearml_server.data_dir / "escape.txt").exists()
    assert not (clearml_server.data_dir.parent / "escape.txt").exists()


def test_no_escape_on_get(clearml_server: ServerHandle) -> None:
    (clearml_server.data_dir / "secret.txt").write_text("server private")
    for path in ("/..%2Fsecret.txt", "/%2E%2E/secret.txt", "/a/%2e%2e/%2e%2e/secret.txt"):
        reply = requests.get(f"{clearml_server.files_url}{path}", timeout=30)
        assert reply.status_code in (400, 404), path
        assert "server private" not in reply.text


def _chunks(total: int, seed: bytes) -> Iterator[bytes]:
    block = hashlib.sha256(seed).digest() * 32768  # 1 MiB
    sent = 0
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        sent += len(piece)
        yield piece


def test_large_streamed_upload(clearml_server: ServerHandle, tmp_path: Path) -> None:
    size = 48 * 1024 * 1024 + 13
    source = tmp_path / "weights.bin"
    digest = hashlib.sha256()
    with source.open("wb") as handle:
        for piece in _chunks(size, b"big"):
            handle.write(piece)
            digest.update(piece)
    with source.open("rb") as handle:
        encoder = MultipartEncoder(fields={"/big/weights.bin": ("/big/weights.bin", handle, "x/y")})
        reply = requests.post(
            f"{clearml_server.files_url}/",
            data=encoder,
            headers={"Content-Type": encoder.content_type},
            timeout=300,
        )
    assert reply.status_code == 200, reply.text
    got = requests.get(url_of(clearml_server, "/big/weights.bin"), stream=True, timeout=300)
    downloaded = hashlib.sha256()
    for block in got.iter_content(1 << 20):
        downloaded.update(block)
    assert downloaded.hexdigest() == digest.hexdigest()


def test_chunked_transfer_encoding(clearml_server: ServerHandle) -> None:
    boundary = "d2sboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="/chunked/f.bin"; filename="/chunked/f.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    payload = os.urandom(300_000)

    def body() -> Iterator[bytes]:
        yield head
        for i in range(0, len(payload), 7000):
            yield payload[i : i + 7000]
        yield f"\r\n--{boundary}--\r\n".encode()

    reply = requests.post(
        f"{clearml_server.files_url}/",
        data=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert requests.get(url_of(clearml_server, "/chunked/f.bin"), timeout=30).content == payload


def test_required_auth(clearml_server_factory: Any) -> None:
    server = clearml_server_factory("files-auth", extra_args=["--require-files-auth"])
    token = server.token()
    assert upload(server, {"/auth/x.txt": b"x"}).status_code == 401
    assert upload(server, {"/auth/x.txt": b"x"}, token=token).status_code == 200
    url = url_of(server, "/auth/x.txt")
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=30).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).content == b"x"
    assert requests.get(url, auth=(server.access_key, server.secret_key), timeout=30).content == b"x"
    assert requests.get(f"{server.files_url}/", timeout=30).text == "OK"  # the ping stays open


def test_path_conflicts_are_400(clearml_server: ServerHandle) -> None:
    assert upload(clearml_server, {"/conflict/dir/file.txt": b"x"}).status_code == 200
    reply = upload(clearml_server, {"/conflict/dir": b"a file where a directory is"})
    assert reply.status_code == 400
    reply = upload(clearml_server, {"/conflict/dir/file.txt/below.txt": b"below a file"})
    assert reply.status_code == 400
    assert requests.get(url_of(clearml_server, "/conflict/dir/file.txt"), timeout=30).content == b"x"


def test_upload_cut_by_sigkill_leaves_nothing_visible(clearml_server_factory: Any) -> None:
    server = clearml_server_factory("cut-upload")
    boundary = "cutboundary"
    started = threading.Event()

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="/cut/partial.bin"; '
            f'filename="/cut/partial.bin"\r\n\r\n'
        ).encode()
        for _ in range(200):
            yield b"x" * 65536
            started.set()
            time.sleep(0.05)
        yield f"\r\n--{boundary}--\r\n".encode()

    def send() -> None:
        with contextlib.suppress(requests.RequestException):
            requests.post(
                f"{server.files_url}/",
                data=body(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=60,
            )

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    assert started.wait(30)
    time.sleep(0.5)
    staged = list((server.data_dir / "uploads.tmp").iterdir())
    assert staged, "the upload should be in progress"
    server.kill()
    sender.join(60)
    assert not (server.data_dir / "files" / "cut" / "partial.bin").exists()
    server.start()
    assert list((server.data_dir / "uploads.tmp").iterdir()) == []  # debris removed at start
    assert requests.get(url_of(server, "/cut/partial.bin"), timeout=30).status_code == 404
