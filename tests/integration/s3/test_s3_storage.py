# SPDX-License-Identifier: GPL-3.0-or-later
"""Models on S3-compatible storage: exported from an s3:// URI, imported into a site's S3 bucket.

The object store is moto's S3 server on 127.0.0.1 (a real HTTP S3 endpoint, driven by boto3 and the
clearml SDK's StorageManager); the ClearML servers are the project's local server.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from d2s_servers import start_local_server
from d2s_testlib import VENV_BIN, run_module

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[dict]:
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=fh, stderr=fh
        )
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testkey",
        aws_secret_access_key="testsecret",
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    for bucket in ("dev-models", "site-store"):
        client.create_bucket(Bucket=bucket)
    try:
        yield {"client": client, "host": f"127.0.0.1:{port}"}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def creds(s3: dict, bucket: str) -> dict:
    return {
        "bucket": bucket,
        "host": s3["host"],
        "key": "testkey",
        "secret": "testsecret",
        "secure": False,
        "region": "us-east-1",
    }


def run(tmp: Path, module: str, args: dict) -> dict:
    return run_module(tmp, module, args)


def test_model_on_s3_exported_and_imported_into_site_s3(s3, fresh_server, tmp_path) -> None:
    weights = b"fp32 weights " + bytes(range(256)) * 64
    s3["client"].put_object(Bucket="dev-models", Key="iris/v1/model.onnx", Body=weights)
    dev = ClearmlClient(
        fresh_server.urls["api"],
        "d2s-access-key",
        "d2s-secret-key",
        fresh_server.urls["web"],
        fresh_server.urls["files"],
    )
    project = dev.call("projects.create", {"name": "s3-demo"})["id"]
    uri = f"s3://{s3['host']}/dev-models/iris/v1/model.onnx"
    model_id = dev.call(
        "models.create",
        {
            "name": "iris on s3",
            "uri": uri,
            "framework": "ONNX",
            "project": project,
            "ready": True,
            "labels": {"a": 0},
        },
    )["id"]

    bundle = tmp_path / "bundle"
    args = {
        **fresh_server.module_args(),
        "model_ids": [model_id],
        "dest": str(bundle),
        "storage_credentials": [creds(s3, "dev-models")],
    }
    res = run(tmp_path, "clearml_export", args)
    assert res.get("failed") is not True, res
    assert any("no creating task" in w for w in res["notes"])  # a bare model, exported with a warning
    manifest = json.loads((bundle / "manifest.json").read_text())
    (blob,) = [f["blob"] for f in manifest["models"][model_id]["files"]]
    assert hashlib.sha256(weights).hexdigest() == blob
    assert "testsecret" not in json.dumps(res)

    # without credentials for the bucket, a clear failure that names the URL
    res = run(
        tmp_path, "clearml_export", {**args, "dest": str(tmp_path / "nocreds"), "storage_credentials": []}
    )
    assert res.get("failed") is True
    assert uri in res["msg"], res["msg"]

    site = start_local_server(tmp_path / "site")
    try:
        iargs = {
            **site.module_args(),
            "bundle": str(bundle),
            "storage_uri": f"s3://{s3['host']}/site-store/clearml",
            "storage_credentials": [creds(s3, "site-store")],
        }
        res = run(tmp_path, "clearml_import", iargs)
        assert res.get("failed") is not True, res
        site_model = res["id_map"]["models"][model_id]
        sc = ClearmlClient(
            site.urls["api"], "d2s-access-key", "d2s-secret-key", site.urls["web"], site.urls["files"]
        )
        doc = sc.call("models.get_by_id", {"model": site_model})["model"]
        assert doc["uri"].startswith(f"s3://{s3['host']}/site-store/clearml/")
        key = doc["uri"].split("/site-store/", 1)[1]
        got = s3["client"].get_object(Bucket="site-store", Key=key)["Body"].read()
        assert got == weights
        assert run(tmp_path, "clearml_import", iargs)["changed"] is False
    finally:
        site.stop()
