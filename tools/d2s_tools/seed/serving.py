# SPDX-License-Identifier: GPL-3.0-or-later
"""Set up the clearml-serving service with the real ``clearml-serving`` CLI, one command per process.

The commands are those an MLOps engineer types (see ``commands()``); they run one after the other
because each one reads, changes and writes back the service's configuration objects.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

from . import runner, spec
from .synth import sha256_file

_CREATED = re.compile(r"New Serving Service created: id=([0-9a-f]{32})")


def cli_prefix() -> list[str]:
    """The ``clearml-serving`` console script next to this interpreter, else ``python -m clearml_serving``."""
    script = Path(sys.executable).parent / "clearml-serving"
    if script.is_file():
        return [str(script)]
    found = shutil.which("clearml-serving")
    return [found] if found else [sys.executable, "-m", "clearml_serving"]


def _io_args() -> list[str]:
    import json  # noqa: PLC0415

    io = spec.TRITON_IO
    return [
        "--input-size",
        *(json.dumps(s) for s in io["input_size"]),
        "--input-type",
        *io["input_type"],
        "--input-name",
        *io["input_name"],
        "--output-size",
        *(json.dumps(s) for s in io["output_size"]),
        "--output-type",
        *io["output_type"],
        "--output-name",
        *io["output_name"],
    ]


def create_command() -> list[str]:
    return [
        "create",
        "--name",
        spec.SERVING_NAME,
        "--project",
        spec.SERVING_PROJECT,
        "--tags",
        "demo",
        "iris",
    ]


def endpoint_commands(service_id: str, models: dict[str, str]) -> list[tuple[str, list[str]]]:
    """The ``model add``/``canary``/``metrics`` commands, named, for ``models`` {role: model id}.

    Roles: ``onnx`` (Triton endpoint), ``custom_v1`` and ``custom_v2`` (two versions of the custom
    endpoint, from the two training runs).
    """
    assets = spec.ASSETS_DIR
    base = ["--yes", "--id", service_id]
    scalar_metrics = [f"x{i}={spec.METRIC_SCALAR_BUCKETS}" for i in range(4)]
    return [
        (
            "serving-add-triton",
            [
                *base,
                "model",
                "add",
                "--engine",
                "triton",
                "--endpoint",
                spec.TRITON_ENDPOINT,
                "--model-id",
                models["onnx"],
                "--preprocess",
                str(assets / "preprocess_triton.py"),
                *_io_args(),
                "--aux-config",
                *spec.TRITON_AUX_CONFIG,
            ],
        ),
        *[
            (
                f"serving-add-custom-{version}",
                [
                    *base,
                    "model",
                    "add",
                    "--engine",
                    "custom",
                    "--endpoint",
                    spec.CUSTOM_ENDPOINT,
                    "--version",
                    version,
                    "--model-id",
                    models[f"custom_v{version}"],
                    "--preprocess",
                    str(assets / "preprocess_custom.py"),
                ],
            )
            for version in ("1", "2")
        ],
        (
            "serving-canary",
            [
                *base,
                "model",
                "canary",
                "--endpoint",
                spec.CANARY_ENDPOINT,
                "--weights",
                *(str(w) for w in spec.CANARY_WEIGHTS),
                "--input-endpoints",
                f"{spec.CUSTOM_ENDPOINT}/1",
                f"{spec.CUSTOM_ENDPOINT}/2",
            ],
        ),
        (
            "serving-metrics",
            [
                *base,
                "metrics",
                "add",
                "--endpoint",
                spec.TRITON_ENDPOINT,
                "--log-freq",
                "1.0",
                "--variable-scalar",
                *scalar_metrics,
                "--variable-enum",
                f"label={spec.METRIC_ENUM_LABELS}",
            ],
        ),
    ]


def start_create(env: dict[str, str], cwd: Path, logs: Path) -> runner.Flow:
    return runner.start(
        "serving-create", [*cli_prefix(), *create_command()], cwd=cwd, env=env, logs=logs, python=False
    )


def created_service_id(flow: runner.Flow) -> str:
    match = _CREATED.search(flow.output())
    if not match:
        raise runner.FlowError(f"serving-create: no service id in the output\n{flow.tail()}")
    return match.group(1)


def add_endpoints(
    service_id: str, models: dict[str, str], env: dict[str, str], cwd: Path, logs: Path, timeout: float
) -> list[runner.Flow]:
    flows = []
    for name, argv in endpoint_commands(service_id, models):
        flows.append(
            runner.run(
                name, [*cli_prefix(), *argv], cwd=cwd, env=env, logs=logs, timeout=timeout, python=False
            )
        )
    return flows


def describe(service_id: str, models: dict[str, str]) -> dict[str, Any]:
    """What ``seed.json`` says about the service: endpoints as configured, canary, metrics, code hashes."""
    triton_code = spec.ASSETS_DIR / "preprocess_triton.py"
    custom_code = spec.ASSETS_DIR / "preprocess_custom.py"
    endpoints: dict[str, Any] = {
        spec.TRITON_ENDPOINT: {
            "engine_type": "triton",
            "serving_url": spec.TRITON_ENDPOINT,
            "version": None,
            "model_role": "onnx",
            "model_id": models["onnx"],
            "preprocess_artifact": spec.preprocess_artifact_key(spec.TRITON_ENDPOINT),
            "preprocess_file": triton_code.name,
            "preprocess_sha256": sha256_file(triton_code),
            **spec.TRITON_IO,
            "aux_config_args": spec.TRITON_AUX_CONFIG,
            "triton_model_name": spec.TRITON_ENDPOINT.replace("/", "_"),
        }
    }
    for version in ("1", "2"):
        url = spec.serving_url(spec.CUSTOM_ENDPOINT, version)
        endpoints[url] = {
            "engine_type": "custom",
            "serving_url": spec.CUSTOM_ENDPOINT,
            "version": version,
            "model_role": f"custom_v{version}",
            "model_id": models[f"custom_v{version}"],
            "preprocess_artifact": spec.preprocess_artifact_key(url),
            "preprocess_file": custom_code.name,
            "preprocess_sha256": sha256_file(custom_code),
        }
    return {
        "id": service_id,
        "name": spec.SERVING_NAME,
        "project": spec.SERVING_PROJECT,
        "endpoints": endpoints,
        "canary": {
            spec.CANARY_ENDPOINT: {
                "endpoint": spec.CANARY_ENDPOINT,
                "weights": spec.CANARY_WEIGHTS,
                "load_endpoints": [f"{spec.CUSTOM_ENDPOINT}/1", f"{spec.CUSTOM_ENDPOINT}/2"],
            }
        },
        "metric_logging": {
            spec.TRITON_ENDPOINT: {
                "endpoint": spec.TRITON_ENDPOINT,
                "log_frequency": 1.0,
                "metrics": {
                    **{
                        f"x{i}": {
                            "type": "scalar",
                            "buckets": [float(b) for b in spec.METRIC_SCALAR_BUCKETS.split(",")],
                        }
                        for i in range(4)
                    },
                    "label": {"type": "enum", "buckets": list(spec.CLASSES)},
                },
            }
        },
        "cli": [["clearml-serving", *create_command()]]
        + [["clearml-serving", *argv] for _, argv in endpoint_commands(service_id, models)],
    }
