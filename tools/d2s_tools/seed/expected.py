# SPDX-License-Identifier: GPL-3.0-or-later
"""Expected inference outputs per endpoint, computed without any server.

For each endpoint the seed runs the endpoint's own preprocess code the way clearml-serving does
(``preprocess`` -> engine -> ``postprocess``), with the engine replaced by what Triton or the custom
engine would compute:

- Triton endpoint: the input is cast to the endpoint's ``input_type`` (as clearml-serving's Triton
  client does), the ONNX file runs in onnxruntime, the output is cast to ``output_type``;
- custom endpoint: ``load(<model file>)`` then ``process()`` of the preprocess class itself.

The result is the JSON body a client of the serving stack should get back for the fixed request.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np


def load_preprocess(path: Path) -> Any:
    """Import a clearml-serving preprocess file and instantiate its ``Preprocess`` class."""
    module_spec = importlib.util.spec_from_file_location(f"d2s_seed_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.Preprocess()


def run_onnx(onnx_file: Path, inputs: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
    import onnxruntime as ort  # noqa: PLC0415  (heavy import, only needed here)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run(output_names, inputs)


def triton_endpoint(
    onnx_file: Path, preprocess_file: Path, io: dict[str, Any], request: dict[str, Any]
) -> dict[str, Any]:
    preprocess = load_preprocess(preprocess_file)
    state: dict[str, Any] = {}
    data = preprocess.preprocess(copy.deepcopy(request), state, None)
    model_input = np.array(data, dtype=io["input_type"][0])
    (raw,) = run_onnx(onnx_file, {io["input_name"][0]: model_input}, [io["output_name"][0]])
    model_output = np.asarray(raw, dtype=io["output_type"][0])
    response = preprocess.postprocess(model_output, state, None)
    return {
        "request": request,
        "model_input": {io["input_name"][0]: model_input.tolist()},
        "model_output": {io["output_name"][0]: model_output.tolist()},
        "response": response,
    }


def custom_endpoint(model_file: Path, preprocess_file: Path, request: dict[str, Any]) -> dict[str, Any]:
    preprocess = load_preprocess(preprocess_file)
    preprocess.load(str(model_file))
    state: dict[str, Any] = {}
    data = preprocess.preprocess(copy.deepcopy(request), state, None)
    output = preprocess.process(data, state, None)
    response = preprocess.postprocess(output, state, None)
    return {"request": request, "model_output": np.asarray(output).tolist(), "response": response}
