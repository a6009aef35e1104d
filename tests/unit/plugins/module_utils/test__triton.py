# SPDX-License-Identifier: GPL-3.0-or-later
"""Triton model repository generation: layouts, config.pbtxt, validation, determinism, writing.

Real references, no mocks: every generated config is parsed by google.protobuf into Triton's own
``ModelConfig`` (shipped compiled in tritonclient), names and keys come from clearml-serving's own
functions, auxiliary configs are produced by clearml's HOCON parser exactly as ``clearml-serving model
add --aux-config`` stores them, and configs are compared with what clearml-serving's Triton helper
writes for the same endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clearml.utilities.pyhocon import ConfigFactory
from clearml_serving.engines.triton.triton_helper import TritonHelper
from clearml_serving.serving.endpoints import ModelEndpoint
from clearml_serving.serving.model_request_processor import ModelRequestProcessor
from d2s_testlib import REPO
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton import (
    TritonConfigError,
    compare_repository,
    plan_repository,
    repository_state,
    tree_digest,
    write_repository,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_config import (
    DTYPES,
    endpoint_key,
    request_model_name,
    triton_dtype,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_pbtxt import (
    parse_pbtxt,
    to_python,
)

GENERIC_MODEL_PY = REPO / "tools" / "d2s_tools" / "seed" / "assets" / "model.py"
MID = "a" * 32  # model ids are 32 hex digits in ClearML


def aux_from_cli(*args: str) -> dict[str, Any]:
    """What ``clearml-serving model add --aux-config ARGS`` stores (clearml_serving/__main__.py)."""
    return ConfigFactory.parse_string(
        "\n".join(args).replace('"', '\\"').replace("'", "\\'")
    ).as_plain_ordered_dict()


def model_config(text: str) -> model_config_pb2.ModelConfig:
    """Triton's own schema reads the text (unknown fields, bad enums, bad syntax raise)."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def endpoint(url: str = "m", **over: Any) -> dict[str, Any]:
    serving_url, _, version = url.partition("/")
    ep: dict[str, Any] = {
        "engine_type": "triton",
        "serving_url": serving_url,
        "version": version,
        "model_id": MID,
        "preprocess_artifact": f"py_code_{url.replace('/', '_')}",
        "input_size": [[-1, 4]],
        "input_type": ["float32"],
        "input_name": ["INPUT__0"],
        "output_size": [[-1, 3]],
        "output_type": ["float32"],
        "output_name": ["OUTPUT__0"],
    }
    ep.update(over)
    return {k: v for k, v in ep.items() if v is not None}


class Files:
    """Model files written under a temp dir, described as the plan's callers describe them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def file(self, name: str, data: bytes | None = None) -> dict[str, str]:
        self.n += 1
        local = self.root / f"blob{self.n}"
        local.write_bytes(data if data is not None else f"{name}-{self.n}".encode())
        return {"path": name, "local": str(local)}

    def zip(self, members: dict[str, bytes], name: str = "model_package.zip") -> dict[str, str]:
        self.n += 1
        local = self.root / f"blob{self.n}.zip"
        with zipfile.ZipFile(local, "w") as zf:
            for member, data in members.items():
                zf.writestr(member, data)
        return {"path": name, "local": str(local)}

    def model(self, framework: str | None, *files: dict[str, str], package: bool = False) -> dict[str, Any]:
        return {"framework": framework, "package": package, "files": list(files)}


@pytest.fixture
def files(tmp_path: Path) -> Files:
    (tmp_path / "blobs").mkdir()
    return Files(tmp_path / "blobs")


def plan_one(ep: dict[str, Any], model: dict[str, Any], url: str | None = None, **kw: Any):
    url = url or endpoint_key(ep["serving_url"], ep.get("version"))
    plan = plan_repository({url: ep}, {ep["model_id"]: model}, **kw)
    assert len(plan.models) == 1
    m = plan.models[0]
    model_config(m.config)  # always valid for Triton's schema
    return m


def problems_of(endpoints: dict[str, Any], models: dict[str, Any], **kw: Any) -> list[str]:
    with pytest.raises(TritonConfigError) as err:
        plan_repository(endpoints, models, **kw)
    assert isinstance(err.value, ClearmlModuleError)
    assert err.value.result["problems"] == err.value.problems
    for p in err.value.problems:
        assert p in err.value.msg
    return err.value.problems


# --- naming ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serving_url", "version", "name"),
    [
        ("iris_onnx", None, "iris_onnx"),
        ("iris_onnx", "", "iris_onnx"),
        ("test_model_pytorch", "1", "test_model_pytorch_1"),
        ("detector", 2, "detector_2"),  # model_monitoring_eps versions
        ("a.b-c", "10", "a.b-c_10"),
        ("zero", 0, "zero"),  # clearml-serving tests the version's truthiness
        ("zero", "0", "zero_0"),
    ],
)
def test_model_folder_is_the_name_clearml_serving_asks_triton_for(
    files: Files, serving_url: str, version: Any, name: str
) -> None:
    url = ModelRequestProcessor._normalize_endpoint_url(serving_url, version)  # the key clearml-serving uses
    ep = endpoint(serving_url=serving_url, version=version)
    m = plan_one(ep, files.model("ONNX", files.file("model.onnx")), url=url)
    assert m.name == m.dir == name == request_model_name(serving_url, version)
    assert m.name == url.replace("/", "_")  # the Triton helper's folder for that key
    assert model_config(m.config).name == name


def test_monitored_versions_and_canary_targets_each_get_a_folder(files: Files) -> None:
    eps = {
        "detector/1": endpoint("detector/1"),
        "detector/2": endpoint("detector/2", model_id="b" * 32),
        "plain": endpoint("plain", engine_type="custom"),
    }
    models = {
        MID: files.model("ONNX", files.file("model.onnx")),
        "b" * 32: files.model("ONNX", files.file("model.onnx")),
    }
    plan = plan_repository(eps, models)
    assert [m.name for m in plan.models] == ["detector_1", "detector_2"]
    assert plan.skipped == [{"url": "plain", "reason": "engine_type 'custom' is not served by Triton"}]


# --- layouts per framework -------------------------------------------------------------------------

ONNX_PLATFORM = {"platform": "onnxruntime_onnx"}


def _single(name: str) -> Callable[[Files], dict[str, Any]]:
    return lambda f: f.file(name)


LAYOUTS: list[tuple[str, str | None, Callable[[Files], list[dict[str, str]]], bool, Any, list[str], dict]] = [
    # id, framework, files, package, aux, expected files under the model folder, declaration
    ("onnx-file", "ONNX", lambda f: [f.file("model.onnx")], False, None, ["1/model.onnx"], ONNX_PLATFORM),
    # clearml-serving names a single-file ONNX 1/model.bin, which onnxruntime_onnx never loads
    ("onnx-any-name", "ONNX", lambda f: [f.file("iris.bin")], False, None, ["1/model.onnx"], ONNX_PLATFORM),
    (
        "onnx-zip-external-data",
        "ONNX",
        lambda f: [f.zip({"model.onnx": b"g", "weights.bin": b"w"})],
        True,
        None,
        ["1/model.onnx", "1/weights.bin"],
        ONNX_PLATFORM,
    ),
    (
        "onnx-zip-renamed",
        "onnx",
        lambda f: [f.zip({"net.onnx": b"g", "labels.txt": b"l"})],
        True,
        None,
        ["1/labels.txt", "1/model.onnx"],
        ONNX_PLATFORM,
    ),
    (
        "onnx-folder",
        "ONNX",
        lambda f: [f.file("model.onnx"), f.file("data/w.bin")],
        True,
        None,
        ["1/data/w.bin", "1/model.onnx"],
        ONNX_PLATFORM,
    ),
    (
        "onnx-backend",
        "ONNX",
        lambda f: [f.file("model.onnx")],
        False,
        {"backend": '"onnxruntime"'},
        ["1/model.onnx"],
        {"backend": "onnxruntime"},
    ),
    (
        "pytorch",
        "PyTorch",
        lambda f: [f.file("model.pt")],
        False,
        None,
        ["1/model.pt"],
        {"backend": "pytorch"},
    ),
    (
        "pytorch-libtorch",
        "PyTorch",
        lambda f: [f.file("weights.pth")],
        False,
        {"platform": '"pytorch_libtorch"'},
        ["1/model.pt"],
        {"platform": "pytorch_libtorch"},
    ),
    (
        "pytorch-zip",
        "PyTorch",
        lambda f: [f.zip({"traced.pt": b"t", "extra.json": b"{}"})],
        True,
        None,
        ["1/extra.json", "1/model.pt"],
        {"backend": "pytorch"},
    ),
    (
        "tf-savedmodel",
        "TensorFlow",
        lambda f: [f.zip({"saved_model.pb": b"s", "variables/variables.index": b"i", "variables/d": b"d"})],
        True,
        None,
        [
            "1/model.savedmodel/saved_model.pb",
            "1/model.savedmodel/variables/d",
            "1/model.savedmodel/variables/variables.index",
        ],
        {"platform": "tensorflow_savedmodel"},
    ),
    (
        "keras-savedmodel-in-a-folder",
        "Keras",
        lambda f: [f.zip({"export/saved_model.pb": b"s", "export/variables/v": b"v"})],
        True,
        None,
        ["1/model.savedmodel/saved_model.pb", "1/model.savedmodel/variables/v"],
        {"platform": "tensorflow_savedmodel"},
    ),
    (
        "tf-graphdef",
        "TensorFlow",
        lambda f: [f.file("frozen.pb")],
        False,
        None,
        ["1/model.graphdef"],
        {"platform": "tensorflow_graphdef"},
    ),
    (
        "tf-backend-savedmodel",
        "TensorFlow",
        lambda f: [f.zip({"saved_model.pb": b"s"})],
        True,
        {"backend": "tensorflow", "platform": "tensorflow_savedmodel"},
        ["1/model.savedmodel/saved_model.pb"],
        {"backend": "tensorflow", "platform": "tensorflow_savedmodel"},
    ),
    (
        "tensorrt",
        "TensorRT",
        lambda f: [f.file("engine.plan")],
        False,
        None,
        ["1/model.plan"],
        {"platform": "tensorrt_plan"},
    ),
    (
        "tensorrt-zip",
        "TensorRT",
        lambda f: [f.zip({"x.engine": b"e"})],
        True,
        None,
        ["1/model.plan"],
        {"platform": "tensorrt_plan"},
    ),
    (
        "python-own-model-py",
        "ScikitLearn",
        lambda f: [f.zip({"model.py": b"class TritonPythonModel: pass\n", "clf.pkl": b"p"})],
        True,
        'backend: "python"',
        ["1/clf.pkl", "1/model.py"],
        {"backend": "python"},
    ),
    (
        "python-single-py",
        None,
        lambda f: [f.file("serve.py")],
        False,
        {"backend": "python"},
        ["1/model.py"],
        {"backend": "python"},
    ),
    (
        "no-framework-aux-platform",
        None,
        lambda f: [f.file("model.bin")],
        False,
        {"platform": '"onnxruntime_onnx"'},
        ["1/model.onnx"],
        ONNX_PLATFORM,
    ),
]


@pytest.mark.parametrize(
    ("framework", "make", "package", "aux", "expected", "declaration"),
    [case[1:] for case in LAYOUTS],
    ids=[case[0] for case in LAYOUTS],
)
def test_layout_and_declaration_per_framework(
    files: Files,
    framework: str | None,
    make: Callable[[Files], list[dict[str, str]]],
    package: bool,
    aux: Any,
    expected: list[str],
    declaration: dict[str, str],
) -> None:
    ep = endpoint(auxiliary_cfg=aux)
    m = plan_one(ep, files.model(framework, *make(files), package=package))
    assert [f.path for f in m.files] == sorted([*expected, "config.pbtxt"])
    assert m.declaration == declaration
    parsed = to_python(parse_pbtxt(m.config))
    for key in ("platform", "backend"):
        assert parsed.get(key) == declaration.get(key)
    assert parsed["name"] == "m"


def test_file_digests_are_the_contents(files: Files) -> None:
    model = files.model(
        "TensorFlow", files.zip({"saved_model.pb": b"graph", "variables/v": b"vars"}), package=True
    )
    m = plan_one(endpoint(), model)
    by_path = {f.path: f for f in m.files}
    assert by_path["1/model.savedmodel/saved_model.pb"].sha256 == hashlib.sha256(b"graph").hexdigest()
    assert by_path["1/model.savedmodel/variables/v"].size == 4
    assert by_path["config.pbtxt"].sha256 == hashlib.sha256(m.config.encode()).hexdigest()
    assert m.digest == tree_digest({f.path: f.sha256 for f in m.files})


def test_known_blob_digest_is_trusted_for_the_plan_and_checked_when_writing(
    files: Files, tmp_path: Path
) -> None:
    f = files.file("model.onnx", b"weights")
    f["blob"] = hashlib.sha256(b"other").hexdigest()  # the bundle claims another content
    plan = plan_repository({"m": endpoint()}, {MID: files.model("ONNX", f)})
    assert {x.path: x.sha256 for x in plan.models[0].files}["1/model.onnx"] == f["blob"]
    dest = tmp_path / "repo"
    with pytest.raises(ClearmlModuleError, match="has sha256"):
        write_repository(plan, dest)
    assert not (dest / "m").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # staging removed


# --- config.pbtxt ----------------------------------------------------------------------------------


def test_config_of_the_clearml_serving_pytorch_example(files: Files) -> None:
    ep = endpoint(
        "test_model_pytorch/1",
        input_size=[[1, 28, 28]],
        input_name=["INPUT__0"],
        output_size=[[-1, 10]],
        output_name=["OUTPUT__0"],
    )
    m = plan_one(ep, files.model("PyTorch", files.file("model.pt")), url="test_model_pytorch/1")
    assert m.config == (
        "# Generated by deploy2standalone.clearml from clearml-serving endpoint 'test_model_pytorch/1'.\n"
        'name: "test_model_pytorch_1"\n'
        'backend: "pytorch"\n'
        "max_batch_size: 0\n"
        "input [\n"
        "  {\n"
        '    name: "INPUT__0"\n'
        "    data_type: TYPE_FP32\n"
        "    dims: [ 1, 28, 28 ]\n"
        "  }\n"
        "]\n"
        "output [\n"
        "  {\n"
        '    name: "OUTPUT__0"\n'
        "    data_type: TYPE_FP32\n"
        "    dims: [ -1, 10 ]\n"
        "  }\n"
        "]\n"
    )


def test_several_inputs_and_outputs_keep_their_order(files: Files) -> None:
    ep = endpoint(
        input_size=[[-1, 4], [1], [2, 2]],
        input_type=["float32", "int64", "bool"],
        input_name=["features", "ids", "mask"],
        output_size=[[-1, 3], [1]],
        output_type=["float16", "object"],
        output_name=["probs", "label"],
    )
    cfg = model_config(plan_one(ep, files.model("ONNX", files.file("model.onnx"))).config)
    assert [(i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input] == [
        ("features", "TYPE_FP32", [-1, 4]),
        ("ids", "TYPE_INT64", [1]),
        ("mask", "TYPE_BOOL", [2, 2]),
    ]
    assert [(o.name, model_config_pb2.DataType.Name(o.data_type), list(o.dims)) for o in cfg.output] == [
        ("probs", "TYPE_FP16", [-1, 3]),
        ("label", "TYPE_STRING", [1]),
    ]


def test_single_values_are_normalised_as_clearml_serving_does(files: Files) -> None:
    """``--input-size 1 4`` is stored as [1, 4] on older services; names and types as scalars."""
    ep = endpoint(
        input_size=[1, 4],
        input_type="float32",
        input_name="x",
        output_size=[3],
        output_type="int32",
        output_name="y",
    )
    cfg = model_config(plan_one(ep, files.model("ONNX", files.file("model.onnx"))).config)
    assert list(cfg.input[0].dims) == [1, 4] and cfg.input[0].name == "x"
    assert list(cfg.output[0].dims) == [3] and cfg.output[0].data_type == model_config_pb2.TYPE_INT32


@pytest.mark.parametrize(
    ("aux", "input_size", "max_batch_size", "dims", "warned"),
    [
        (None, [[-1, 4]], 0, [-1, 4], False),  # no batching: dims are the whole request shape
        (None, [[1, 4]], 0, [1, 4], False),
        (["max_batch_size=8"], [[4]], 8, [4], False),  # batching: dims exclude the batch dim
        (
            ["max_batch_size=8"],
            [[-1, 4]],
            8,
            [-1, 4],
            True,
        ),  # written as given; a variable dim after the batch
        ("max_batch_size: 16\ndynamic_batching { }", [[3, 224, 224]], 16, [3, 224, 224], False),
    ],
)
def test_dims_are_written_as_given_with_and_without_batching(
    files: Files, aux: Any, input_size: list, max_batch_size: int, dims: list, warned: bool
) -> None:
    """clearml-serving 1.3.5 writes dims verbatim whatever max_batch_size is (checked against its helper);
    Triton then reads them without the batch dimension when max_batch_size > 0."""
    aux_cfg = aux_from_cli(*aux) if isinstance(aux, list) else aux
    ep = endpoint(input_size=input_size, auxiliary_cfg=aux_cfg)
    plan = plan_repository({"m": ep}, {MID: files.model("ONNX", files.file("model.onnx"))})
    cfg = model_config(plan.models[0].config)
    assert cfg.max_batch_size == max_batch_size
    assert list(cfg.input[0].dims) == dims
    assert list(cfg.input[0].dims) == list(clearml_serving_config(ep, "ONNX").input[0].dims)
    assert bool(plan.warnings) is warned
    if warned:
        assert "'m'" in plan.warnings[0] and "max_batch_size is 8" in plan.warnings[0]


def clearml_serving_config(
    ep: dict[str, Any], framework: str, tmp: Path | None = None
) -> model_config_pb2.ModelConfig:
    """The config clearml-serving 1.3.5's Triton helper writes for the endpoint, read by protobuf."""
    import tempfile

    fields = {k: v for k, v in ep.items() if hasattr(ModelEndpoint.__attrs_attrs__, k)}
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "config.pbtxt"
        TritonHelper.create_config_pbtxt(ModelEndpoint(**fields), str(target), platform=framework)
        return model_config(target.read_text())


@pytest.mark.parametrize(
    ("framework", "aux"),
    [
        ("PyTorch", None),
        ("ONNX", None),
        ("TensorFlow", None),
        # the seed's demo endpoint: --aux-config max_batch_size=8 platform="onnxruntime_onnx" dynamic_batching...
        (
            "ONNX",
            [
                "max_batch_size=8",
                'platform="onnxruntime_onnx"',
                "dynamic_batching.max_queue_delay_microseconds=100",
            ],
        ),
        ("ONNX", ["response_cache.enable=true", "optimization.priority=PRIORITY_MAX"]),
        ("ONNX", ["instance_group=[{kind: KIND_GPU, count: 2, gpus: [0, 1]}]"]),
        (
            "ONNX",
            'platform: "onnxruntime_onnx"\nmax_batch_size: 4\n# a comment\ndynamic_batching { preferred_batch_size: [2, 4] }\n',
        ),
        (
            "PyTorch",
            'model_warmup [{ name: "w" batch_size: 1 inputs { key: "INPUT__0" value { data_type: TYPE_FP32 dims: [1, 4] zero_data: true } } }]\n',
        ),
    ],
)
def test_same_config_as_clearml_serving_writes(files: Files, framework: str, aux: Any) -> None:
    """Where clearml-serving's config works, ours is the same ModelConfig (plus the model's name)."""
    aux_cfg = aux_from_cli(*aux) if isinstance(aux, list) else aux
    ep = endpoint(input_size=[[1, 4]], output_size=[[1, 3]], auxiliary_cfg=aux_cfg)
    if framework == "TensorFlow":
        model = files.model(framework, files.zip({"saved_model.pb": b"s"}), package=True)
    else:
        model = files.model(framework, files.file("model.onnx" if framework == "ONNX" else "model.pt"))
    ours = model_config(plan_one(ep, model).config)
    theirs = clearml_serving_config(ep, framework)
    assert ours.name == "m" and theirs.name == ""
    ours.ClearField("name")
    assert ours == theirs


@pytest.mark.parametrize(
    ("framework", "over", "fixed"),
    [
        # a raw config.pbtxt naming its backend: clearml-serving adds `backend: "pytorch"` a second time
        ("PyTorch", {"auxiliary_cfg": 'backend: "pytorch"\n'}, lambda c: c.backend == "pytorch"),
        # object/bytes outputs: clearml-serving writes TYPE_BYTES, which is no Triton data type
        (
            "ONNX",
            {"output_type": ["object"]},
            lambda c: c.output[0].data_type == model_config_pb2.TYPE_STRING,
        ),
    ],
)
def test_where_clearml_serving_writes_a_config_triton_refuses(
    files: Files, framework: str, over: dict[str, Any], fixed: Callable[[Any], bool]
) -> None:
    ep = endpoint(**over)
    with pytest.raises(text_format.ParseError):
        clearml_serving_config(ep, framework)
    model = files.model(framework, files.file("model.onnx" if framework == "ONNX" else "model.pt"))
    assert fixed(model_config(plan_one(ep, model).config))


@pytest.mark.parametrize(
    ("aux", "expected"),
    [
        # stored with the quotes inside the value, the way the CLI's HOCON parse leaves them
        ({"platform": '"onnxruntime_onnx"'}, {"platform": "onnxruntime_onnx"}),
        ({"platform": "'onnxruntime_onnx'"}, {"platform": "onnxruntime_onnx"}),
        ({"platform": '\\"onnxruntime_onnx\\"'}, {"platform": "onnxruntime_onnx"}),
        # a string aux config is a config.pbtxt file's text
        ('platform: "onnxruntime_onnx"', {"platform": "onnxruntime_onnx"}),
        (
            {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 100}},
            {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 100}},
        ),
        (
            "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 100 }",
            {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 100}},
        ),
        # HOCON dotted keys with indices become lists; enum-looking strings of enum fields stay enums
        (
            {"instance_group": {"0": {"kind": "KIND_CPU", "count": 2}}},
            {"instance_group": [{"kind": "KIND_CPU", "count": 2}]},
        ),
        ({"response_cache": {"enable": True}}, {"response_cache": {"enable": True}}),
        (
            {"parameters": {"key": "intra_op_thread_count", "value": {"string_value": "2"}}},
            {"parameters": [{"key": "intra_op_thread_count", "value": {"string_value": "2"}}]},
        ),
        (
            {"parameters": {"a": "1", "b": {"string_value": '"2"'}}},
            {
                "parameters": [
                    {"key": "a", "value": {"string_value": "1"}},
                    {"key": "b", "value": {"string_value": "2"}},
                ]
            },
        ),
        (
            'parameters { key: "b" value { string_value: "2" } }\nparameters { key: "a" value { string_value: "1" } }',
            {
                "parameters": [
                    {"key": "a", "value": {"string_value": "1"}},
                    {"key": "b", "value": {"string_value": "2"}},
                ]
            },
        ),
        (
            {"version_policy": {"latest": {"num_versions": 1}}},
            {"version_policy": {"latest": {"num_versions": 1}}},
        ),
    ],
)
def test_auxiliary_config_merge(files: Files, aux: Any, expected: dict[str, Any]) -> None:
    m = plan_one(endpoint(auxiliary_cfg=aux), files.model("ONNX", files.file("model.onnx")))
    parsed = to_python(parse_pbtxt(m.config))
    for key, value in expected.items():
        assert parsed[key] == value, key
    assert parsed["platform"] == "onnxruntime_onnx"
    assert parsed["input"][0]["name"] == "INPUT__0"


def test_auxiliary_field_order_does_not_change_the_config(files: Files) -> None:
    aux = {
        "max_batch_size": 4,
        "dynamic_batching": {"max_queue_delay_microseconds": 5, "preferred_batch_size": [2]},
        "platform": "onnxruntime_onnx",
    }
    reordered = {
        "platform": "onnxruntime_onnx",
        "dynamic_batching": {"preferred_batch_size": [2], "max_queue_delay_microseconds": 5},
        "max_batch_size": 4,
    }
    model = files.model("ONNX", files.file("model.onnx", b"same"))
    assert (
        plan_one(endpoint(auxiliary_cfg=aux), model).config
        == plan_one(endpoint(auxiliary_cfg=reordered), model).config
    )


@pytest.mark.parametrize(
    ("option", "aux", "expected"),
    [
        (
            {"kind": "KIND_GPU", "count": 2, "gpus": [0, 1]},
            None,
            [{"kind": "KIND_GPU", "count": 2, "gpus": [0, 1]}],
        ),
        ({"kind": "gpu"}, None, [{"kind": "KIND_GPU", "count": 1}]),
        ({"kind": "KIND_CPU", "count": 3}, None, [{"kind": "KIND_CPU", "count": 3}]),
        (
            [{"kind": "KIND_GPU", "gpus": [0], "name": "a"}, {"kind": "KIND_GPU", "gpus": [1], "count": 2}],
            None,
            [
                {"name": "a", "kind": "KIND_GPU", "count": 1, "gpus": [0]},
                {"kind": "KIND_GPU", "count": 2, "gpus": [1]},
            ],
        ),
        # the site's option wins over the dev endpoint's instance_group; without it, the endpoint's stays
        (
            {"kind": "KIND_CPU"},
            {"instance_group": [{"kind": "KIND_GPU", "count": 4}]},
            [{"kind": "KIND_CPU", "count": 1}],
        ),
        (None, {"instance_group": [{"kind": "KIND_GPU", "count": 4}]}, [{"kind": "KIND_GPU", "count": 4}]),
        (None, None, None),
    ],
)
def test_instance_group_option(files: Files, option: Any, aux: Any, expected: Any) -> None:
    m = plan_one(
        endpoint(auxiliary_cfg=aux), files.model("ONNX", files.file("model.onnx")), instance_group=option
    )
    assert to_python(parse_pbtxt(m.config)).get("instance_group") == expected


def test_instance_groups_per_model_override_the_default(files: Files) -> None:
    eps = {"a": endpoint("a"), "b/1": endpoint("b/1", model_id="b" * 32)}
    models = {
        MID: files.model("ONNX", files.file("model.onnx")),
        "b" * 32: files.model("ONNX", files.file("model.onnx")),
    }
    plan = plan_repository(
        eps,
        models,
        instance_group={"kind": "KIND_CPU"},
        instance_groups={"b_1": {"kind": "KIND_GPU", "gpus": [1]}},
    )
    groups = {m.name: to_python(parse_pbtxt(m.config))["instance_group"] for m in plan.models}
    assert groups == {
        "a": [{"kind": "KIND_CPU", "count": 1}],
        "b_1": [{"kind": "KIND_GPU", "count": 1, "gpus": [1]}],
    }
    by_url = plan_repository(eps, models, instance_groups={"b/1": {"kind": "KIND_GPU"}})
    assert "instance_group" not in to_python(parse_pbtxt(by_url.by_name()["a"].config))
    assert to_python(parse_pbtxt(by_url.by_name()["b_1"].config))["instance_group"] == [
        {"kind": "KIND_GPU", "count": 1}
    ]


# --- data types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("float32", "TYPE_FP32"),
        ("float16", "TYPE_FP16"),
        ("float64", "TYPE_FP64"),
        ("float", "TYPE_FP64"),  # numpy's "float" is float64
        ("double", "TYPE_FP64"),
        ("int8", "TYPE_INT8"),
        ("int16", "TYPE_INT16"),
        ("int32", "TYPE_INT32"),
        ("int64", "TYPE_INT64"),
        ("int", "TYPE_INT64"),
        ("uint8", "TYPE_UINT8"),
        ("uint16", "TYPE_UINT16"),
        ("uint32", "TYPE_UINT32"),
        ("uint64", "TYPE_UINT64"),
        ("bool", "TYPE_BOOL"),
        ("str", "TYPE_STRING"),
        ("object", "TYPE_STRING"),  # clearml-serving writes TYPE_BYTES, which Triton's config refuses
        ("bytes", "TYPE_STRING"),
        ("np.float32", "TYPE_FP32"),
        ("numpy.int64", "TYPE_INT64"),
        ("bfloat16", None),  # numpy has no such dtype: clearml-serving cannot store it
        ("string", None),
        ("float33", None),
        ("FP32", None),
        ("TYPE_FP32", None),
        ("", None),
        (None, None),
        (32, None),
    ],
)
def test_dtype_map(name: Any, expected: str | None) -> None:
    assert triton_dtype(name) == expected


def test_every_dtype_is_a_triton_type_and_agrees_with_clearml_serving() -> None:
    triton_types = set(model_config_pb2.DataType.keys())
    for name, ours in DTYPES.items():
        assert ours in triton_types, name
        theirs = "TYPE_" + TritonHelper.np_to_triton_dtype(np.dtype(name))
        expected = "TYPE_STRING" if theirs == "TYPE_BYTES" else theirs
        assert ours == expected, name


# --- validation ------------------------------------------------------------------------------------


def _bad(files: Files, case: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:  # noqa: PLR0911 - one fixture per case
    """(endpoints, models, options) with one problem, for ``case``."""
    onnx = files.model("ONNX", files.file("model.onnx"))
    models = {MID: onnx}
    if case == "missing-fields":
        return {"bad": endpoint("bad", output_type=None, input_name=None)}, models, {}
    if case == "length-mismatch":
        return {"bad": endpoint("bad", input_name=["a", "b"])}, models, {}
    if case == "unknown-dtype":
        return {"bad": endpoint("bad", output_type=["float33"])}, models, {}
    if case == "dims-not-ints":
        return {"bad": endpoint("bad", input_size=[[-1, "4"]])}, models, {}
    if case == "dims-below-minus-one":
        return {"bad": endpoint("bad", output_size=[[-2, 3]])}, models, {}
    if case == "dims-bool":
        return {"bad": endpoint("bad", input_size=[[True, 4]])}, models, {}
    if case == "dims-empty":
        return {"bad": endpoint("bad", input_size=[[]])}, models, {}
    if case == "duplicate-input-name":
        return (
            {
                "bad": endpoint(
                    "bad", input_size=[[1], [1]], input_type=["int8", "int8"], input_name=["x", "x"]
                )
            },
            models,
            {},
        )
    if case == "platform-mismatch":
        pt = files.model("PyTorch", files.file("model.pt"))
        return (
            {"bad": endpoint("bad", auxiliary_cfg=aux_from_cli('platform="onnxruntime_onnx"'))},
            {MID: pt},
            {},
        )
    if case == "backend-mismatch":
        return {"bad": endpoint("bad", auxiliary_cfg={"backend": "tensorrt"})}, models, {}
    if case == "platform-and-backend-disagree":
        return (
            {"bad": endpoint("bad", auxiliary_cfg={"backend": "pytorch", "platform": "onnxruntime_onnx"})},
            models,
            {},
        )
    if case == "unknown-platform":
        return {"bad": endpoint("bad", auxiliary_cfg='platform: "ensemble"')}, models, {}
    if case == "aux-input":
        return {"bad": endpoint("bad", auxiliary_cfg=aux_from_cli("input.0.format=FORMAT_NCHW"))}, models, {}
    if case == "aux-output":
        return (
            {"bad": endpoint("bad", auxiliary_cfg='output [{ name: "y" data_type: TYPE_FP32 dims: [3] }]')},
            models,
            {},
        )
    if case == "aux-default-model-filename":
        return (
            {"bad": endpoint("bad", auxiliary_cfg=aux_from_cli('default_model_filename="model.bin"'))},
            models,
            {},
        )
    if case == "aux-unreadable":
        return {"bad": endpoint("bad", auxiliary_cfg="max_batch_size: {")}, models, {}
    if case == "aux-wrong-type":
        return {"bad": endpoint("bad", auxiliary_cfg=["max_batch_size=8"])}, models, {}
    if case == "aux-name":
        return {"bad": endpoint("bad", auxiliary_cfg={"name": "other"})}, models, {}
    if case == "aux-max-batch-size":
        return {"bad": endpoint("bad", auxiliary_cfg={"max_batch_size": -1})}, models, {}
    if case == "name-clash":
        eps = {"bad/1": endpoint("bad/1"), "bad_1": endpoint("bad_1")}
        return eps, models, {}
    if case == "serving-url-with-slash":
        return {"bad/x/1": endpoint("bad/x/1", serving_url="bad/x", version="1")}, models, {}
    if case == "key-mismatch":
        return {"bad": endpoint("other")}, models, {}
    if case == "model-not-given":
        return {"bad": endpoint("bad", model_id="f" * 32)}, models, {}
    if case == "model-id-missing":
        return {"bad": endpoint("bad", model_id=None)}, models, {}
    if case == "model-file-missing":
        return (
            {"bad": endpoint("bad")},
            {MID: files.model("ONNX", {"path": "model.onnx", "local": str(files.root / "gone")})},
            {},
        )
    if case == "model-no-files":
        return {"bad": endpoint("bad")}, {MID: files.model("ONNX")}, {}
    if case == "two-files-not-package":
        return (
            {"bad": endpoint("bad")},
            {MID: files.model("ONNX", files.file("a.onnx"), files.file("b.onnx"))},
            {},
        )
    if case == "unsafe-file-path":
        return {"bad": endpoint("bad")}, {MID: files.model("ONNX", files.file("../model.onnx"))}, {}
    if case == "zip-unsafe-member":
        return (
            {"bad": endpoint("bad")},
            {MID: files.model("ONNX", files.zip({"../evil.onnx": b"x"}), package=True)},
            {},
        )
    if case == "zip-broken":
        return (
            {"bad": endpoint("bad")},
            {MID: files.model("ONNX", files.file("model_package.zip", b"not a zip"), package=True)},
            {},
        )
    if case == "package-without-main-file":
        return (
            {"bad": endpoint("bad")},
            {MID: files.model("ONNX", files.zip({"a.txt": b"x"}), package=True)},
            {},
        )
    if case == "package-with-two-candidates":
        return (
            {"bad": endpoint("bad")},
            {MID: files.model("PyTorch", files.zip({"a.pt": b"x", "b.pt": b"y"}), package=True)},
            {},
        )
    if case == "savedmodel-single-file":
        return (
            {"bad": endpoint("bad", auxiliary_cfg={"platform": "tensorflow_savedmodel"})},
            {MID: files.model("TensorFlow", files.file("m.pb"))},
            {},
        )
    if case == "savedmodel-without-pb":
        return (
            {"bad": endpoint("bad")},
            {MID: files.model("TensorFlow", files.zip({"variables/v": b"v"}), package=True)},
            {},
        )
    if case == "graphdef-package":
        return (
            {"bad": endpoint("bad", auxiliary_cfg={"platform": "tensorflow_graphdef"})},
            {MID: files.model("TensorFlow", files.zip({"saved_model.pb": b"s"}), package=True)},
            {},
        )
    if case == "python-without-model-py":
        return (
            {"bad": endpoint("bad", auxiliary_cfg={"backend": "python"})},
            {MID: files.model(None, files.file("weights.bin"))},
            {},
        )
    if case == "unknown-framework":
        return {"bad": endpoint("bad")}, {MID: files.model("ScikitLearn", files.file("model.pkl"))}, {}
    if case == "no-framework":
        return {"bad": endpoint("bad")}, {MID: files.model(None, files.file("model.bin"))}, {}
    if case == "python-backend-without-model-py":
        return {"bad": endpoint("bad")}, models, {"python_backend_for": ["onnx"]}
    if case == "python-backend-model-py-clash":
        pkg = files.model("ONNX", files.zip({"model.onnx": b"g", "model.py": b"p"}), package=True)
        return {"bad": endpoint("bad")}, {MID: pkg}, {"python_backend_for": ["onnx"], "python_model": "x"}
    if case == "not-a-mapping":
        return {"bad": "triton"}, models, {}
    raise AssertionError(case)


VALIDATION = [
    ("missing-fields", "missing: input_name, output_type"),
    ("length-mismatch", "input_name, input_type and input_size differ in length (2, 1, 1)"),
    ("unknown-dtype", "unknown data type 'float33'"),
    ("dims-not-ints", "every dim must be an integer >= -1"),
    ("dims-below-minus-one", "dims [-2, 3]: every dim must be an integer >= -1"),
    ("dims-bool", "every dim must be an integer >= -1"),
    ("dims-empty", "are not a non-empty list of integers"),
    ("duplicate-input-name", "name 'x' appears twice"),
    ("platform-mismatch", "platform 'onnxruntime_onnx' cannot serve a model of framework 'PyTorch'"),
    ("backend-mismatch", "backend 'tensorrt' cannot serve a model of framework 'ONNX'"),
    ("platform-and-backend-disagree", "name different backends"),
    ("unknown-platform", "platform 'ensemble' is not one this collection lays out"),
    ("aux-input", "must not set input"),
    ("aux-output", "must not set output"),
    ("aux-default-model-filename", "must not set default_model_filename"),
    ("aux-unreadable", "cannot be read as a Triton model config"),
    ("aux-wrong-type", "auxiliary_cfg is a list"),
    ("aux-name", "auxiliary_cfg name 'other' differs from the model's folder name 'bad'"),
    ("aux-max-batch-size", "max_batch_size -1 is not an integer >= 0"),
    ("name-clash", "endpoints 'bad/1', 'bad_1' all map to the model folder 'bad_1'"),
    ("serving-url-with-slash", "asks Triton for model 'bad/x_1'"),
    ("key-mismatch", "does not match serving_url 'other'"),
    ("model-not-given", "model ffffffffffffffffffffffffffffffff is not among the models given"),
    ("model-id-missing", "model_id is missing"),
    ("model-file-missing", "model file 'model.onnx' is missing"),
    ("model-no-files", "the model has no files"),
    ("two-files-not-package", "must have one file, not 2"),
    ("unsafe-file-path", "is not a safe relative path"),
    ("zip-unsafe-member", "member name '../evil.onnx' is not a safe relative path"),
    ("zip-broken", "cannot be read as a zip"),
    ("package-without-main-file", "no model.onnx or *.onnx file at its top level"),
    ("package-with-two-candidates", "several candidates ['a.pt', 'b.pt']"),
    ("savedmodel-single-file", "tensorflow_savedmodel needs a SavedModel folder"),
    ("savedmodel-without-pb", "holds no saved_model.pb"),
    ("graphdef-package", "tensorflow_graphdef needs a single GraphDef file"),
    ("python-without-model-py", "backend python needs a model.py"),
    ("unknown-framework", "framework 'scikitlearn' has no Triton backend here"),
    ("no-framework", "the model has no framework and auxiliary_cfg names no platform or backend"),
    ("python-backend-without-model-py", "no python_model was given"),
    ("python-backend-model-py-clash", "the model's own files include model.py"),
    ("not-a-mapping", "not a mapping"),
]


@pytest.mark.parametrize(("case", "fragment"), VALIDATION, ids=[c for c, _ in VALIDATION])
def test_each_validation_failure_names_the_endpoint(
    files: Files, case: str, fragment: str, tmp_path: Path
) -> None:
    eps, models, options = _bad(files, case)
    problems = problems_of(eps, models, **options)
    matching = [p for p in problems if fragment in p]
    assert matching, problems
    for p in matching:
        assert any(repr(url) in p for url in eps), p
    dest = tmp_path / "repo"
    assert not dest.exists()  # nothing written: planning raises before any write can happen


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ({"kind": "KIND_TPU"}, "kind 'KIND_TPU' is not one of"),
        ({"kind": "KIND_GPU", "count": 0}, "count 0 is not an integer >= 1"),
        ({"kind": "KIND_CPU", "gpus": [0]}, "gpus are only meaningful with kind KIND_GPU"),
        ({"kind": "KIND_GPU", "gpus": [-1]}, "is not a list of device ids"),
        ({"kind": "KIND_GPU", "cpus": 2}, "unknown keys ['cpus']"),
        (["KIND_GPU"], "is not a mapping"),
    ],
)
def test_instance_group_option_is_checked(files: Files, option: Any, fragment: str) -> None:
    problems = problems_of(
        {"m": endpoint()}, {MID: files.model("ONNX", files.file("model.onnx"))}, instance_group=option
    )
    assert any(p.startswith("instance_group[0]: ") and fragment in p for p in problems), problems


def test_instance_groups_for_unknown_models_are_refused(files: Files) -> None:
    problems = problems_of(
        {"m": endpoint()},
        {MID: files.model("ONNX", files.file("model.onnx"))},
        instance_groups={"nope": {"kind": "KIND_CPU"}},
    )
    assert problems == ["instance_groups['nope']: no triton endpoint or model of that name"]


def test_all_problems_of_all_endpoints_come_at_once(files: Files) -> None:
    eps: dict[str, Any] = {}
    models: dict[str, Any] = {}
    cases = ["unknown-dtype", "platform-mismatch", "aux-input", "model-file-missing"]
    for i, case in enumerate(cases):
        case_eps, case_models, _ = _bad(files, case)
        mid = f"{i:032x}"
        for url, ep in case_eps.items():
            new_url = f"{url}{i}"
            eps[new_url] = {**ep, "serving_url": f"{ep['serving_url']}{i}", "model_id": mid}
        models[mid] = case_models[MID]
    eps["fine"] = endpoint("fine", model_id="e" * 32)
    models["e" * 32] = files.model("ONNX", files.file("model.onnx"))
    problems = problems_of(eps, models)
    assert sorted({p.split(":", 1)[0] for p in problems}) == [f"endpoint 'bad{i}'" for i in range(len(cases))]
    assert "'fine'" not in " ".join(problems)


# --- determinism -----------------------------------------------------------------------------------


def _demo(files: Files, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A mixed deployment; ``seed`` shuffles dict orders (the content is the same)."""
    rng = random.Random(seed)
    onnx_file = files.file("model.onnx", b"onnx-weights")
    pt_file = files.file("model.pt", b"torch-weights")
    tf_zip = files.zip({"saved_model.pb": b"s", "variables/v": b"v"})
    eps = {
        "iris_onnx": endpoint(
            "iris_onnx",
            input_size=[[4]],
            output_size=[[3]],
            auxiliary_cfg=aux_from_cli(
                "max_batch_size=8",
                'platform="onnxruntime_onnx"',
                "dynamic_batching.max_queue_delay_microseconds=100",
            ),
        ),
        "digits/1": endpoint("digits/1", model_id="b" * 32),
        "digits/2": endpoint("digits/2", model_id="c" * 32),
        "custom": endpoint("custom", engine_type="custom"),
    }
    models = {
        MID: files.model("ONNX", onnx_file),
        "b" * 32: files.model("PyTorch", pt_file),
        "c" * 32: files.model("TensorFlow", tf_zip, package=True),
    }

    def shuffled(d: dict[str, Any]) -> dict[str, Any]:
        keys = list(d)
        rng.shuffle(keys)
        return {k: shuffled(d[k]) if isinstance(d[k], dict) else d[k] for k in keys}

    return shuffled(eps), shuffled(models)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_input_gives_byte_identical_output(files: Files, tmp_path: Path) -> None:
    eps1, models1 = _demo(files, 1)
    eps2, models2 = _demo(files, 2)
    plan1 = plan_repository(eps1, models1, instance_group={"kind": "KIND_CPU"})
    plan2 = plan_repository(eps2, models2, instance_group={"kind": "KIND_CPU"})

    def content(plan: Any) -> Any:  # sources (local blob paths) differ between the two calls
        return [
            (m.name, m.config, [(f.path, f.sha256, f.size) for f in m.files], m.digest) for m in plan.models
        ]

    assert content(plan1) == content(plan2)
    assert plan1.digest == plan2.digest
    json.dumps(plan1.as_dict())  # JSON-ready for module results
    write_repository(plan1, tmp_path / "r1")
    write_repository(plan2, tmp_path / "r2")
    assert _tree(tmp_path / "r1") == _tree(tmp_path / "r2")
    assert repository_state(tmp_path / "r1") == {m.name: m.digest for m in plan1.models}


# --- python backend option ------------------------------------------------------------------------


def test_python_backend_for_onnx_serves_the_onnx_file_with_the_generic_model_py(files: Files) -> None:
    aux = aux_from_cli("max_batch_size=8", 'platform="onnxruntime_onnx"')
    m = plan_one(
        endpoint(input_size=[[4]], output_size=[[3]], auxiliary_cfg=aux),
        files.model("ONNX", files.file("iris.onnx", b"onnx")),
        python_backend_for=["ONNX"],
        python_model=GENERIC_MODEL_PY,  # a path: read
    )
    assert m.python_backend is True
    assert [f.path for f in m.files] == ["1/model.onnx", "1/model.py", "config.pbtxt"]
    py = next(f for f in m.files if f.path == "1/model.py")
    assert py.sha256 == hashlib.sha256(GENERIC_MODEL_PY.read_bytes()).hexdigest()
    cfg = model_config(m.config)
    assert cfg.backend == "python" and cfg.platform == ""  # the aux platform described the native backend
    assert cfg.max_batch_size == 8
    assert dict(cfg.parameters)["onnx_model_filename"].string_value == "model.onnx"
    assert m.declaration == {"backend": "python"}


@pytest.mark.parametrize(
    ("framework", "make", "package", "expected", "parameter"),
    [
        (
            "ONNX",
            lambda f: [f.zip({"net.onnx": b"g", "w.bin": b"w"})],
            True,
            ["1/model.onnx", "1/w.bin"],
            ("onnx_model_filename", "model.onnx"),
        ),
        ("PyTorch", lambda f: [f.file("model.pt")], False, ["1/model.pt"], ("model_filename", "model.pt")),
        (
            "TensorFlow",
            lambda f: [f.zip({"saved_model.pb": b"s"})],
            True,
            ["1/model.savedmodel/saved_model.pb"],
            ("model_filename", "model.savedmodel"),
        ),
        ("ScikitLearn", lambda f: [f.file("clf.pkl")], False, ["1/clf.pkl"], ("model_filename", "clf.pkl")),
        (
            "ScikitLearn",
            lambda f: [f.zip({"clf.pkl": b"p", "meta.json": b"{}"})],
            True,
            ["1/clf.pkl", "1/meta.json"],
            None,
        ),
    ],
)
def test_python_backend_for_other_frameworks(
    files: Files, framework: str, make: Callable, package: bool, expected: list[str], parameter: Any
) -> None:
    m = plan_one(
        endpoint(),
        files.model(framework, *make(files), package=package),
        python_backend_for=["onnx", "pytorch", "tensorflow", "scikitlearn"],
        python_model="# generic\n",
    )
    assert [f.path for f in m.files] == sorted([*expected, "1/model.py", "config.pbtxt"])
    params = {k: v.string_value for k, v in model_config(m.config).parameters.items()}
    assert params == (dict([parameter]) if parameter else {})


def test_python_backend_for_leaves_other_frameworks_native(files: Files) -> None:
    eps = {"o": endpoint("o"), "p": endpoint("p", model_id="b" * 32)}
    models = {
        MID: files.model("ONNX", files.file("model.onnx")),
        "b" * 32: files.model("PyTorch", files.file("model.pt")),
    }
    plan = plan_repository(eps, models, python_backend_for=["onnx"], python_model=b"# generic\n")
    assert {m.name: m.declaration for m in plan.models} == {
        "o": {"backend": "python"},
        "p": {"backend": "pytorch"},
    }


def test_python_backend_keeps_aux_parameters_and_ours_win(files: Files) -> None:
    aux = {"parameters": {"intra_op_threads": "2", "onnx_model_filename": "other.onnx"}}
    m = plan_one(
        endpoint(auxiliary_cfg=aux),
        files.model("ONNX", files.file("model.onnx")),
        python_backend_for=["onnx"],
        python_model="x",
    )
    params = {k: v.string_value for k, v in model_config(m.config).parameters.items()}
    assert params == {"intra_op_threads": "2", "onnx_model_filename": "model.onnx"}


# --- writing -----------------------------------------------------------------------------------------


def test_write_then_rewrite_touches_only_changed_models(files: Files, tmp_path: Path) -> None:
    eps, models = _demo(files, 0)
    dest = tmp_path / "site" / "models"
    plan = plan_repository(eps, models)
    assert compare_repository(plan, dest)["added"] == ["digits_1", "digits_2", "iris_onnx"]
    first = write_repository(plan, dest)
    assert first["changed"] and first["added"] == ["digits_1", "digits_2", "iris_onnx"]
    assert (dest / "iris_onnx" / "1" / "model.onnx").read_bytes() == b"onnx-weights"
    assert (dest / "digits_2" / "1" / "model.savedmodel" / "variables" / "v").read_bytes() == b"v"
    assert oct((dest / "iris_onnx" / "config.pbtxt").stat().st_mode & 0o777) == "0o644"
    assert oct((dest / "iris_onnx" / "1").stat().st_mode & 0o777) == "0o755"
    inode = (dest / "digits_1" / "1" / "model.pt").stat().st_ino

    second = write_repository(plan, dest)
    assert second["changed"] is False and second["unchanged"] == ["digits_1", "digits_2", "iris_onnx"]

    # One endpoint changes (its aux config), one disappears: only those folders move.
    eps["iris_onnx"] = {**eps["iris_onnx"], "auxiliary_cfg": {"max_batch_size": 4}}
    del eps["digits/2"]
    plan2 = plan_repository(eps, models)
    assert compare_repository(plan2, dest) == {
        **compare_repository(plan2, dest),
        "updated": ["iris_onnx"],
        "removed": ["digits_2"],
    }
    third = write_repository(plan2, dest)
    assert (third["added"], third["updated"], third["unchanged"], third["removed"]) == (
        [],
        ["iris_onnx"],
        ["digits_1"],
        ["digits_2"],
    )
    assert model_config((dest / "iris_onnx" / "config.pbtxt").read_text()).max_batch_size == 4
    assert not (dest / "digits_2").exists()
    assert (dest / "digits_1" / "1" / "model.pt").stat().st_ino == inode  # untouched
    assert sorted(p.name for p in (tmp_path / "site").iterdir()) == ["models"]  # no staging left over


def test_prune_false_keeps_foreign_folders_and_hidden_entries_are_never_touched(
    files: Files, tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    (dest / "foreign" / "1").mkdir(parents=True)
    (dest / ".hidden").mkdir()
    (dest / "README").write_text("hello")
    plan = plan_repository({"m": endpoint()}, {MID: files.model("ONNX", files.file("model.onnx"))})
    result = write_repository(plan, dest, prune=False)
    assert result["removed"] == [] and (dest / "foreign").is_dir()
    result = write_repository(plan, dest)
    assert result["removed"] == ["foreign"] and not (dest / "foreign").exists()
    assert (dest / ".hidden").is_dir() and (dest / "README").read_text() == "hello"


def test_a_tampered_model_is_rewritten(files: Files, tmp_path: Path) -> None:
    plan = plan_repository({"m": endpoint()}, {MID: files.model("ONNX", files.file("model.onnx", b"good"))})
    dest = tmp_path / "models"
    write_repository(plan, dest)
    (dest / "m" / "1" / "model.onnx").write_bytes(b"evil")
    assert compare_repository(plan, dest)["updated"] == ["m"]
    (dest / "m" / "1" / "extra").write_bytes(b"")
    assert write_repository(plan, dest)["updated"] == ["m"]
    assert (dest / "m" / "1" / "model.onnx").read_bytes() == b"good"
    assert not (dest / "m" / "1" / "extra").exists()
    (dest / "m" / "1" / "__pycache__").mkdir()  # Python's bytecode cache (python backend): not content
    (dest / "m" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"pyc")
    assert compare_repository(plan, dest)["changed"] is False
    os.symlink("/etc/passwd", dest / "m" / "1" / "link")
    assert repository_state(dest) == {"m": None}
    assert write_repository(plan, dest)["updated"] == ["m"]
    assert repository_state(dest) == {"m": plan.models[0].digest}


def test_hardlink_option_links_the_blob(files: Files, tmp_path: Path) -> None:
    f = files.file("model.onnx", b"weights")
    plan = plan_repository({"m": endpoint()}, {MID: files.model("ONNX", f)})
    dest = tmp_path / "models"
    write_repository(plan, dest, hardlink=True)
    assert (dest / "m" / "1" / "model.onnx").stat().st_ino == Path(f["local"]).stat().st_ino
    assert repository_state(dest) == {"m": plan.models[0].digest}


def test_zip_members_are_extracted(files: Files, tmp_path: Path) -> None:
    model = files.model("ONNX", files.zip({"net.onnx": b"graph", "data/w.bin": b"w" * 5000}), package=True)
    plan = plan_repository({"m": endpoint()}, {MID: model})
    write_repository(plan, tmp_path / "models")
    assert _tree(tmp_path / "models" / "m") == {
        "1/data/w.bin": b"w" * 5000,
        "1/model.onnx": b"graph",
        "config.pbtxt": plan.models[0].config.encode(),
    }


def test_a_symlinked_destination_is_written_through(files: Files, tmp_path: Path) -> None:
    target = tmp_path / "disk" / "models"
    target.mkdir(parents=True)
    link = tmp_path / "models"
    link.symlink_to(target)
    plan = plan_repository({"m": endpoint()}, {MID: files.model("ONNX", files.file("model.onnx"))})
    assert write_repository(plan, link)["added"] == ["m"]
    assert link.is_symlink() and (target / "m" / "1" / "model.onnx").is_file()
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["models"]
    assert write_repository(plan, link)["changed"] is False
