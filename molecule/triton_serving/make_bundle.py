# SPDX-License-Identifier: GPL-3.0-or-later
"""Molecule fixture: a small bundle with one ONNX Triton endpoint, and the answer onnxruntime gives.

Run on the controller by prepare.yml (the venv's Python, this collection on PYTHONPATH). The model is
softmax(features @ W + b) with arbitrary float32 weights, written with onnx.helper; the endpoint is
declared as the seeded demo's (batching, dims without the batch dimension, the aux config as
clearml-serving's CLI stores it), and a custom endpoint beside it must be skipped.

    make_bundle.py <workdir>   ->  <workdir>/bundle/, <workdir>/expected.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle

MODEL_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SERVING_ID = "5e7f1a2b3c4d5e6f708192a3b4c5d6e7"
SAMPLE = [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]]


def onnx_model(path: Path) -> Path:
    rng = np.random.default_rng(11)
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
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="d2s-molecule"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    weights = onnx_model(work / "model.onnx")
    with bundle.BundleWriter(
        work / "bundle", tool_version="0.1.0", api_host="http://127.0.0.1:8008"
    ) as writer:
        blob = writer.add_file(weights, kind="model")
        writer.manifest["models"] = {
            MODEL_ID: {
                "name": "iris classifier onnx",
                "framework": "ONNX",
                "ready": True,
                "files": [{"path": "model.onnx", "blob": blob}],
            }
        }
        writer.manifest["serving_id"] = SERVING_ID
        writer.manifest["serving"] = {
            "id": SERVING_ID,
            "name": "iris serving",
            "project": "d2s-demo/serving",
            "endpoints": {
                "iris_onnx": {
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
                },
                "iris_custom/1": {"engine_type": "custom", "serving_url": "iris_custom", "version": "1"},
            },
        }
        writer.finalize()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the generic model.py runs it
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(weights), sess_options=options, providers=["CPUExecutionProvider"])
    (out,) = session.run(["probabilities"], {"features": np.asarray(SAMPLE, dtype=np.float32)})
    expected = {"sample": SAMPLE, "shape": list(out.shape), "probabilities": out.reshape(-1).tolist()}
    (work / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
