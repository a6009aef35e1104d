# SPDX-License-Identifier: GPL-3.0-or-later
"""clearml-serving code for the ``iris_custom`` endpoints (engine ``custom``).

``load()`` receives the local copy of the served model, a single JSON file
(``{"mean", "std", "weights", "bias", "classes"}``, float32 values), and ``process()`` runs the
softmax regression with numpy, in float32 like the ONNX twin of the model.

Request: ``{"features": [[f0, f1, f2, f3], ...]}``.
Response: ``{"probabilities": [[p0, p1, p2], ...], "labels": [name, ...], "model": "<format>"}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class Preprocess:
    def __init__(self) -> None:
        self.model_endpoint = None
        self._params: dict[str, Any] | None = None

    def load(self, local_file_name: str) -> dict[str, Any]:
        raw = json.loads(Path(local_file_name).read_text(encoding="utf-8"))
        self._params = {
            "format": raw["format"],
            "classes": list(raw["classes"]),
            "mean": np.asarray(raw["mean"], dtype=np.float32),
            "std": np.asarray(raw["std"], dtype=np.float32),
            "weights": np.asarray(raw["weights"], dtype=np.float32),
            "bias": np.asarray(raw["bias"], dtype=np.float32),
        }
        return self._params

    def preprocess(
        self, body: dict, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> Any:
        features = np.asarray(body["features"], dtype=np.float32)
        if features.ndim == 1:
            features = features[None, :]
        if collect_custom_statistics_fn:
            collect_custom_statistics_fn({f"x{i}": float(v) for i, v in enumerate(features[0])})
        return features

    def process(
        self, data: Any, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> Any:
        if self._params is None:
            raise RuntimeError("model not loaded")
        p = self._params
        logits = ((data - p["mean"]) / p["std"]) @ p["weights"] + p["bias"]
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)

    def postprocess(
        self, data: Any, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> dict:
        if self._params is None:
            raise RuntimeError("model not loaded")
        classes = self._params["classes"]
        labels = [classes[i] for i in np.asarray(data).argmax(axis=1)]
        if collect_custom_statistics_fn:
            collect_custom_statistics_fn({"label": labels[0]})
        return {"probabilities": data.tolist(), "labels": labels, "model": self._params["format"]}
