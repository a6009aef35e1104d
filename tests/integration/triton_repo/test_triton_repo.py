# SPDX-License-Identifier: GPL-3.0-or-later
"""A generated model repository served by the real tritonserver (nvidia-pytriton wheel, on the host).

ONNX endpoints go through the python-backend option (the only backend on these machines): the
repository holds ``1/model.onnx`` beside the generic ``1/model.py`` (tools/d2s_tools/seed/assets), the
config names ``backend: "python"`` and the ONNX file. Triton runs in EXPLICIT model-control mode; the
answers must be bit-identical to onnxruntime run directly on the same file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from clearml.utilities.pyhocon import ConfigFactory
from d2s_testlib import REPO
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton import (
    plan_repository,
    repository_state,
    write_repository,
)

GENERIC_MODEL_PY = REPO / "tools" / "d2s_tools" / "seed" / "assets" / "model.py"
ONNX_ID = "0123456789abcdef0123456789abcdef"
BROKEN_ID = "fedcba9876543210fedcba9876543210"

pytestmark = pytest.mark.timeout(600)


def aux_from_cli(*args: str) -> dict[str, Any]:
    """What ``clearml-serving model add --aux-config ARGS`` stores (clearml_serving/__main__.py)."""
    return ConfigFactory.parse_string(
        "\n".join(args).replace('"', '\\"').replace("'", "\\'")
    ).as_plain_ordered_dict()


def build_onnx(path: Path) -> Path:
    """probabilities = softmax(features @ W + b): float32, arbitrary (not specially rounded) weights."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "iris_like",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="d2s-test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def onnx_endpoint(url: str, **over: Any) -> dict[str, Any]:
    serving_url, _, version = url.partition("/")
    ep = {
        "engine_type": "triton",
        "serving_url": serving_url,
        "version": version,
        "model_id": ONNX_ID,
        "input_size": [[-1, 4]],
        "input_type": ["float32"],
        "input_name": ["features"],
        "output_size": [[-1, 3]],
        "output_type": ["float32"],
        "output_name": ["probabilities"],
    }
    ep.update(over)
    return ep


def endpoints() -> dict[str, dict[str, Any]]:
    return {
        # no batching: dims are the whole request shape
        "iris_onnx": onnx_endpoint("iris_onnx"),
        # the demo's endpoint: batching, dims without the batch dim, the aux config as the CLI stores it
        "iris_onnx/2": onnx_endpoint(
            "iris_onnx/2",
            input_size=[[4]],
            output_size=[[3]],
            auxiliary_cfg=aux_from_cli(
                "max_batch_size=8",
                'platform="onnxruntime_onnx"',
                "dynamic_batching.max_queue_delay_microseconds=100",
            ),
        ),
        "iris_sklearn": {"engine_type": "sklearn", "serving_url": "iris_sklearn", "model_id": "f" * 32},
    }


def models(onnx_file: Path) -> dict[str, dict[str, Any]]:
    # A single-file ONNX model as ClearML stores it (clearml-serving would name it 1/model.bin).
    return {
        ONNX_ID: {
            "framework": "ONNX",
            "package": False,
            "files": [{"path": "iris.onnx", "local": str(onnx_file)}],
        }
    }


def direct(onnx_file: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as model.py runs it
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"features": x})[0]


def infer(client: httpclient.InferenceServerClient, name: str, x: np.ndarray) -> np.ndarray:
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=True)
    return client.infer(name, [inp], outputs=[out]).as_numpy("probabilities")


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    (tmp_path / "blobs").mkdir()
    return build_onnx(tmp_path / "blobs" / "0f0f-onnx-blob")


def test_onnx_endpoints_through_the_python_backend_answer_like_onnxruntime(
    onnx_file: Path, tmp_path: Path, start_triton: Any
) -> None:
    plan = plan_repository(
        endpoints(), models(onnx_file), python_backend_for=["onnx"], python_model=GENERIC_MODEL_PY
    )
    assert [m.name for m in plan.models] == ["iris_onnx", "iris_onnx_2"]
    assert plan.skipped == [
        {"url": "iris_sklearn", "reason": "engine_type 'sklearn' is not served by Triton"}
    ]
    repo = tmp_path / "models"
    result = write_repository(plan, repo)
    assert result["added"] == ["iris_onnx", "iris_onnx_2"]
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == [
        "iris_onnx/1/model.onnx",
        "iris_onnx/1/model.py",
        "iris_onnx/config.pbtxt",
        "iris_onnx_2/1/model.onnx",
        "iris_onnx_2/1/model.py",
        "iris_onnx_2/config.pbtxt",
    ]

    server = start_triton(repo, load=["iris_onnx", "iris_onnx_2"])
    client = server.client
    assert client.is_server_ready()
    for name in ("iris_onnx", "iris_onnx_2"):
        assert client.is_model_ready(name), server.logs()[-3000:]
    # What Triton made of the generated configs.
    plain = client.get_model_config("iris_onnx")
    batched = client.get_model_config("iris_onnx_2")
    assert plain["backend"] == batched["backend"] == "python"
    assert (plain["max_batch_size"], plain["input"][0]["dims"]) == (0, [-1, 4])
    assert (batched["max_batch_size"], batched["input"][0]["dims"]) == (8, [4])
    assert batched["parameters"]["onnx_model_filename"]["string_value"] == "model.onnx"
    assert "dynamic_batching" in batched

    rng = np.random.default_rng(2024)
    for name, rows in (("iris_onnx", 5), ("iris_onnx", 1), ("iris_onnx_2", 5), ("iris_onnx_2", 8)):
        x = rng.standard_normal((rows, 4), dtype=np.float32)
        y = infer(client, name, x)
        expected = direct(onnx_file, x)
        assert y.dtype == np.float32 and y.shape == (rows, 3)
        assert y.tobytes() == expected.tobytes(), (name, y, expected)  # bit-identical, not merely close

    # A request larger than max_batch_size is refused by Triton, as configured.
    with pytest.raises(InferenceServerException, match="batch-size must be <= 8"):
        infer(client, "iris_onnx_2", rng.standard_normal((9, 4), dtype=np.float32))


def test_only_the_changed_model_is_rewritten_and_reloaded(
    onnx_file: Path, tmp_path: Path, start_triton: Any
) -> None:
    eps = endpoints()
    options = {"python_backend_for": ["onnx"], "python_model": GENERIC_MODEL_PY}
    repo = tmp_path / "models"
    write_repository(plan_repository(eps, models(onnx_file), **options), repo)
    server = start_triton(repo, load=["iris_onnx", "iris_onnx_2"])
    client = server.client
    x = np.ones((2, 4), dtype=np.float32)
    infer(client, "iris_onnx", x)
    # Loading model.py left Python's bytecode cache in the version folder; it is not a change.
    assert (repo / "iris_onnx" / "1" / "__pycache__").is_dir()
    assert write_repository(plan_repository(eps, models(onnx_file), **options), repo)["changed"] is False

    # One endpoint changes in dev (its batch size) and the site asks for two CPU instances of it.
    eps["iris_onnx/2"]["auxiliary_cfg"] = {**eps["iris_onnx/2"]["auxiliary_cfg"], "max_batch_size": 4}
    groups = {"iris_onnx_2": {"kind": "KIND_CPU", "count": 2}}
    plan = plan_repository(eps, models(onnx_file), instance_groups=groups, **options)
    result = write_repository(plan, repo)
    assert (result["updated"], result["unchanged"]) == (["iris_onnx_2"], ["iris_onnx"])
    assert write_repository(plan, repo)["changed"] is False

    client.load_model("iris_onnx_2")  # EXPLICIT mode: (re)load exactly what changed
    config = client.get_model_config("iris_onnx_2")
    assert config["max_batch_size"] == 4
    assert [(g["kind"], g["count"]) for g in config["instance_group"]] == [("KIND_CPU", 2)]
    y = infer(client, "iris_onnx_2", x)
    assert y.tobytes() == direct(onnx_file, x).tobytes()
    # The other model was not reloaded: its statistics survived.
    stats = client.get_inference_statistics("iris_onnx")["model_stats"][0]
    assert int(stats["inference_count"]) == 1  # the one request before the reload (no batching: per request)
    assert repository_state(repo) == {m.name: m.digest for m in plan.models}


BROKEN_MODEL_PY = """\
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("d2s-test: this model refuses to start")

    def execute(self, requests):
        return []
"""


def test_one_broken_model_does_not_take_the_good_one_down(
    onnx_file: Path, tmp_path: Path, start_triton: Any
) -> None:
    package = tmp_path / "blobs" / "broken-package.zip"
    with zipfile.ZipFile(package, "w") as zf:
        zf.writestr("model.py", BROKEN_MODEL_PY)
    eps = {
        "iris_onnx": onnx_endpoint("iris_onnx"),
        # a python-backend model of its own (aux backend "python", model.py in its package)
        "broken": onnx_endpoint("broken", model_id=BROKEN_ID, auxiliary_cfg='backend: "python"\n'),
    }
    mods = {
        **models(onnx_file),
        BROKEN_ID: {
            "framework": "Custom",
            "package": True,
            "files": [{"path": "model_package.zip", "local": str(package)}],
        },
    }
    plan = plan_repository(eps, mods, python_backend_for=["onnx"], python_model=GENERIC_MODEL_PY)
    assert plan.by_name()["broken"].declaration == {"backend": "python"}
    repo = tmp_path / "models"
    write_repository(plan, repo)
    assert (repo / "broken" / "1" / "model.py").read_text() == BROKEN_MODEL_PY

    server = start_triton(repo, load=["broken", "iris_onnx"])
    client = server.client
    assert client.is_server_live()
    assert client.is_model_ready("iris_onnx")
    assert not client.is_model_ready("broken")
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["iris_onnx"]["state"] == "READY"
    assert index["broken"]["state"] == "UNAVAILABLE"
    assert "this model refuses to start" in index["broken"]["reason"]
    # The good model answers; the broken one is refused with its reason, and a retry fails the same way.
    x = np.full((3, 4), 0.5, dtype=np.float32)
    assert infer(client, "iris_onnx", x).tobytes() == direct(onnx_file, x).tobytes()
    with pytest.raises(InferenceServerException):
        infer(client, "broken", x)
    with pytest.raises(InferenceServerException, match="this model refuses to start"):
        client.load_model("broken")
    assert client.is_model_ready("iris_onnx")
    # With a model that failed to load, Triton's own readiness (strict by default) is false: readiness
    # must be judged per model, as the design says (/v2/health/ready plus every model READY).
    assert client.is_server_ready() is False
