# SPDX-License-Identifier: GPL-3.0-or-later
"""Seed a fresh local ClearML-compatible server, then read everything back with the SDK and compare.

One seed run per module (it is the expensive part); the read-back runs in a separate SDK process with
its own HOME and cache (``readback.py``), so nothing the seed's processes cached can answer for the
server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from d2s_tools.seed import spec
from d2s_tools.seed.expected import run_onnx

TOOLS = Path(__file__).resolve().parents[3] / "tools"
READBACK = Path(__file__).resolve().parent / "readback.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    testing = pytest.importorskip("d2s_tools.server.testing", reason="the local server is built in parallel")
    root = tmp_path_factory.mktemp("seed")
    server = testing.start_server(root / "server-data")
    try:
        env = {**os.environ, **server.env()}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOOLS), env.get("PYTHONPATH", "")]))
        out = root / "seed.json"
        started = time.monotonic()
        seed_run = subprocess.run(
            [sys.executable, "-m", "d2s_tools.seed", "--out", str(out), "--workdir", str(root / "work")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        elapsed = time.monotonic() - started
        assert seed_run.returncode == 0, f"seed failed:\n{seed_run.stdout}\n{seed_run.stderr}"
        seed = json.loads(out.read_text(encoding="utf-8"))

        back_file = root / "readback.json"
        back_run = subprocess.run(
            [sys.executable, str(READBACK), str(out), str(back_file)],
            env=server.flow_env(root / "readback-home"),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert back_run.returncode == 0, f"readback failed:\n{back_run.stdout}\n{back_run.stderr}"
        back = json.loads(back_file.read_text(encoding="utf-8"))
        yield {"seed": seed, "back": back, "elapsed": elapsed, "stdout": seed_run.stdout}
    finally:
        server.stop()


def ok(value: Any) -> Any:
    """A read-back probe's value; fail with the SDK's traceback if the probe raised."""
    if isinstance(value, dict) and set(value) == {"error"}:
        pytest.fail(f"read-back probe failed:\n{value['error']}")
    return value


# --- the run itself --------------------------------------------------------------------------------


def test_seed_runs_in_under_two_minutes(seeded: dict[str, Any]) -> None:
    assert seeded["seed"]["format"] == spec.SEED_FORMAT
    assert seeded["elapsed"] < 120, seeded["seed"]["timing"]


# --- dataset ---------------------------------------------------------------------------------------


def test_dataset_chain(seeded: dict[str, Any]) -> None:
    seed, back = seeded["seed"]["dataset"], seeded["back"]["dataset"]
    ids = [v["id"] for v in seed["versions"]]
    assert len(set(ids)) == 3
    assert ok(back["latest_by_name"]) == ids[-1]
    listed = {d["id"]: d for d in ok(back["listed"])}
    assert set(ids) <= set(listed)

    for index, record in enumerate(seed["versions"]):
        got = back["versions"][record["id"]]
        assert ok(got["version"]) == spec.DATASET_VERSIONS[index]
        assert ok(got["name"]) == spec.DATASET_NAME
        assert ok(got["is_final"]) is True
        assert ok(got["status"]) == ("published" if index == 2 else "completed")
        graph = ok(got["dependency_graph"])
        assert graph[record["id"]] == ([ids[index - 1]] if index else [])
        assert set(graph) == set(ids[: index + 1])
        assert ok(got["files"]) == sorted(record["files"])
        entries = ok(got["entries"])
        assert {p: e["sha256"] for p, e in entries.items()} == {
            p: f["sha256"] for p, f in record["files"].items()
        }
        assert {p: e["parent_dataset_id"] for p, e in entries.items()} == record["file_parents"]

    v1, v2, v3 = seed["versions"]
    assert spec.V2_REMOVED in v1["files"] and spec.V2_REMOVED not in v2["files"]
    assert all(v2["file_parents"][p] == v2["id"] for p in v2["added"])
    assert v3["file_parents"][spec.V3_MODIFIED] == v3["id"]
    assert v3["file_parents"][spec.BIG_FILE] == v1["id"]
    # chunking: v1 has several chunks, the 2.5 MiB file needs one of its own
    assert len(ok(back["versions"][v1["id"]]["chunk_artifacts"])) >= 2
    assert len(v1["own_chunks"]) >= 2


def test_dataset_local_copy_equals_seed_files(seeded: dict[str, Any]) -> None:
    seed, back = seeded["seed"]["dataset"], seeded["back"]["dataset"]
    local = ok(back["local_copy"])
    want = seed["versions"][-1]["files"]
    assert {p: (f["sha256"], f["size"]) for p, f in local.items()} == {
        p: (f["sha256"], f["size"]) for p, f in want.items()
    }


# --- training tasks --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["train_seed0", "train_seed1"])
def test_training_task(seeded: dict[str, Any], key: str) -> None:
    seed, back = seeded["seed"]["tasks"][key], seeded["back"]["tasks"][key]
    latest = seeded["seed"]["dataset"]["versions"][-1]["id"]
    assert ok(back["name"]) == spec.TASK_NAME
    assert ok(back["project"]) == spec.PROJECT
    assert ok(back["status"]) == "completed"
    assert f"seed-{seed['seed']}" in ok(back["tags"])

    script = ok(back["script"])
    assert script["repository"] == seed["script"]["repository"]
    assert script["repository"].startswith("file://")
    assert script["branch"] == spec.REPO_BRANCH
    assert script["version_num"] == seed["script"]["commit"]
    assert script["entry_point"] == spec.TRAIN_SCRIPT
    assert seed["script"]["diff_contains"] in script["diff"]

    params = ok(back["parameters"])
    for name, value in seed["hyperparams"].items():
        assert params.get(name) == value, name

    container = ok(back["container"])
    assert container["image"] == seed["container"]["image"]
    assert seed["container"]["arguments_contain"] in container["arguments"]

    runtime = ok(back["runtime"])
    assert latest in runtime["datasets"]
    assert any(k.startswith("orig_datasets.") and v == latest for k, v in runtime.items())

    scalars = ok(back["scalars"])
    for name, series in seed["scalars"].items():
        title, variant = name.split("/")
        got = scalars[title][variant]
        assert list(got["x"]) == [int(i) for i, _ in series]
        np.testing.assert_allclose(got["y"], [v for _, v in series], rtol=1e-6)
    console = "\n".join(ok(back["console"]))
    for line in seed["console_contains"]:
        assert line in console
    assert ("confusion", "test") in [tuple(p) for p in ok(back["plots"])]
    images = ok(back["debug_images"])
    assert images and all(len(i["sha256"]) == 64 for i in images)

    artifacts = ok(back["artifacts"])
    assert set(seed["artifacts"]) <= set(artifacts)
    assert ok(back["artifact_dict"]) == seed["artifacts"]["training_summary"]["value"]
    assert ok(back["artifact_file"]) == seed["artifacts"]["confusion_matrix"]["sha256"]
    assert artifacts["confusion_matrix"]["hash"] == seed["artifacts"]["confusion_matrix"]["sha256"]
    assert set(seed["models"].values()) <= set(ok(back["output_models"]))


def test_planted_secrets_are_in_the_tasks(seeded: dict[str, Any]) -> None:
    secrets = seeded["seed"]["planted_secrets"]
    for back in seeded["back"]["tasks"].values():
        assert secrets["container_git_pass"]["value"] in ok(back["container"])["arguments"]
        assert (
            ok(back["parameters"])["storage/aws_secret_access_key"]
            == secrets["hyperparam_aws_secret"]["value"]
        )


# --- models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["onnx_seed0", "package_seed0", "single_seed0", "onnx_seed1", "package_seed1", "single_seed1"]
)
def test_model(seeded: dict[str, Any], key: str) -> None:
    seed, back = seeded["seed"]["models"][key], seeded["back"]["models"][key]
    assert ok(back["name"]) == seed["name"]
    assert ok(back["framework"]) == seed["framework"]
    assert ok(back["task"]) == seed["task"]
    assert ok(back["labels"]) == seed["labels"]
    assert set(seed["tags"]) <= set(ok(back["tags"]))
    assert ok(back["config"])["kind"] == seed["kind"]
    metadata = ok(back["metadata"])
    for name, value in seed["metadata"].items():
        assert str(metadata[name]["value"] if isinstance(metadata[name], dict) else metadata[name]) == value
    if seed["package"]:
        assert "package" in ok(back["system_tags"])
    files = ok(back["files"])
    assert {p: f["sha256"] for p, f in files.items()} == {p: f["sha256"] for p, f in seed["files"].items()}


# --- serving ---------------------------------------------------------------------------------------


def test_serving_endpoints(seeded: dict[str, Any]) -> None:
    seed, back = seeded["seed"]["serving"], seeded["back"]["serving"]
    assert ok(back["name"]) == spec.SERVING_NAME
    assert ok(back["project"]) == spec.SERVING_PROJECT
    assert "serving-control-plane" in ok(back["system_tags"])
    endpoints = ok(back["endpoints"])
    assert set(endpoints) == set(seed["endpoints"])
    artifacts = ok(back["artifacts"])
    for url, want in seed["endpoints"].items():
        got = endpoints[url]
        assert got["engine_type"] == want["engine_type"]
        assert got["serving_url"] == want["serving_url"]
        assert got["model_id"] == want["model_id"] == seeded["seed"]["models"][want["model_key"]]["id"]
        assert (got.get("version") or None) == want["version"]
        assert got["preprocess_artifact"] == want["preprocess_artifact"]
        artifact = artifacts[want["preprocess_artifact"]]
        assert artifact["sha256"] == artifact["hash"] == want["preprocess_sha256"]
    triton = endpoints[spec.TRITON_ENDPOINT]
    for field, value in spec.TRITON_IO.items():
        assert triton[field] == value, field
    aux = triton["auxiliary_cfg"]
    assert aux["max_batch_size"] == 8
    assert "onnxruntime_onnx" in str(aux["platform"])


def test_serving_canary_and_metrics(seeded: dict[str, Any]) -> None:
    seed, back = seeded["seed"]["serving"], seeded["back"]["serving"]
    canary = ok(back["canary"])[spec.CANARY_ENDPOINT]
    want = seed["canary"][spec.CANARY_ENDPOINT]
    assert canary["weights"] == want["weights"]
    assert canary["load_endpoints"] == want["load_endpoints"]
    metrics = ok(back["metric_logging"])[spec.TRITON_ENDPOINT]
    want_metrics = seed["metric_logging"][spec.TRITON_ENDPOINT]
    assert metrics["metrics"] == want_metrics["metrics"]
    assert float(metrics["log_frequency"]) == want_metrics["log_frequency"]


# --- expected outputs ------------------------------------------------------------------------------


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_expected_outputs_match_downloaded_models(seeded: dict[str, Any]) -> None:
    seed, back = seeded["seed"], seeded["back"]
    x = np.asarray(spec.INFERENCE_REQUEST["features"], dtype=np.float32)
    classes = list(spec.CLASSES)

    onnx_file = Path(ok(back["models"]["onnx_seed0"]["files"])["model.onnx"]["path"])
    (probs,) = run_onnx(onnx_file, {"features": x}, ["probabilities"])
    triton = seed["inference"][spec.TRITON_ENDPOINT]
    np.testing.assert_allclose(triton["response"]["probabilities"], probs, rtol=1e-6, atol=1e-7)
    assert triton["response"]["labels"] == [classes[i] for i in probs.argmax(axis=1)]

    for version, key in (("1", "seed0"), ("2", "seed1")):
        single = Path(ok(back["models"][f"single_{key}"]["files"])["iris_weights.json"]["path"])
        raw = json.loads(single.read_text(encoding="utf-8"))
        p = {k: np.asarray(raw[k], dtype=np.float32) for k in ("mean", "std", "weights", "bias")}
        want = _softmax(((x - p["mean"]) / p["std"]) @ p["weights"] + p["bias"])
        got = seed["inference"][f"{spec.CUSTOM_ENDPOINT}/{version}"]["response"]
        np.testing.assert_allclose(got["probabilities"], want, rtol=1e-5, atol=1e-6)
        assert got["labels"] == [classes[i] for i in want.argmax(axis=1)]

        # the package of the same run holds the same model
        package = ok(back["models"][f"package_{key}"]["files"])
        scaler = json.loads(Path(package["scaler.json"]["path"]).read_text(encoding="utf-8"))
        weights = np.load(package["weights.npy"]["path"])
        bias = np.load(package["bias.npy"]["path"])
        logits = (
            (x - np.asarray(scaler["mean"], np.float32)) / np.asarray(scaler["std"], np.float32)
        ) @ weights
        np.testing.assert_allclose(_softmax(logits + bias), want, rtol=1e-5, atol=1e-6)

    # the two versions come from different models, and the canary can answer with either
    v1 = seed["inference"][f"{spec.CUSTOM_ENDPOINT}/1"]["response"]["probabilities"]
    v2 = seed["inference"][f"{spec.CUSTOM_ENDPOINT}/2"]["response"]["probabilities"]
    assert not np.allclose(v1, v2)
    canary = seed["inference"][spec.CANARY_ENDPOINT]
    assert canary["expected_one_of"] == [
        seed["inference"][f"{spec.CUSTOM_ENDPOINT}/1"]["response"],
        seed["inference"][f"{spec.CUSTOM_ENDPOINT}/2"]["response"],
    ]
