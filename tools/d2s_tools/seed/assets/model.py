# SPDX-License-Identifier: GPL-3.0-or-later
"""Triton python-backend model that serves an ONNX file with onnxruntime.

Generic: it knows nothing about the model it serves. Layout (Triton model repository)::

    <model_name>/config.pbtxt          backend: "python", input [...], output [...]
    <model_name>/<version>/model.py    this file
    <model_name>/<version>/model.onnx  the weights (or the file named by a parameter, see below)

- The ONNX file is looked up in the version folder: the ``onnx_model_filename`` parameter of the model
  config (``parameters { key: "onnx_model_filename" value { string_value: "x.onnx" } }``) if set, else
  ``model.onnx``, else the only ``*.onnx`` file, else ``model.bin`` (clearml-serving's name for a
  single-file model).
- Input and output names and data types come from the model config. Each config name must be a graph
  input/output of the ONNX model; when the names differ but the counts match, they are paired in order
  and a warning is logged.
- Inputs are cast to the dtype the ONNX graph declares; outputs to the dtype the config declares.
- ``intra_op_threads`` parameter (default 1) sets onnxruntime's thread count.

A failing request gets an error response; the other requests of the batch are still answered.
Python 3.8+ (whatever Python the Triton image's python backend stub runs), numpy and onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _parameter(config: dict[str, Any], key: str) -> str | None:
    value = (config.get("parameters") or {}).get(key)
    if isinstance(value, dict):
        return value.get("string_value") or None
    return None


def find_onnx_file(version_dir: Path, configured: str | None = None) -> Path:
    """The ONNX file of a version folder, by the rules in the module docstring."""
    if configured:
        candidate = version_dir / configured
        if not candidate.is_file():
            raise FileNotFoundError(f"onnx_model_filename {configured!r} not found in {version_dir}")
        return candidate
    default = version_dir / "model.onnx"
    if default.is_file():
        return default
    onnx_files = sorted(p for p in version_dir.glob("*.onnx") if p.is_file())
    if len(onnx_files) == 1:
        return onnx_files[0]
    if len(onnx_files) > 1:
        names = [p.name for p in onnx_files]
        raise FileNotFoundError(f"several ONNX files in {version_dir}: {names}; set onnx_model_filename")
    fallback = version_dir / "model.bin"
    if fallback.is_file():
        return fallback
    raise FileNotFoundError(f"no ONNX model (model.onnx, *.onnx, model.bin) in {version_dir}")


def pair_names(configured: list[str], graph: list[str], kind: str) -> tuple[dict[str, str], str | None]:
    """Map config names to graph names: exact match, else positional when the counts agree."""
    if all(name in graph for name in configured):
        return {name: name for name in configured}, None
    if len(configured) == len(graph):
        mapping = {configured[i]: graph[i] for i in range(len(graph))}
        return mapping, f"{kind} names {configured} not in the ONNX graph {graph}; paired in order"
    raise ValueError(f"{kind} names {configured} do not match the ONNX graph's {graph}")


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.model_config = config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / str(args["model_version"])
        self.model_path = find_onnx_file(version_dir, _parameter(config, "onnx_model_filename"))

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(_parameter(config, "intra_op_threads") or 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        graph_inputs = {i.name: i for i in self.session.get_inputs()}
        graph_outputs = [o.name for o in self.session.get_outputs()]

        config_inputs = [(i["name"], i["data_type"]) for i in config.get("input", [])]
        config_outputs = [(o["name"], o["data_type"]) for o in config.get("output", [])]
        in_map, in_warning = pair_names([n for n, _ in config_inputs], list(graph_inputs), "input")
        out_map, out_warning = pair_names([n for n, _ in config_outputs], graph_outputs, "output")
        logger = pb_utils.Logger
        for warning in (in_warning, out_warning):
            if warning:
                logger.log_warn(f"{config.get('name', '?')}: {warning}")

        # (config name, graph name, numpy dtype the graph wants)
        self.inputs = [
            (name, in_map[name], _ORT_TO_NUMPY.get(graph_inputs[in_map[name]].type, np.float32))
            for name, _ in config_inputs
        ]
        # (config name, graph name, numpy dtype the config declares)
        self.outputs = [
            (name, out_map[name], pb_utils.triton_string_to_numpy(data_type))
            for name, data_type in config_outputs
        ]
        logger.log_info(
            f"{config.get('name', '?')}: serving {self.model_path.name} with onnxruntime {ort.__version__}"
        )

    def _run(self, request: Any) -> Any:
        feeds = {}
        for name, graph_name, dtype in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input {name!r}")
            feeds[graph_name] = np.asarray(tensor.as_numpy(), dtype=dtype)
        results = self.session.run([graph_name for _, graph_name, _ in self.outputs], feeds)
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(np.asarray(results[index], dtype=dtype)))
            for index, (name, _, dtype) in enumerate(self.outputs)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(self._run(request))
            except Exception as error:  # answer this request with the error, keep serving
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(error)))
                )
        return responses

    def finalize(self) -> None:
        self.session = None
