# SPDX-License-Identifier: GPL-3.0-or-later
"""clearml-serving pre/post-processing for the ``iris_onnx`` Triton endpoint.

Request: ``{"features": [[f0, f1, f2, f3], ...]}`` (one row or several). The Triton engine sends the
float32 matrix to the model's ``features`` input and hands back its ``probabilities`` output.
Response: ``{"probabilities": [[p0, p1, p2], ...], "labels": [name, ...]}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

CLASSES = ["setosa", "versicolor", "virginica"]


class Preprocess:
    def __init__(self) -> None:
        # clearml-serving sets ``self.model_endpoint`` after construction.
        self.model_endpoint = None

    def preprocess(
        self, body: dict, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> Any:
        features = np.asarray(body["features"], dtype=np.float32)
        if features.ndim == 1:
            features = features[None, :]
        if features.ndim != 2 or features.shape[1] != 4:
            raise ValueError(f"expected rows of 4 features, got shape {list(features.shape)}")
        if collect_custom_statistics_fn:
            collect_custom_statistics_fn({f"x{i}": float(v) for i, v in enumerate(features[0])})
        return features

    def postprocess(
        self, data: Any, state: dict, collect_custom_statistics_fn: Callable[[dict], None] | None = None
    ) -> dict:
        probabilities = np.asarray(data, dtype=np.float32).reshape(-1, len(CLASSES))
        labels = [CLASSES[i] for i in probabilities.argmax(axis=1)]
        if collect_custom_statistics_fn:
            collect_custom_statistics_fn({"label": labels[0]})
        return {"probabilities": probabilities.tolist(), "labels": labels}
