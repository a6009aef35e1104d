# SPDX-License-Identifier: GPL-3.0-or-later
"""triton_image: documentation and argument handling, the container spec and its diff, GPU requests, smoke
requests from declared shapes and data types, build inputs, and check mode against the real docker daemon.

(Named test_triton_image_module.py: tests/integration/images/test_triton_image.py has the plain name, and
pytest's default import mode needs unique basenames.)
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from d2s_testlib import REPO, docker_available

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_container import (
    ContainerState,
    DockerCli,
    DockerError,
    build_spec,
    container_differences,
    gpu_request,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_http import (
    SmokeError,
    Tensor,
    check_response,
    endpoint_tensors,
    nested_shape,
    smoke_request,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_image import (
    DOCKERFILE,
    BuildInputs,
    TritonImageError,
    requirements_text,
    wheelhouse,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_serve import (
    TritonImageCore,
    _models_to_load,
    select_endpoints,
)
from ansible_collections.deploy2standalone.clearml.plugins.modules import triton_image

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from unittest import mock

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args: dict[str, Any] | None = None) -> Iterator[None]:
        with mock.patch.object(
            basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))
        ):
            yield


MODEL_ID = "8e8099fac1e64499823676dc80ee5d70"
# The seeded demo's Triton endpoint, as clearml-serving stores it (the aux config's quotes included).
IRIS = {
    "engine_type": "triton",
    "serving_url": "iris_onnx",
    "version": "",
    "model_id": MODEL_ID,
    "input_name": ["features"],
    "input_type": ["float32"],
    "input_size": [[4]],
    "output_name": ["probabilities"],
    "output_type": ["float32"],
    "output_size": [[3]],
    "auxiliary_cfg": {
        "max_batch_size": 8,
        "platform": '"onnxruntime_onnx"',
        "dynamic_batching": {"max_queue_delay_microseconds": 100},
    },
}


def params(**over: Any) -> dict[str, Any]:
    """The module's parameters as AnsibleModule hands them to the core (defaults filled in)."""
    values = {name: spec.get("default") for name, spec in triton_image.ARGUMENT_SPEC.items()}
    values.update(over)
    return values


def run_main(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        triton_image.main()
    return int(info.value.code or 0), json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------------------------------- documentation


def test_documentation_matches_the_argspec() -> None:
    doc = yaml.safe_load(triton_image.DOCUMENTATION)
    assert doc["module"] == "triton_image"
    assert doc["extends_documentation_fragment"] == ["deploy2standalone.clearml.attributes"]
    assert set(doc["attributes"]) == {"check_mode", "diff_mode", "idempotent"}
    options = doc["options"]
    assert set(options) == set(triton_image.ARGUMENT_SPEC)
    for name, spec in triton_image.ARGUMENT_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("default") == spec.get("default"), name
        assert options[name].get("choices") == spec.get("choices"), name
        assert options[name].get("elements") == spec.get("elements"), name
        assert options[name]["description"], name
    returns = yaml.safe_load(triton_image.RETURN)
    for key, entry in returns.items():
        assert {"description", "returned", "type", "sample"} <= set(entry), key
    for task in yaml.safe_load(triton_image.EXAMPLES):
        assert task["name"]
        assert any(k.startswith(("deploy2standalone.clearml.", "ansible.builtin.")) for k in task)


def test_not_in_the_clearml_action_group() -> None:
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    assert "triton_image" not in runtime["action_groups"]["clearml"]


def test_the_embedded_dockerfile_is_the_one_in_images() -> None:
    assert (REPO / "images" / "triton-site" / "Dockerfile").read_text() == DOCKERFILE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "started"}, "state is started but all of the following are missing: bundle"),
        ({"state": "present"}, "state is present but all of the following are missing: bundle"),
        (
            {"state": "built", "bake_models": True},
            "bake_models is True but all of the following are missing: bundle",
        ),
        (
            {"state": "built", "image_store": "/tmp/store"},
            "parameters are required together: image_store, image_record",
        ),
        (
            {"state": "built", "python_packages": ["numpy"]},
            "missing parameter(s) required by 'python_packages': wheelhouse",
        ),
        (
            {"state": "started", "bundle": "/b", "restart_policy": "sometimes"},
            "value of restart_policy must be one of",
        ),
        ({"state": "sideways"}, "value of state must be one of"),
    ],
)
def test_argument_errors_fail_before_anything(args: dict[str, Any], message: str, capsys: Any) -> None:
    rc, result = run_main(args, capsys)
    assert rc == 1 and result["failed"] is True
    assert message in result["msg"], result["msg"]


# --------------------------------------------------------------------------------------------- container spec


def test_default_spec_runs_triton_explicit_on_the_host_network() -> None:
    spec = build_spec(params(name="d2s-triton"), image="d2s/triton-site:latest", repository="/srv/models")
    args = spec.run_args()
    assert args[:8] == [
        "-d",
        "--name",
        "d2s-triton",
        "--network",
        "host",
        "--restart",
        "unless-stopped",
        "--shm-size",
    ]
    assert "--gpus" not in args and "--memory" not in args and "--cpus" not in args
    assert args[args.index("-e") : args.index("-e") + 2] == ["-e", "PYTHONDONTWRITEBYTECODE=1"]
    assert args[args.index("-v") : args.index("-v") + 2] == ["-v", "/srv/models:/models:ro"]
    image_at = args.index("d2s/triton-site:latest")
    assert args[image_at + 1 :] == spec.command
    assert spec.command == [
        "tritonserver",
        "--model-repository=/models",
        "--model-control-mode=explicit",
        "--load-model=*",
        "--exit-on-error=false",
        "--strict-readiness=false",
        "--id=d2s-d2s-triton",
        "--http-address=127.0.0.1",
        "--http-port=8000",
        "--grpc-address=127.0.0.1",
        "--grpc-port=8001",
        "--metrics-address=127.0.0.1",
        "--metrics-port=8002",
        "--backend-config=python,shm-region-prefix-name=d2s-d2s-triton-",
    ]
    labels = [args[i + 1] for i, a in enumerate(args) if a == "--label"]
    spec_label = next(x for x in labels if x.startswith("org.deploy2standalone.triton.spec="))
    assert json.loads(spec_label.split("=", 1)[1]) == spec.as_dict()
    assert f"org.deploy2standalone.triton.spec-digest={spec.digest()}" in labels


def test_spec_options() -> None:
    spec = build_spec(
        params(
            grpc_port=0, metrics_port=0, memory="4g", cpus=1.5, gpus=["0", "1"], restart_policy="always",
            env={"OMP_NUM_THREADS": 2}, extra_args=["--log-verbose=1"], listen_address="0.0.0.0",  # noqa: S104 - the option under test
        ),
        image="img",
        repository=None,
    )  # fmt: skip
    args = spec.run_args()
    pairs = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert (pairs["--memory"], pairs["--cpus"], pairs["--gpus"], pairs["--restart"]) == (
        "4g",
        "1.5",
        '"device=0,1"',
        "always",
    )
    assert "-v" not in args  # models baked into the image: nothing mounted
    assert "OMP_NUM_THREADS=2" in args
    assert "--allow-grpc=false" in spec.command and "--allow-metrics=false" in spec.command
    assert "--http-address=0.0.0.0" in spec.command and spec.command[-1] == "--log-verbose=1"
    whole = build_spec(params(cpus=2.0), image="i", repository=None).run_args()
    assert whole[whole.index("--cpus") + 1] == "2"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"http_port": 0}, "http_port must be set"),
        ({"grpc_port": 8000}, "must differ"),
        ({"metrics_port": 70000}, "is not a TCP port"),
        ({"cpus": -1.0}, "cpus must be positive"),
        ({"env": {"A=B": "x"}}, "invalid variable name"),
        ({"gpus": ["all", "0"]}, "stand alone"),
    ],
)
def test_spec_errors(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ClearmlModuleError, match=message):
        build_spec(params(**over), image="i", repository="/r")


@pytest.mark.parametrize(
    ("gpus", "value"),
    [
        ([], None),
        (None, None),
        (["all"], "all"),
        (["0"], "device=0"),
        (["0", "2"], '"device=0,2"'),
        (["GPU-3a9f1c2e-0000-1111-2222-333344445555"], "device=GPU-3a9f1c2e-0000-1111-2222-333344445555"),
        (["count=2"], "2"),
    ],
)
def test_gpu_request(gpus: list[str] | None, value: str | None) -> None:
    assert gpu_request(gpus) == value


@pytest.mark.parametrize("gpus", [["all", "0"], ["count=0"], ["count=x"], ["0,1"], [""], ["count=1", "0"]])
def test_gpu_request_errors(gpus: list[str]) -> None:
    with pytest.raises(ClearmlModuleError, match="gpus"):
        gpu_request(gpus)


def _state(wanted: Any, image_id: str = "sha256:" + "1" * 64, **over: Any) -> ContainerState:
    values = {
        "id": "c" * 64,
        "image_id": image_id,
        "running": True,
        "status": "running",
        "command": list(wanted.command),
        "spec": wanted.as_dict(),
    }
    values.update(over)
    return ContainerState(**values)


def test_container_differences() -> None:
    image = "sha256:" + "1" * 64
    spec = build_spec(params(), image="d2s/triton-site:latest", repository="/srv/models")
    assert container_differences(_state(spec), spec, image) == []
    # Another name for the same image ID is no difference; another ID is.
    renamed = build_spec(params(), image="other:tag", repository="/srv/models")
    assert container_differences(_state(spec), renamed, image) == []
    assert container_differences(_state(spec), spec, "sha256:" + "2" * 64) == [
        f"image: {image} -> sha256:{'2' * 64}"
    ]
    limited = build_spec(params(memory="4g", gpus=["all"]), image="x", repository="/srv/models")
    assert container_differences(_state(spec), limited, image) == [
        "gpus: None -> 'all'",
        "memory: None -> '4g'",
    ]
    moved = build_spec(params(http_port=9000), image="x", repository="/srv/models")
    (diff,) = container_differences(_state(spec), moved, image)
    assert diff.startswith("command: ") and "--http-port=9000" in diff
    assert container_differences(_state(spec, spec=None), spec, image) == [
        "container was not created by this module (no spec label)"
    ]
    hand_edited = _state(spec, command=[*spec.command, "--log-verbose=2"])
    assert container_differences(hand_edited, spec, image) == ["command: changed outside this module"]
    assert container_differences(None, spec, image) == ["container does not exist"]


def test_container_state_from_inspect_reads_the_spec_label() -> None:
    spec = build_spec(params(), image="x", repository="/r")
    doc = {
        "Id": "c" * 64,
        "Image": "sha256:" + "1" * 64,
        "State": {"Running": False, "Status": "exited", "Restarting": False},
        "Config": {"Cmd": spec.command, "Labels": {"org.deploy2standalone.triton.spec": spec.canonical()}},
    }
    state = ContainerState.from_inspect(doc)
    assert (state.running, state.status, state.spec, state.command) == (
        False,
        "exited",
        spec.as_dict(),
        spec.command,
    )
    doc["Config"]["Labels"] = {"org.deploy2standalone.triton.spec": "{not json"}
    assert ContainerState.from_inspect(doc).spec is None


# --------------------------------------------------------------------------------------------- smoke requests


def test_smoke_request_of_the_seeded_endpoint() -> None:
    inputs, outputs, mbs = endpoint_tensors(IRIS)
    assert (inputs, outputs, mbs) == (
        [Tensor("features", "FP32", (4,))],
        [Tensor("probabilities", "FP32", (3,))],
        8,
    )
    assert smoke_request(inputs, outputs, mbs) == {
        "inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [0.0, 0.0, 0.0, 0.0]}],
        "outputs": [{"name": "probabilities"}],
    }
    sample = {"features": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}
    body = smoke_request(inputs, outputs, mbs, sample)
    assert body["inputs"][0]["shape"] == [2, 4]
    assert body["inputs"][0]["data"] == [5.1, 3.5, 1.4, 0.2, 6.2, 2.9, 4.3, 1.3]
    # One unbatched sample gets the batch dimension in front.
    assert smoke_request(inputs, outputs, mbs, {"features": [1, 2, 3, 4]})["inputs"][0]["shape"] == [1, 4]


def test_smoke_request_shapes_and_types() -> None:
    endpoint = {
        **IRIS,
        "input_name": ["ids", "mask", "text", "scale"],
        "input_type": ["int64", "bool", "str", "float16"],
        "input_size": [[-1, 3], [2, -1], [1], [1]],
        "output_name": ["out"],
        "output_type": ["uint8"],
        "output_size": [[-1]],
        "auxiliary_cfg": None,
    }
    inputs, outputs, mbs = endpoint_tensors(endpoint)
    assert mbs == 0
    assert [(t.datatype, t.dims) for t in inputs] == [
        ("INT64", (-1, 3)),
        ("BOOL", (2, -1)),
        ("BYTES", (1,)),
        ("FP16", (1,)),
    ]
    body = smoke_request(inputs, outputs, mbs)
    assert [(i["shape"], i["data"]) for i in body["inputs"]] == [
        ([1, 3], [0, 0, 0]),
        ([2, 1], [False, False]),
        ([1], [""]),
        ([1], [0.0]),
    ]
    assert body["outputs"] == [{"name": "out"}]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"features": [[1, 2, 3]]}, r"shape \[1, 3\] does not fit the declared dims \[4\]"),
        ({"features": [[1, 2, 3, 4]] * 9}, "max_batch_size 8"),
        ({"features": [[1, 2, 3, 4], [1, 2]]}, "not rectangular"),
        ({"labels": [1]}, "unknown inputs"),
    ],
)
def test_smoke_sample_errors(sample: dict[str, Any], message: str) -> None:
    inputs, outputs, mbs = endpoint_tensors(IRIS)
    with pytest.raises(SmokeError, match=message):
        smoke_request(inputs, outputs, mbs, sample, model="iris_onnx")


def test_nested_shape() -> None:
    assert nested_shape(3.0, "x") == ([], [3.0])
    assert nested_shape([[1, 2], [3, 4], [5, 6]], "x") == ([3, 2], [1, 2, 3, 4, 5, 6])
    assert nested_shape([], "x") == ([0], [])


def test_check_response() -> None:
    _, outputs, mbs = endpoint_tensors(IRIS)
    answer = {
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [1, 3], "data": [0.5, 0.25, 0.25]}]
    }
    assert check_response(answer, outputs, mbs) == {
        "probabilities": {"datatype": "FP32", "shape": [1, 3], "data": [0.5, 0.25, 0.25], "truncated": False}
    }
    with pytest.raises(SmokeError, match="no output 'probabilities'"):
        check_response({"outputs": []}, outputs, mbs)
    wrong_type = {"outputs": [{**answer["outputs"][0], "datatype": "FP64"}]}
    with pytest.raises(SmokeError, match="is FP64, the endpoint declares FP32"):
        check_response(wrong_type, outputs, mbs)
    wrong_shape = {"outputs": [{**answer["outputs"][0], "shape": [1, 4]}]}
    with pytest.raises(SmokeError, match=r"has shape \[1, 4\]"):
        check_response(wrong_shape, outputs, mbs)
    big = [Tensor("y", "FP32", (-1,))]
    summary = check_response(
        {"outputs": [{"name": "y", "datatype": "FP32", "shape": [100], "data": [0.0] * 100}]}, big, 0
    )
    assert len(summary["y"]["data"]) == 64 and summary["y"]["truncated"] is True


# --------------------------------------------------------------------------------------------- build inputs


def test_requirements_and_wheelhouse(tmp_path: Path) -> None:
    (tmp_path / "b-1.0-py3-none-any.whl").write_bytes(b"b")
    (tmp_path / "a-1.0-py3-none-any.whl").write_bytes(b"a")
    (tmp_path / "notes.txt").write_text("not a wheel")
    wheels = wheelhouse(tmp_path)
    assert list(wheels) == ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]
    assert requirements_text(None, wheels) == (
        "/tmp/d2s-build/wheels/a-1.0-py3-none-any.whl\n/tmp/d2s-build/wheels/b-1.0-py3-none-any.whl\n"
    )
    assert requirements_text(["onnxruntime==1.19.2", " "], wheels) == "onnxruntime==1.19.2\n"
    assert requirements_text(None, {}) == ""
    with pytest.raises(TritonImageError, match="options are not allowed"):
        requirements_text(["--index-url=https://pypi.org/simple"], wheels)
    with pytest.raises(TritonImageError, match="needs a wheelhouse"):
        requirements_text(["numpy"], {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(TritonImageError, match=r"holds no \.whl"):
        wheelhouse(tmp_path / "empty")
    with pytest.raises(TritonImageError, match="is not a directory"):
        wheelhouse(tmp_path / "missing")


def test_build_inputs_digest_covers_every_input() -> None:
    base = {
        "base_image": "nvcr.io/nvidia/tritonserver:24.10-py3",
        "base_id": "sha256:" + "1" * 64,
        "requirements": "numpy==1.26.4\n",
        "wheels": {"numpy.whl": "a" * 64, "ort.whl": "b" * 64},
        "models": None,
    }
    digest = BuildInputs(**base).digest()
    assert BuildInputs(**{**base, "wheels": {"ort.whl": "b" * 64, "numpy.whl": "a" * 64}}).digest() == digest
    for change in (
        {"base_id": "sha256:" + "2" * 64},
        {"base_image": "other:tag"},
        {"requirements": "numpy==1.26.3\n"},
        {"wheels": {"numpy.whl": "c" * 64, "ort.whl": "b" * 64}},
        {"models": {"iris_onnx": "d" * 64}},
        {"models": {}},
    ):
        assert BuildInputs(**{**base, **change}).digest() != digest, change
    labels = BuildInputs(**{**base, "models": {"b": "2", "a": "1"}}).labels()
    assert labels["org.deploy2standalone.triton.models"] == '{"a":"1","b":"2"}'
    assert "org.deploy2standalone.triton.models" not in BuildInputs(**base).labels()


def test_select_endpoints() -> None:
    endpoints = {
        "iris_onnx": IRIS,
        "iris_onnx/2": {**IRIS, "version": "2"},
        "detector": {**IRIS, "serving_url": "detector"},
        "iris_custom/1": {"engine_type": "custom", "serving_url": "iris_custom", "version": "1"},
    }
    assert select_endpoints(endpoints, []) == endpoints
    assert set(select_endpoints(endpoints, ["iris_*"])) == {"iris_onnx", "iris_onnx/2", "iris_custom/1"}
    assert set(select_endpoints(endpoints, ["iris_onnx*", "detector"])) == {
        "iris_onnx",
        "iris_onnx/2",
        "detector",
    }
    with pytest.raises(ClearmlModuleError, match=r"\['nothing\*'\] match no triton endpoint"):
        select_endpoints(endpoints, ["iris_onnx", "nothing*"])


def test_models_to_load_on_a_container_that_stays() -> None:
    """New files, files other than those last loaded, or not READY: (re)load; anything else: leave alone."""

    plan = SimpleNamespace(
        models=[
            SimpleNamespace(name=n, digest=d)
            for n, d in (("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5"))
        ]
    )
    repo = {"added": ["a"], "updated": ["b"]}
    index = {n: {"state": "READY"} for n in "abce"} | {"d": {"state": "UNAVAILABLE"}}
    loaded = {"a": "0", "b": "0", "c": "3", "d": "4", "e": "old"}
    assert _models_to_load(plan, repo, index, loaded) == ["a", "b", "d", "e"]
    # Unknown history (no state file, or another container): only what this run wrote or what is not READY.
    assert _models_to_load(plan, repo, index, None) == ["a", "b", "d"]
    assert _models_to_load(plan, {"added": [], "updated": []}, index, None) == ["d"]


def test_docker_cli_refuses_mutating_calls_in_check_mode() -> None:
    cli = DockerCli("sh", check_mode=True)  # any binary: nothing may run
    with pytest.raises(DockerError, match="internal error: tried to remove container 'x' in check mode"):
        cli.run("rm", "-f", "x", action="remove container 'x'", mutating=True)
    assert cli.calls == []


# --------------------------------------------------------------------------------------------- check mode, real docker


def _tiny_bundle(root: Path) -> Path:
    """A bundle with one triton endpoint (its ONNX file is never run in check mode) and a custom one."""
    weights = root / "model.onnx"
    weights.write_bytes(b"weights that check mode never loads")
    with bundle.BundleWriter(
        root / "bundle", tool_version="0.1.0", api_host="http://127.0.0.1:8008"
    ) as writer:
        blob = writer.add_file(weights, kind="model")
        writer.manifest["models"] = {
            MODEL_ID: {
                "name": "iris",
                "framework": "ONNX",
                "ready": True,
                "files": [{"path": "model.onnx", "blob": blob}],
            }
        }
        writer.manifest["serving_id"] = "s" * 32
        writer.manifest["serving"] = {
            "id": "s" * 32,
            "name": "serving",
            "project": None,
            "endpoints": {
                "iris_onnx": IRIS,
                "iris_custom/1": {"engine_type": "custom", "serving_url": "iris_custom"},
            },
        }
        writer.finalize()
    return root / "bundle"


@pytest.fixture
def docker_daemon() -> None:
    if not docker_available():
        pytest.fail("no docker daemon answers `docker info`: this test needs one (see scripts/setup.sh)")
    base = subprocess.run(
        ["docker", "image", "inspect", "d2s/base:bookworm"], capture_output=True, check=False
    )
    if base.returncode != 0:
        pytest.fail("image d2s/base:bookworm is missing: run `bash scripts/build_images.sh` first")


# Keys Ansible reads in a task result: a module result that carries one changes how the task is shown
# (a "skipped" list once made every task look skipped, and its changes uncounted).
RESERVED_KEYS = {"skipped", "failed", "results", "rc", "unreachable", "ansible_facts", "invocation"}


def _read_only(calls: list[tuple[bool, list[str]]]) -> None:
    assert calls, "no docker call at all"
    for mutating, args in calls:
        assert not mutating, args
        assert args[0] in ("image", "container", "images"), args
        assert args[0] == "images" or args[1] == "inspect", args


@pytest.mark.docker
def test_check_mode_makes_no_mutating_call(docker_daemon: None, tmp_path: Path) -> None:
    tiny = _tiny_bundle(tmp_path)
    name = f"d2s-unit-{uuid.uuid4().hex[:10]}"
    image = f"d2s-unit/never-built-{uuid.uuid4().hex[:10]}:test"
    # A container of that name which this module did not make: a real run would replace it.
    created = subprocess.run(
        ["docker", "create", "--name", name, "--network", "none", "d2s/base:bookworm", "true"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        core = TritonImageCore(
            params(state="built", image=image, base_image="d2s/base:bookworm"), check_mode=True
        )
        built = core.run()
        assert not RESERVED_KEYS & set(built)
        assert built["changed"] is True and built["image"]["built"] is True and built["image"]["id"] is None
        _read_only(core.docker.calls)

        site = params(
            state="started", bundle=str(tiny), image="d2s/base:bookworm", name=name,
            model_repository=str(tmp_path / "models"), python_backend_for=["onnx"],
            python_model=str(REPO / "tools" / "d2s_tools" / "seed" / "assets" / "model.py"),
        )  # fmt: skip
        core = TritonImageCore(site, check_mode=True, diff=True)
        started = core.run()
        assert not RESERVED_KEYS & set(started)
        assert started["changed"] is True
        assert started["container"]["action"] == "recreate"
        assert (
            started["container"]["differences"][-1]
            == "container was not created by this module (no spec label)"
        )
        assert started["repository"]["added"] == ["iris_onnx"]
        assert started["diff"]["before"]["repository"] == {}
        assert list(started["diff"]["after"]["repository"]) == ["iris_onnx"]
        assert started["msg"] == "would add model(s) iris_onnx; would recreate container " + name
        _read_only(core.docker.calls)

        core = TritonImageCore({**site, "state": "absent", "remove_image": True}, check_mode=True)
        absent = core.run()
        assert not RESERVED_KEYS & set(absent)
        assert absent["changed"] is True and absent["removed_images"] == ["d2s/base:bookworm"]
        _read_only(core.docker.calls)

        # Nothing changed: the foreign container, the image list, the repository.
        inspect = subprocess.run(
            ["docker", "container", "inspect", "--format", "{{.Id}}", name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert inspect.stdout.strip() == created
        gone = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
        assert gone.returncode != 0
        kept = subprocess.run(
            ["docker", "image", "inspect", "d2s/base:bookworm"], capture_output=True, check=False
        )
        assert kept.returncode == 0
        assert not (tmp_path / "models").exists()
    finally:
        subprocess.run(["docker", "rm", "-f", created], capture_output=True, check=False)


@pytest.mark.docker
def test_gpu_requests_are_what_docker_understands(docker_daemon: None) -> None:
    """``docker create --gpus <value>``: the daemon records the device request (no GPU is needed to create)."""
    cases = {("all",): (-1, None), ("0",): (0, ["0"]), ("0", "2"): (0, ["0", "2"]), ("count=2",): (2, None)}
    for gpus, expected in cases.items():
        name = f"d2s-unit-gpu-{uuid.uuid4().hex[:10]}"
        value = gpu_request(list(gpus))
        assert value is not None
        try:
            subprocess.run(
                ["docker", "create", "--name", name, "--network", "none", "--gpus", value, "d2s/base:bookworm", "true"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            doc = json.loads(
                subprocess.run(
                    ["docker", "container", "inspect", name], capture_output=True, check=True
                ).stdout
            )[0]
            (request,) = doc["HostConfig"]["DeviceRequests"]
            assert (request["Count"], request["DeviceIDs"]) == expected, value
            assert request["Capabilities"] == [["gpu"]]
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
