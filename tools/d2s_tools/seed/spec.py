# SPDX-License-Identifier: GPL-3.0-or-later
"""What the seed builds: names, seeds, endpoints and the planted secrets, in one place.

Everything the seed creates on the server is named here so that the seed, its read-back tests and the
documentation agree. Values that end up in ``seed.json`` are plain JSON types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SEED_FORMAT = "d2s-seed/1"

ASSETS_DIR = Path(__file__).resolve().parent / "assets"

PROJECT = "d2s-demo"

# --- dataset --------------------------------------------------------------------------------------
DATASET_NAME = "iris-like"
DATASET_TAGS = ["iris", "synthetic"]
DATA_SEED = 20240611
CLASSES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# ~2.5 MiB of incompressible bytes: with ``upload(chunk_size=1)`` it fills a chunk of its own.
BIG_FILE = "raw/sensor_dump.bin"
BIG_FILE_SIZE = 2_621_440
CHUNK_SIZE_MB = 1
# v1 -> v2 (adds files, removes one) -> v3 (modifies one); the last one is published.
DATASET_VERSIONS = ["1.0.0", "1.1.0", "1.2.0"]
V2_REMOVED = "raw/calibration.txt"
V3_MODIFIED = "meta/labels.json"

# --- training -------------------------------------------------------------------------------------
TASK_NAME = "train classifier"
TRAIN_SCRIPT = "train.py"
TRAIN_SEEDS = [0, 1]
TRAIN_EPOCHS = 8
DATASET_ALIAS = "train_data"
REPO_NAME = "iris-demo"
REPO_BRANCH = "main"
# Fixed author/committer so the commit id only depends on the content.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "D2S Demo",
    "GIT_AUTHOR_EMAIL": "demo@d2s.invalid",
    "GIT_COMMITTER_NAME": "D2S Demo",
    "GIT_COMMITTER_EMAIL": "demo@d2s.invalid",
    "GIT_AUTHOR_DATE": "2024-06-11T09:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-06-11T09:00:00+00:00",
}
BASE_DOCKER_IMAGE = "python:3.11-slim"

# Secrets a careless team leaves in a task; the exporter must redact them. The training script reads
# them from these environment variables, as scripts usually do.
PLANTED_SECRETS = {
    "container_git_pass": {
        "env": "DEMO_GIT_PASS",
        "value": "planted-git-secret-7c1e5b2a94d3",
        "where": "container.arguments (-e CLEARML_AGENT_GIT_PASS=...)",
    },
    "hyperparam_aws_secret": {
        "env": "DEMO_AWS_SECRET_ACCESS_KEY",
        "value": "planted-aws-secret-9d4f0c6e1b87",
        "where": "hyperparams storage/aws_secret_access_key",
    },
}

# Keys of the models a training run registers (see assets/train.py).
MODEL_KINDS = ["onnx", "package", "single"]

# --- serving --------------------------------------------------------------------------------------
SERVING_NAME = "iris serving"
SERVING_PROJECT = f"{PROJECT}/serving"
TRITON_ENDPOINT = "iris_onnx"
CUSTOM_ENDPOINT = "iris_custom"
CANARY_ENDPOINT = "iris_canary"
CANARY_WEIGHTS = [0.75, 0.25]
TRITON_AUX_CONFIG = [
    "max_batch_size=8",
    'platform="onnxruntime_onnx"',
    "dynamic_batching.max_queue_delay_microseconds=100",
]
TRITON_IO: dict[str, Any] = {
    "input_size": [[4]],
    "input_type": ["float32"],
    "input_name": ["features"],
    "output_size": [[3]],
    "output_type": ["float32"],
    "output_name": ["probabilities"],
}
METRIC_SCALAR_BUCKETS = "0,1,2,3,4,5,6,7,8"
METRIC_ENUM_LABELS = ",".join(CLASSES)

# The fixed request sent to every endpoint for the expected outputs.
INFERENCE_REQUEST: dict[str, Any] = {
    "features": [
        [5.1, 3.5, 1.4, 0.2],
        [6.2, 2.9, 4.3, 1.3],
        [6.9, 3.1, 5.4, 2.1],
    ]
}


def serving_url(endpoint: str, version: str | None = None) -> str:
    """The endpoint key clearml-serving uses (``name`` or ``name/version``)."""
    return f"{endpoint}/{version}" if version else endpoint


def preprocess_artifact_key(url: str) -> str:
    """The artifact clearml-serving stores an endpoint's preprocess code under."""
    return "py_code_" + url.replace("/", "_")
