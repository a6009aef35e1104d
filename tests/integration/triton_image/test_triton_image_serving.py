# SPDX-License-Identifier: GPL-3.0-or-later
"""triton_image end to end: the own image FROM d2s/triton-cpu, the seeded bundle's endpoint served by it.

Real docker daemon, real tritonserver (d2s/triton-cpu stands in for NGC's image), the seeded deployment
exported by clearml_export, every module run through ansible-playbook. ONNX is served through the
python backend with the model's real weights; answers are compared bit for bit with onnxruntime run
directly on the bundle's model file.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from triton_image_fixtures import (
    GENERIC_MODEL_PY,
    PROBE_PACKAGE,
    TRITON_CPU,
    broken_package,
    container_id,
    docker,
    image_id,
    make_wheel,
    variant_bundle,
)

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._images import verify_blobs
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton import repository_state

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

FEATURES = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [6.9, 3.1, 5.4, 2.1]], dtype=np.float32)
BROKEN_ID = "b" * 32


def onnx_models(bundle_dir: Path) -> list[tuple[str, Path]]:
    """The bundle's ONNX models (id, blob path), in name order (seed-0 first)."""
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    found = sorted(
        (m["name"], mid, bundle_dir / "blobs" / "sha256" / m["files"][0]["blob"])
        for mid, m in manifest["models"].items()
        if m["framework"] == "ONNX"
    )
    return [(mid, path) for _, mid, path in found]


def endpoints_of(bundle_dir: Path) -> dict[str, Any]:
    return json.loads((bundle_dir / "manifest.json").read_text())["serving"]["endpoints"]


def direct(onnx_file: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the generic model.py runs it
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"features": x})[0]


def infer(port: int, model: str, x: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}", network_timeout=60.0)
    try:
        inp = httpclient.InferInput("features", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        out = httpclient.InferRequestedOutput("probabilities", binary_data=True)
        return client.infer(model, [inp], outputs=[out]).as_numpy("probabilities")
    finally:
        client.close()  # Triton waits for open connections when it stops


def inference_count(port: int, model: str) -> int:
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}", network_timeout=60.0)
    try:
        return int(client.get_inference_statistics(model)["model_stats"][0]["inference_count"])
    finally:
        client.close()


def ok(result: dict[str, Any], output: str) -> dict[str, Any]:
    assert not result.get("failed"), f"{result.get('msg')}\n{output[-5000:]}"
    return result


# --------------------------------------------------------------------------------------------- the image


def test_own_image_is_cached_and_installs_the_wheelhouse_offline(
    own_image: dict, runner: Any, tmp_path: Path
) -> None:
    first = own_image["result"]
    assert first["changed"] is True and first["image"]["built"] is True
    record = first["record"]
    assert record["id"] == own_image["id"] == image_id(own_image["name"])
    assert record["repo_tags"] == [own_image["name"]]
    store = Path(own_image["args"]["image_store"])
    assert verify_blobs(record, lambda d: store / "blobs" / "sha256" / d) == []
    assert json.loads(Path(own_image["args"]["image_record"]).read_text()) == record

    # Same inputs: nothing built, nothing stored again.
    again = ok(*runner("triton_image", own_image["args"]))
    assert again["changed"] is False
    assert (again["image"]["built"], again["image"]["id"]) == (False, own_image["id"])
    assert again["image"]["inputs_digest"] == first["image"]["inputs_digest"]

    # The wheelhouse was installed at build time; nothing of the build context is left in the image.
    script = (
        f"import os, {PROBE_PACKAGE} as p; print(p.VALUE, os.path.exists('/tmp/d2s-build'), "
        "os.environ['PYTHONDONTWRITEBYTECODE'], sorted(os.listdir('/models')))"
    )
    proc = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python3", own_image["name"], "-c", script
    )
    assert proc.stdout.split() == ["probe", "1.0", "False", "1", "[]"]

    # Another wheel version is another image: check mode says so and builds nothing.
    wheels = make_wheel(tmp_path / "wheels", version="1.1").parent
    args = {**own_image["args"], "wheelhouse": str(wheels)}
    predicted = ok(*runner("triton_image", args, "--check"))
    assert predicted["changed"] is True and predicted["image"]["built"] is True
    assert image_id(own_image["name"]) == own_image["id"]
    labelled = docker(
        "images",
        "-q",
        "--filter",
        f"label=org.deploy2standalone.triton.inputs={predicted['image']['inputs_digest']}",
    )
    assert labelled.stdout.strip() == ""


def test_site_loads_the_image_from_its_record(own_image: dict, site: Any) -> None:
    docker("rmi", own_image["name"])  # the site does not have it yet; its base layers may stay
    assert image_id(own_image["name"]) is None
    result = ok(*site(state="present"))
    assert result["changed"] is True
    assert result["image"]["loaded"] is True and result["image"]["id"] == own_image["id"]
    assert image_id(own_image["name"]) == own_image["id"]
    assert result["repository"]["added"] == ["iris_onnx"]
    again = ok(*site.core(state="present"))
    assert again["changed"] is False and again["image"]["loaded"] is False


# --------------------------------------------------------------------------------------------- serving


def test_started_serves_the_seeded_endpoint_like_onnxruntime(site: Any, seeded_bundle: Path) -> None:
    name, port = site.base["name"], site.base["http_port"]
    repo = Path(site.base["model_repository"])
    predicted = ok(*site("--check", "--diff"))
    assert predicted["changed"] is True and predicted["container"]["action"] == "create"
    assert container_id(name) is None and not repo.exists()

    result = ok(*site(smoke_samples={"iris_onnx": {"features": FEATURES[:1].tolist()}}))
    assert result["changed"] is True
    assert result["container"]["action"] == "create"
    assert result["failed_models"] == []
    assert result["models"]["iris_onnx"]["state"] == "READY"
    assert result["endpoints"] == {"iris_onnx": "iris_onnx"}
    assert {s["url"] for s in result["skipped_endpoints"]} == {"iris_custom/1", "iris_custom/2"}
    smoke = result["smoke"]["iris_onnx"]
    assert smoke["ok"] is True and smoke["sample"] is True
    assert smoke["outputs"]["probabilities"]["shape"] == [1, 3]

    (model_id, onnx_file), _ = onnx_models(seeded_bundle)
    assert endpoints_of(seeded_bundle)["iris_onnx"]["model_id"] == model_id
    y = infer(port, "iris_onnx", FEATURES)
    assert y.dtype == np.float32 and y.shape == (3, 3)
    assert y.tobytes() == direct(onnx_file, FEATURES).tobytes()  # bit-identical
    assert (
        np.asarray(smoke["outputs"]["probabilities"]["data"], dtype=np.float32).tobytes() == y[:1].tobytes()
    )

    # The container: host network, the repository read-only, EXPLICIT mode, the spec in a label.
    info = json.loads(docker("container", "inspect", name).stdout)[0]
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert [(m["Destination"], m["RW"]) for m in info["Mounts"]] == [("/models", False)]
    assert "--model-control-mode=explicit" in info["Config"]["Cmd"]
    assert not list(repo.rglob("__pycache__"))

    again = ok(*site(smoke_samples={"iris_onnx": {"features": FEATURES[:1].tolist()}}))
    assert again["changed"] is False, again["msg"]
    assert again["container"]["id"] == result["container"]["id"]
    checked = ok(*site("--check", "--diff", smoke_samples={"iris_onnx": {"features": FEATURES[:1].tolist()}}))
    assert checked["changed"] is False
    assert checked["diff"]["before"] == checked["diff"]["after"]


def test_a_broken_model_is_reported_and_the_others_serve(
    site: Any, seeded_bundle: Path, tmp_path: Path
) -> None:
    endpoints = endpoints_of(seeded_bundle)
    endpoints["broken"] = {
        **endpoints["iris_onnx"],
        "serving_url": "broken",
        "model_id": BROKEN_ID,
        "auxiliary_cfg": 'backend: "python"\n',
    }
    package = broken_package(tmp_path / "broken" / "model_package.zip")
    variant = variant_bundle(
        seeded_bundle,
        tmp_path / "bundle",
        endpoints=endpoints,
        models={BROKEN_ID: {"framework": "Custom", "package": True, "files": {"model_package.zip": package}}},
    )
    result = ok(*site.core(bundle=str(variant)))
    assert [(f["name"], f["stage"]) for f in result["failed_models"]] == [("broken", "load")]
    assert "this model refuses to start" in result["failed_models"][0]["reason"]
    assert any("broken" in w and "refuses to start" in w for w in result["warnings"])
    assert result["models"]["iris_onnx"]["state"] == "READY"
    assert result["models"]["broken"]["state"] == "UNAVAILABLE"
    assert list(result["smoke"]) == ["iris_onnx"]
    port = site.base["http_port"]
    (_, onnx_file), _ = onnx_models(seeded_bundle)
    assert infer(port, "iris_onnx", FEATURES).tobytes() == direct(onnx_file, FEATURES).tobytes()

    # The failed load is retried at the next run, which is no change; with fail_on_model_error it fails.
    again = ok(*site.core(bundle=str(variant)))
    assert again["changed"] is False
    assert [f["name"] for f in again["failed_models"]] == ["broken"]
    strict, _ = site(bundle=str(variant), fail_on_model_error=True, ignore_errors=True)  # a real failed task
    assert strict["failed"] is True
    assert "broken (load)" in strict["msg"]
    assert infer(port, "iris_onnx", FEATURES).tobytes() == direct(onnx_file, FEATURES).tobytes()


def test_a_new_version_reloads_only_its_model_and_a_failed_one_rolls_back(
    site: Any, seeded_bundle: Path, tmp_path: Path
) -> None:
    (first_id, first_file), (second_id, second_file) = onnx_models(seeded_bundle)
    port = site.base["http_port"]
    repo = Path(site.base["model_repository"])

    def bundle_with(name: str, iris_model: str, extra: dict[str, Any] | None = None) -> str:
        endpoints = endpoints_of(seeded_bundle)
        endpoints["iris_onnx"]["model_id"] = iris_model
        # A monitored model version beside it (clearml-serving names it iris_onnx_2 in Triton).
        endpoints["iris_onnx/2"] = {**endpoints["iris_onnx"], "version": "2", "model_id": second_id}
        return str(variant_bundle(seeded_bundle, tmp_path / name, endpoints=endpoints, models=extra))

    start = ok(*site.core(bundle=bundle_with("v1", first_id)))
    assert sorted(m for m, s in start["models"].items() if s["state"] == "READY") == [
        "iris_onnx",
        "iris_onnx_2",
    ]
    cid = start["container"]["id"]
    infer(port, "iris_onnx_2", FEATURES)
    served = inference_count(port, "iris_onnx_2")  # batch items: the smoke inference's and these 3
    assert served == 1 + len(FEATURES)

    # dev moved iris_onnx to the second training run's model: only that model is rewritten and reloaded.
    v2 = bundle_with("v2", second_id)
    predicted = ok(*site.core(check_mode=True, bundle=v2))
    assert predicted["changed"] is True and predicted["repository"]["updated"] == ["iris_onnx"]
    assert inference_count(port, "iris_onnx_2") == served
    assert infer(port, "iris_onnx", FEATURES).tobytes() == direct(first_file, FEATURES).tobytes()
    updated = ok(*site.core(bundle=v2))
    assert updated["changed"] is True
    assert (updated["repository"]["updated"], updated["repository"]["unchanged"]) == (
        ["iris_onnx"],
        ["iris_onnx_2"],
    )
    assert (updated["container"]["action"], updated["container"]["id"]) == ("none", cid)
    assert updated["models"]["iris_onnx"]["loaded"] is True
    assert updated["models"]["iris_onnx_2"]["loaded"] is False
    # Not reloaded: its statistics survived (plus this run's smoke inference); a reload starts at 1.
    assert inference_count(port, "iris_onnx_2") == served + 1
    assert infer(port, "iris_onnx", FEATURES).tobytes() == direct(second_file, FEATURES).tobytes()
    serving_digests = repository_state(repo)

    # A version that cannot load: the previous one keeps serving and is back on disk.
    corrupt = tmp_path / "corrupt" / "model.onnx"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"not an onnx model " * 64)
    bad_id = "c" * 32
    v3 = bundle_with("v3", bad_id, {bad_id: {"framework": "ONNX", "files": {"model.onnx": corrupt}}})
    rolled = ok(*site.core(bundle=v3))
    assert rolled["rolled_back"] == ["iris_onnx"]
    assert [(f["name"], f["stage"]) for f in rolled["failed_models"]] == [("iris_onnx", "load")]
    assert (
        "INVALID_PROTOBUF" in rolled["failed_models"][0]["reason"]
        or "Protobuf" in rolled["failed_models"][0]["reason"]
    )
    assert rolled["changed"] is False
    assert rolled["models"]["iris_onnx"]["state"] == "READY"
    assert repository_state(repo) == serving_digests
    assert not [p for p in repo.parent.iterdir() if "d2s-previous" in p.name]
    assert infer(port, "iris_onnx", FEATURES).tobytes() == direct(second_file, FEATURES).tobytes()
    assert container_id(site.base["name"]) == cid


def test_models_baked_into_the_image(
    own_image: dict, site: Any, runner: Any, seeded_bundle: Path, tmp_path: Path
) -> None:
    name = f"d2s-test/triton-baked-{uuid.uuid4().hex[:10]}:test"
    args = {
        "state": "built",
        "image": name,
        "base_image": TRITON_CPU,
        "bake_models": True,
        "bundle": str(seeded_bundle),
        "python_backend_for": ["onnx"],
        "python_model": str(GENERIC_MODEL_PY),
    }
    try:
        built = ok(*runner("triton_image", args))
        assert built["image"]["baked_models"] == built["repository"]["models"]
        assert list(built["repository"]["models"]) == ["iris_onnx"]
        result = ok(*site.core(image=name, image_record=None, image_store=None))
        assert result["repository"]["baked"] is True
        assert result["container"]["spec"]["mounts"] == []
        assert result["models"]["iris_onnx"]["state"] == "READY"
        assert not Path(site.base["model_repository"]).exists()
        (_, onnx_file), _ = onnx_models(seeded_bundle)
        assert (
            infer(site.base["http_port"], "iris_onnx", FEATURES).tobytes()
            == direct(onnx_file, FEATURES).tobytes()
        )
        # A bundle whose endpoints differ from what the image holds is refused before anything changes.
        endpoints = endpoints_of(seeded_bundle)
        endpoints["iris_onnx/2"] = {**endpoints["iris_onnx"], "version": "2"}
        other = variant_bundle(seeded_bundle, tmp_path / "other", endpoints=endpoints)
        refused, _ = site.core(image=name, image_record=None, image_store=None, bundle=str(other))
        assert refused["failed"] is True and "baked in" in refused["msg"]
        assert container_id(site.base["name"]) == result["container"]["id"]
    finally:
        docker("rm", "-f", site.base["name"], check=False)
        docker("rmi", "-f", name, check=False)


def test_absent_removes_the_container_and_keeps_the_image(own_image: dict, site: Any) -> None:
    ok(*site.core())
    alias = f"d2s-test/triton-alias-{uuid.uuid4().hex[:8]}:test"
    docker("tag", own_image["id"], alias)
    try:
        removed = ok(*site("--check", state="absent"))
        assert removed["changed"] is True and container_id(site.base["name"]) is not None
        removed = ok(*site(state="absent"))
        assert removed["changed"] is True and removed["container"]["action"] == "remove"
        assert container_id(site.base["name"]) is None
        assert image_id(own_image["name"]) == own_image["id"]
        assert ok(*site.core(state="absent"))["changed"] is False
        gone = ok(
            *site.core(state="absent", image=alias, image_record=None, image_store=None, remove_image=True)
        )
        assert gone["changed"] is True and gone["removed_images"] == [alias]
        assert image_id(alias) is None and image_id(own_image["name"]) == own_image["id"]
    finally:
        docker("rmi", alias, check=False)
