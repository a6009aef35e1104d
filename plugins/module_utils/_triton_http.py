# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Triton's HTTP/REST API (KServe v2 plus the repository extension) and the smoke inference.

Private to this collection: not a public API, may change without notice.

Standard library only (site hosts have no tritonclient). Every request opens its own connection and
closes it (``Connection: close``): Triton waits for open HTTP connections before it stops, so the module
never leaves one behind. Proxies from the environment are ignored: Triton is on this host.

The smoke inference is built from an endpoint's declared inputs (clearml-serving's ``input_name``,
``input_type``, ``input_size``) and its ``max_batch_size``: the shape is the declared dims with every
``-1`` as 1, with a batch dimension of 1 in front when ``max_batch_size > 0`` (Triton prepends it);
the data are zeros (``false``, ``""`` for BOOL/BYTES) unless a sample is given.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_config import (
    parse_aux,
    tensor_specs,
)

# Model config data types -> the KServe v2 datatype names of the HTTP API.
DATATYPES = {
    "TYPE_BOOL": "BOOL",
    "TYPE_UINT8": "UINT8",
    "TYPE_UINT16": "UINT16",
    "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_INT8": "INT8",
    "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_BF16": "BF16",
    "TYPE_STRING": "BYTES",
}
_FLOATS = {"FP16", "FP32", "FP64", "BF16"}
_SHOWN_VALUES = 64  # output values returned per tensor in the module result


class TritonUnreachable(ClearmlModuleError):
    """Nothing answers HTTP at Triton's address (yet)."""


class SmokeError(ClearmlModuleError):
    """A smoke inference could not be built, or its answer does not match the model's declaration."""


class TritonHttp:
    """A small client of one Triton server's HTTP API."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        netloc = f"[{host}]" if ":" in host and not host.startswith("[") else host
        self.base = f"http://{netloc}:{int(port)}"
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> tuple[int, Any]:
        """``(status, parsed JSON body or None)``; raises TritonUnreachable when nothing answers."""
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(  # noqa: S310 - an http:// URL built from the module's own options
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Connection": "close"},
        )
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
            exc.close()
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise TritonUnreachable(
                f"Triton at {self.base} did not answer {method} {path}: {reason}"
            ) from None
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, {"error": raw.decode("utf-8", "replace")[:2000]}

    @staticmethod
    def _path(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def live(self) -> bool:
        try:
            return self.request("GET", "/v2/health/live", timeout=5)[0] == 200
        except TritonUnreachable:
            return False

    def server_ready(self) -> bool:
        try:
            return self.request("GET", "/v2/health/ready", timeout=5)[0] == 200
        except TritonUnreachable:
            return False

    def metadata(self) -> dict[str, Any]:
        status, doc = self.request("GET", "/v2", timeout=10)
        return doc if status == 200 and isinstance(doc, dict) else {}

    def model_ready(self, name: str) -> bool:
        return self.request("GET", f"/v2/models/{self._path(name)}/ready", timeout=10)[0] == 200

    def index(self) -> dict[str, dict[str, Any]]:
        """``{model name: {state, reason, version}}`` of the repository (every model Triton sees)."""
        status, doc = self.request("POST", "/v2/repository/index", {}, timeout=30)
        if status != 200 or not isinstance(doc, list):
            raise ClearmlModuleError(f"Triton at {self.base}: repository index failed ({status}): {doc}")
        found: dict[str, dict[str, Any]] = {}
        for entry in doc:
            if isinstance(entry, dict) and entry.get("name"):
                found[str(entry["name"])] = {
                    "state": str(entry.get("state") or ""),
                    "reason": str(entry.get("reason") or ""),
                    "version": str(entry.get("version") or ""),
                }
        return found

    def load(self, name: str, *, timeout: float) -> str | None:
        """Load (or reload) a model in EXPLICIT mode; None on success, else Triton's error text."""
        status, doc = self.request(
            "POST", f"/v2/repository/models/{self._path(name)}/load", {}, timeout=timeout
        )
        if status == 200:
            return None
        return _error_text(doc, status)

    def unload(self, name: str) -> str | None:
        status, doc = self.request("POST", f"/v2/repository/models/{self._path(name)}/unload", {}, timeout=60)
        return None if status == 200 else _error_text(doc, status)

    def infer(self, name: str, body: Mapping[str, Any], *, timeout: float) -> dict[str, Any]:
        status, doc = self.request("POST", f"/v2/models/{self._path(name)}/infer", body, timeout=timeout)
        if status != 200 or not isinstance(doc, dict):
            raise SmokeError(f"inference failed ({status}): {_error_text(doc, status)}")
        return doc


def _error_text(doc: Any, status: int) -> str:
    if isinstance(doc, dict) and doc.get("error"):
        return str(doc["error"]).strip()
    return f"HTTP {status}"


# --------------------------------------------------------------------------------------------- smoke


@dataclass(frozen=True)
class Tensor:
    """An input or output as the HTTP API names it: KServe datatype and the declared dims."""

    name: str
    datatype: str
    dims: tuple[int, ...]


def endpoint_tensors(endpoint: Mapping[str, Any]) -> tuple[list[Tensor], list[Tensor], int]:
    """Inputs, outputs and ``max_batch_size`` of a (planned, hence valid) triton endpoint."""
    inputs, outputs, problems = tensor_specs(endpoint)
    aux, aux_problems = parse_aux(endpoint.get("auxiliary_cfg"))
    if problems or aux_problems:
        raise SmokeError("; ".join(problems + aux_problems))

    def convert(specs: Sequence[Any]) -> list[Tensor]:
        return [Tensor(s.name, DATATYPES.get(s.data_type, s.data_type), tuple(s.dims)) for s in specs]

    return convert(inputs), convert(outputs), int(aux.max_batch_size)


def request_shape(tensor: Tensor, max_batch_size: int) -> list[int]:
    """The declared dims with every variable (-1) dimension as 1, plus a batch of 1 when batching."""
    shape = [1 if d == -1 else int(d) for d in tensor.dims]
    return [1, *shape] if max_batch_size > 0 else shape


def nested_shape(value: Any, where: str) -> tuple[list[int], list[Any]]:
    """Shape and flat values of a rectangular nested list (a scalar is shape [])."""
    if not isinstance(value, (list, tuple)):
        return [], [value]
    if not value:
        return [0], []
    parts = [nested_shape(v, where) for v in value]
    first = parts[0][0]
    if any(p[0] != first for p in parts):
        raise SmokeError(f"{where}: the sample is not rectangular (rows of different shapes)")
    return [len(value), *first], [x for p in parts for x in p[1]]


def _zero(datatype: str) -> Any:
    if datatype == "BOOL":
        return False
    if datatype == "BYTES":
        return ""
    return 0.0 if datatype in _FLOATS else 0


def _shape_matches(shape: Sequence[int], dims: Sequence[int], max_batch_size: int) -> bool:
    want = list(dims)
    if max_batch_size > 0:
        if not shape or not 1 <= shape[0] <= max_batch_size:
            return False
        shape = list(shape[1:])
    return len(shape) == len(want) and all(w in (-1, s) for s, w in zip(shape, want, strict=True))


def smoke_request(
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    max_batch_size: int,
    sample: Mapping[str, Any] | None = None,
    *,
    model: str = "model",
) -> dict[str, Any]:
    """The JSON body of one inference: every declared input (zeros or the sample), every output asked for."""
    sample = dict(sample or {})
    unknown = sorted(set(sample) - {t.name for t in inputs})
    if unknown:
        raise SmokeError(f"smoke sample for {model!r} names unknown inputs {unknown}")
    body_inputs = []
    for tensor in inputs:
        if tensor.name in sample:
            where = f"smoke sample for {model!r} input {tensor.name!r}"
            shape, data = nested_shape(sample[tensor.name], where)
            if max_batch_size > 0 and len(shape) == len(tensor.dims):
                shape = [1, *shape]  # one request of the declared (unbatched) shape
            if not _shape_matches(shape, tensor.dims, max_batch_size):
                raise SmokeError(
                    f"{where}: shape {shape} does not fit the declared dims {list(tensor.dims)}"
                    + (f" (max_batch_size {max_batch_size})" if max_batch_size else "")
                )
        else:
            shape = request_shape(tensor, max_batch_size)
            data = [_zero(tensor.datatype)] * math.prod(shape)
        body_inputs.append({"name": tensor.name, "shape": shape, "datatype": tensor.datatype, "data": data})
    return {"inputs": body_inputs, "outputs": [{"name": t.name} for t in outputs]}


def check_response(
    response: Mapping[str, Any], outputs: Sequence[Tensor], max_batch_size: int
) -> dict[str, dict[str, Any]]:
    """Every declared output present with its datatype and a shape that fits; a short summary of each."""
    got = {o.get("name"): o for o in response.get("outputs") or [] if isinstance(o, dict)}
    summary: dict[str, dict[str, Any]] = {}
    for tensor in outputs:
        out = got.get(tensor.name)
        if out is None:
            raise SmokeError(f"the answer has no output {tensor.name!r} (it has {sorted(map(str, got))})")
        shape = [int(d) for d in out.get("shape") or []]
        if out.get("datatype") != tensor.datatype:
            raise SmokeError(
                f"output {tensor.name!r} is {out.get('datatype')}, the endpoint declares {tensor.datatype}"
            )
        if not _shape_matches(shape, tensor.dims, max_batch_size):
            raise SmokeError(
                f"output {tensor.name!r} has shape {shape}, the endpoint declares dims {list(tensor.dims)}"
            )
        data = out.get("data")
        values = data if isinstance(data, list) else []
        summary[tensor.name] = {
            "datatype": tensor.datatype,
            "shape": shape,
            "data": values[:_SHOWN_VALUES],
            "truncated": len(values) > _SHOWN_VALUES,
        }
    return summary
