# SPDX-License-Identifier: GPL-3.0-or-later
"""d2s/triton-cpu serves an ONNX model through Triton's python backend, like the NGC image would.

A tiny linear model y = x @ W + b is written with onnx.helper; the python-backend model.py loads it
from its version folder with onnxruntime. Triton starts in EXPLICIT model-control mode on free
loopback ports, the model is loaded through the repository API, and one inference through
tritonclient.http must equal numpy's result.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import numpy as np
import onnx
import onnxruntime
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

TRITON_IMAGE = os.environ.get("D2S_TRITON_IMAGE", "d2s/triton-cpu:latest")
MODEL = "linear_onnx_py"
# Weights and bias are multiples of 1/4 and inputs multiples of 1/2, all small: every product and
# every partial sum is exactly representable in float32, so any summation order (numpy's BLAS or
# onnxruntime's MLAS) yields the same bits.
W = (np.arange(12, dtype=np.float32).reshape(4, 3) * 0.25 - 1.5).astype(np.float32)
B = np.array([0.5, -1.0, 2.0], dtype=np.float32)

pytestmark = pytest.mark.docker

MODEL_PY = dedent(
    '''\
    # SPDX-License-Identifier: GPL-3.0-or-later
    """Python-backend model: runs the ONNX file of its version folder with onnxruntime."""
    import json
    import os
    import sys

    import numpy as np
    import onnxruntime as ort
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
            self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            self.runtime = json.dumps(
                {
                    "backend": "python",
                    "process": os.readlink("/proc/self/exe"),
                    "executable": sys.executable,
                    "python": "%d.%d" % sys.version_info[:2],
                    "onnxruntime": ort.__version__,
                    "onnx_path": path,
                }
            )

        def execute(self, requests):
            responses = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                (y,) = self.session.run(["y"], {"x": x})
                runtime = np.array([self.runtime.encode()], dtype=np.object_)
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("OUTPUT0", y.astype(np.float32)),
                            pb_utils.Tensor("RUNTIME", runtime),
                        ]
                    )
                )
            return responses
    '''
)

CONFIG_PBTXT = dedent(
    f"""\
    name: "{MODEL}"
    backend: "python"
    max_batch_size: 0
    input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1, 4 ] }} ]
    output [
      {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1, 3 ] }},
      {{ name: "RUNTIME" data_type: TYPE_STRING dims: [ 1 ] }}
    ]
    instance_group [ {{ kind: KIND_CPU count: 1 }} ]
    """
)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}"
        )
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_model_repository(root: Path) -> Path:
    """<root>/<MODEL>/{config.pbtxt, 1/model.py, 1/model.onnx}: the ONNX weights sit in the version folder."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="d2s-test")
    model.ir_version = 8  # readable by any onnxruntime of the last years
    onnx.checker.check_model(model)
    version = root / MODEL / "1"
    version.mkdir(parents=True)
    onnx.save(model, version / "model.onnx")
    (version / "model.py").write_text(MODEL_PY)
    (root / MODEL / "config.pbtxt").write_text(CONFIG_PBTXT)
    # Triton runs as root in the container; the tree only needs to be readable.
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@pytest.fixture(scope="module")
def triton(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, httpclient.InferenceServerClient]]:
    """A Triton container on free loopback ports, EXPLICIT mode, the model repository mounted read-only."""
    if docker("image", "inspect", TRITON_IMAGE, check=False).returncode != 0:
        pytest.fail(f"image {TRITON_IMAGE} is missing: run `bash scripts/build_images.sh` first")
    repo = write_model_repository(tmp_path_factory.mktemp("models"))
    http_port = free_port()
    cid = docker(
        "run",
        "-d",
        "--network",
        "host",
        "--label",
        "d2s.test=triton-image",
        "-v",
        f"{repo}:/models:ro",
        TRITON_IMAGE,
        "tritonserver",
        "--model-repository=/models",
        "--model-control-mode=explicit",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--allow-grpc=false",
        "--allow-metrics=false",
        "--exit-on-error=false",
    ).stdout.strip()
    try:
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}", network_timeout=120.0)
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError, InferenceServerException):  # not listening yet
                if client.is_server_ready():
                    break
            state = docker("inspect", "--format", "{{.State.Running}}", cid).stdout.strip()
            if state != "true" or time.monotonic() > deadline:
                logs = docker("logs", cid, check=False)
                pytest.fail(f"tritonserver not ready (running={state}):\n{logs.stdout}{logs.stderr}")
            time.sleep(0.5)
        yield cid, client
    finally:
        docker("rm", "-f", cid, check=False)


def test_image_has_the_ngc_layout() -> None:
    script = (
        "set -e; command -v tritonserver; "
        "test -x /opt/tritonserver/backends/python/triton_python_backend_stub; "
        "test -f /opt/tritonserver/backends/python/libtriton_python.so; "
        "test -f /opt/tritonserver/backends/python/triton_python_backend_utils.py; "
        "test -f /opt/tritonserver/caches/local/libtritoncache_local.so; "
        "python3 -c 'import numpy, onnxruntime; print(numpy.__version__, onnxruntime.__version__)'"
    )
    proc = docker("run", "--rm", "--network", "none", "--entrypoint", "bash", TRITON_IMAGE, "-c", script)
    lines = proc.stdout.split()
    assert lines[0] == "/opt/tritonserver/bin/tritonserver"
    assert lines[1:] == [np.__version__, onnxruntime.__version__]


def test_python_backend_serves_the_onnx_model(triton: tuple[str, httpclient.InferenceServerClient]) -> None:
    cid, client = triton
    assert client.is_server_ready()
    # EXPLICIT mode: nothing is loaded until the repository API asks for it.
    index = {m["name"]: m.get("state") for m in client.get_model_repository_index()}
    assert MODEL in index and index[MODEL] != "READY"
    client.load_model(MODEL)
    assert client.is_model_ready(MODEL)
    config = client.get_model_config(MODEL)
    assert config["backend"] == "python"

    x = (np.arange(8, dtype=np.float32).reshape(2, 4) * 0.5 - 1.0).astype(np.float32)
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0"), httpclient.InferRequestedOutput("RUNTIME")]
    result = client.infer(MODEL, [inp], outputs=outputs)

    y = result.as_numpy("OUTPUT0")
    expected = x @ W + B
    assert y.dtype == np.float32 and y.shape == (2, 3)
    # Exact by construction (see W, B): bit-identical, not merely close.
    np.testing.assert_array_equal(y, expected)

    # The answer came from the python backend's stub process running onnxruntime on the ONNX file.
    runtime = json.loads(result.as_numpy("RUNTIME")[0])
    assert runtime["backend"] == "python"
    assert runtime["process"] == "/opt/tritonserver/backends/python/triton_python_backend_stub"
    assert runtime["python"] == "3.11"
    assert runtime["onnx_path"] == f"/models/{MODEL}/1/model.onnx"
    assert runtime["onnxruntime"] == onnxruntime.__version__
    processes = docker("top", cid, "-o", "pid,args").stdout
    stub_lines = [line for line in processes.splitlines() if "triton_python_backend_stub" in line]
    assert any(MODEL in line for line in stub_lines), processes
    stats = client.get_inference_statistics(MODEL)["model_stats"][0]
    assert int(stats["inference_count"]) == 1  # one request; a non-batching model counts requests


def test_random_inputs_match_numpy_within_float32_rounding(
    triton: tuple[str, httpclient.InferenceServerClient],
) -> None:
    _cid, client = triton
    if not client.is_model_ready(MODEL):
        client.load_model(MODEL)
    rng = np.random.default_rng(20240611)
    x = rng.standard_normal((16, 4), dtype=np.float32)
    inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    y = client.infer(MODEL, [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0")]).as_numpy("OUTPUT0")
    expected = x @ W + B
    # Arbitrary floats: the two BLAS kernels may sum the 4 products + bias in different orders. Each
    # order is within 5 roundings of the exact value, so two orders differ by at most
    # 2 * 5 * eps * sum(|x_i * w_i|) + |b|: the bound below, per element.
    eps = np.finfo(np.float32).eps
    bound = 10 * eps * (np.abs(x) @ np.abs(W) + np.abs(B))
    assert np.all(np.abs(y.astype(np.float64) - expected.astype(np.float64)) <= bound)
