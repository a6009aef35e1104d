# SPDX-License-Identifier: GPL-3.0-or-later
"""The seed's parts that need no ClearML server: data, git repository, model files, serving code.

The Triton python-backend ``model.py`` is exercised in the real ``tritonserver`` of the
``nvidia-pytriton`` wheel (EXPLICIT model control), next to a broken model that must not take the good
ones down.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from d2s_tools.seed import expected, gitrepo, spec, synth


def _load_train_module() -> Any:
    module_spec = importlib.util.spec_from_file_location("d2s_seed_train", spec.ASSETS_DIR / "train.py")
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three model forms, written by the training script's own writer from fixed weights."""
    train = _load_train_module()
    rng = np.random.default_rng(7)
    fit = {
        "mean": rng.normal(5.0, 1.0, 4),
        "std": np.abs(rng.normal(1.0, 0.1, 4)),
        "weights": rng.normal(0.0, 1.0, (4, 3)),
        "bias": rng.normal(0.0, 1.0, 3),
        "classes": list(spec.CLASSES),
        "features": list(spec.FEATURES),
    }
    return train.write_model_files(tmp_path_factory.mktemp("models"), fit)


def test_synthetic_versions_are_deterministic_and_chained(tmp_path: Path) -> None:
    first = synth.write_versions(tmp_path / "a")
    second = synth.write_versions(tmp_path / "b")
    assert [v["files"] for v in first["versions"]] == [v["files"] for v in second["versions"]]

    v1, v2, v3 = first["versions"]
    assert [v["version"] for v in (v1, v2, v3)] == spec.DATASET_VERSIONS
    assert v1["files"][spec.BIG_FILE]["size"] == spec.BIG_FILE_SIZE
    assert spec.BIG_FILE_SIZE > 2 * spec.CHUNK_SIZE_MB * 1024 * 1024
    assert spec.V2_REMOVED in v1["files"] and spec.V2_REMOVED not in v2["files"]
    assert v2["added"] and all(path not in v1["files"] for path in v2["added"])
    assert any(path.count("/") >= 2 for path in v2["added"]), "v2 adds a file in a nested subfolder"
    assert v3["modified"] == [spec.V3_MODIFIED]
    assert v3["files"][spec.V3_MODIFIED]["sha256"] != v2["files"][spec.V3_MODIFIED]["sha256"]
    assert {k: v for k, v in v3["files"].items() if k != spec.V3_MODIFIED} == {
        k: v for k, v in v2["files"].items() if k != spec.V3_MODIFIED
    }
    assert [v["publish"] for v in (v1, v2, v3)] == [False, False, True]


def test_git_repository_has_pushed_commit_and_uncommitted_change(tmp_path: Path) -> None:
    repo = gitrepo.create_repo(tmp_path / "one")
    again = gitrepo.create_repo(tmp_path / "two")
    assert repo["commit"] == again["commit"], "fixed identity and dates make the commit reproducible"
    assert repo["repository"].startswith("file:///")

    remote = subprocess.run(
        ["git", "ls-remote", repo["repository"], f"refs/heads/{spec.REPO_BRANCH}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert remote[0] == repo["commit"]

    work = Path(repo["working_dir"])
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=work, check=True, capture_output=True, text=True
    ).stdout
    assert status.strip() == f"M {spec.TRAIN_SCRIPT}"
    assert f"+{repo['uncommitted_line']}" in repo["uncommitted_diff"]
    assert "-LEARNING_RATE = 0.5" in repo["uncommitted_diff"]


def test_model_files_are_reproducible(model_files: dict[str, Path], tmp_path: Path) -> None:
    train = _load_train_module()
    raw = json.loads(model_files["single"].read_text(encoding="utf-8"))
    fit = {
        "mean": np.asarray(raw["mean"]),
        "std": np.asarray(raw["std"]),
        "weights": np.asarray(raw["weights"]),
        "bias": np.asarray(raw["bias"]),
        "classes": raw["classes"],
        "features": raw["features"],
    }
    again = train.write_model_files(tmp_path, fit)
    assert again["onnx"].read_bytes() == model_files["onnx"].read_bytes()
    assert again["single"].read_bytes() == model_files["single"].read_bytes()
    package = sorted(
        p.relative_to(model_files["package"]).as_posix() for p in model_files["package"].rglob("*")
    )
    assert package == ["bias.npy", "meta", "meta/labels.json", "scaler.json", "weights.npy"]


def test_expected_outputs_agree_across_engines(model_files: dict[str, Path]) -> None:
    triton = expected.triton_endpoint(
        model_files["onnx"], spec.ASSETS_DIR / "preprocess_triton.py", spec.TRITON_IO, spec.INFERENCE_REQUEST
    )
    custom = expected.custom_endpoint(
        model_files["single"], spec.ASSETS_DIR / "preprocess_custom.py", spec.INFERENCE_REQUEST
    )
    rows = len(spec.INFERENCE_REQUEST["features"])
    probs = np.asarray(triton["response"]["probabilities"])
    assert probs.shape == (rows, 3)
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(rows), rtol=1e-5)
    np.testing.assert_allclose(probs, np.asarray(custom["response"]["probabilities"]), atol=1e-6)
    assert triton["response"]["labels"] == custom["response"]["labels"]

    # The package holds the same model: numpy on its files gives the same probabilities.
    package = model_files["package"]
    scaler = json.loads((package / "scaler.json").read_text(encoding="utf-8"))
    x = np.asarray(spec.INFERENCE_REQUEST["features"], dtype=np.float32)
    logits = ((x - np.asarray(scaler["mean"], np.float32)) / np.asarray(scaler["std"], np.float32)) @ np.load(
        package / "weights.npy"
    ) + np.load(package / "bias.npy")
    ref = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(ref / ref.sum(axis=1, keepdims=True), probs, atol=1e-6)


# --- Triton python backend -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pbtxt(name: str, input_name: str, output_name: str, parameters: dict[str, str] | None = None) -> str:
    params = "".join(
        f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}\n'
        for k, v in (parameters or {}).items()
    )
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: 8\n'
        f'input [ {{ name: "{input_name}" data_type: TYPE_FP32 dims: [ 4 ] }} ]\n'
        f'output [ {{ name: "{output_name}" data_type: TYPE_FP32 dims: [ 3 ] }} ]\n'
        "instance_group [ { kind: KIND_CPU count: 1 } ]\n" + params
    )


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Any:
    pytriton = pytest.importorskip(
        "pytriton", reason="nvidia-pytriton provides tritonserver and the python backend"
    )
    httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] talks to tritonserver")
    server_dir = Path(pytriton.__file__).parent / "tritonserver"
    libs = Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"
    stub = server_dir / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
    root = tmp_path_factory.mktemp("triton")
    backends = root / "backends"
    shutil.copytree(server_dir / "backends", backends)
    shutil.copy2(stub / "triton_python_backend_stub", backends / "python" / "triton_python_backend_stub")

    repo = root / "models"
    model_py = spec.ASSETS_DIR / "model.py"
    layouts = {
        # exact names, model.onnx
        "iris_onnx": ("features", "probabilities", "model.onnx", None),
        # clearml-serving style: file stored as model.bin, config names differ from the graph's
        "iris_renamed": ("INPUT__0", "OUTPUT__0", "model.bin", None),
        # file named by the config parameter
        "iris_param": (
            "features",
            "probabilities",
            "weights-v7.onnx",
            {"onnx_model_filename": "weights-v7.onnx"},
        ),
        # no ONNX file at all: must fail alone
        "broken": ("features", "probabilities", None, None),
    }
    for name, (input_name, output_name, filename, params) in layouts.items():
        version = repo / name / "1"
        version.mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(
            _pbtxt(name, input_name, output_name, params), encoding="utf-8"
        )
        shutil.copy2(model_py, version / "model.py")
        if filename:
            shutil.copy2(model_files["onnx"], version / filename)

    http_port = _free_port()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(libs), env.get("LD_LIBRARY_PATH", "")]))
    log = (root / "tritonserver.log").open("wb")
    process = subprocess.Popen(
        [
            str(server_dir / "bin" / "tritonserver"),
            f"--model-repository={repo}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in layouts),
            f"--http-port={http_port}",
            f"--grpc-port={_free_port()}",
            "--allow-metrics=false",
            "--allow-grpc=false",
            "--exit-on-error=false",
            "--strict-readiness=false",
            "--exit-timeout-secs=5",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"tritonserver exited: {(root / 'tritonserver.log').read_text(errors='replace')[-3000:]}"
                )
            try:
                if client.is_server_live() and all(
                    client.is_model_ready(n) for n in ("iris_onnx", "iris_renamed", "iris_param")
                ):
                    break
            except Exception:  # noqa: S110  (not up yet)
                pass
            time.sleep(0.5)
        else:
            pytest.fail(
                f"models not ready: {(root / 'tritonserver.log').read_text(errors='replace')[-3000:]}"
            )
        yield client, httpclient
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("model", "input_name", "output_name"),
    [
        ("iris_onnx", "features", "probabilities"),
        ("iris_renamed", "INPUT__0", "OUTPUT__0"),
        ("iris_param", "features", "probabilities"),
    ],
)
def test_triton_python_backend_serves_the_onnx_file(
    triton_server: Any, model_files: dict[str, Path], model: str, input_name: str, output_name: str
) -> None:
    client, httpclient = triton_server
    x = np.asarray(spec.INFERENCE_REQUEST["features"], dtype=np.float32)
    infer_input = httpclient.InferInput(input_name, list(x.shape), "FP32")
    infer_input.set_data_from_numpy(x)
    result = client.infer(model, [infer_input], outputs=[httpclient.InferRequestedOutput(output_name)])
    got = result.as_numpy(output_name)
    (want,) = expected.run_onnx(model_files["onnx"], {"features": x}, ["probabilities"])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@pytest.mark.timeout(300)
def test_triton_broken_model_fails_alone(triton_server: Any) -> None:
    client, _ = triton_server
    assert not client.is_model_ready("broken")
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["broken"].get("state") == "UNAVAILABLE"
    assert "no ONNX model" in index["broken"].get("reason", "")
    assert client.is_model_ready("iris_onnx")


@pytest.mark.parametrize("name", ["model.py", "preprocess_triton.py", "preprocess_custom.py"])
def test_serving_code_parses_as_python_38(name: str) -> None:
    """The serving code runs under whatever Python the Triton image or the clearml-serving container has."""
    import ast

    source = (spec.ASSETS_DIR / name).read_text(encoding="utf-8")
    ast.parse(source, filename=name, feature_version=(3, 8))
    assert "strict=True" not in source, "zip(strict=...) needs Python 3.10"
