# SPDX-License-Identifier: GPL-3.0-or-later
"""Training flow: Task.init(output_uri=True), parameters, configuration objects, scalars, plots, a debug
image, console output, artifacts, an OutputModel with weights and one with a weights package, close.

Usage: train.py OUT.json WORKDIR [PAUSE_FILE RESUME_FILE]
With PAUSE/RESUME files the flow flushes, writes PAUSE and waits for RESUME half-way through (the test
kills and restarts the server meanwhile), then reports more and closes.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
from _common import emit, sha256, tree_hashes
from clearml import OutputModel, Task

PROJECT = "D2S Server/Train Ü"  # a non-ASCII project name: paths and URLs must agree on the encoding
NAME = "train flow"

work = Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
pause_file = Path(sys.argv[3]) if len(sys.argv) > 4 else None
resume_file = Path(sys.argv[4]) if len(sys.argv) > 4 else None
rng = random.Random(1234)

task = Task.init(
    project_name=PROJECT,
    task_name=NAME,
    output_uri=True,
    auto_connect_frameworks=False,
    auto_resource_monitoring=False,
)
params = task.connect({"lr": 0.01, "epochs": 3, "optimizer": "adam"}, name="Args")
task.set_parameter("General/seed", 1234)
model_config = task.connect_configuration({"layers": [4, 8, 3], "activation": "relu"}, name="model config")
task.set_configuration_object("notes", config_text="free text\nsecond line", config_type="txt")
logger = task.get_logger()
marker = f"CONSOLE-MARKER-{rng.getrandbits(48):x}"
print(marker, flush=True)

expected: dict[str, dict[str, list[float]]] = {"loss": {"train": [], "val": []}, "acc": {"val": []}}


def report(first: int, last: int) -> None:
    for i in range(first, last):
        values = {("loss", "train"): 1.0 / (i + 1), ("loss", "val"): 1.5 / (i + 1), ("acc", "val"): i / 20.0}
        for (title, series), value in values.items():
            logger.report_scalar(title, series, value=value, iteration=i)
            expected[title][series].append(value)


report(0, 10)
logger.report_single_value("best_acc", 0.93)
logger.report_histogram("histogram", "counts", values=[3, 1, 4, 1, 5], iteration=0, xaxis="bin", yaxis="n")
logger.report_scatter2d("scatter", "points", scatter=[[0, 1], [1, 3], [2, 2]], iteration=2)
image = (np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3) * 7) % 255
logger.report_image("debug", "img", iteration=3, image=image)

data_file = work / "data file.bin"
data_file.write_bytes(rng.randbytes(200_000))
task.upload_artifact("data file", artifact_object=str(data_file), wait_on_upload=True)
task.upload_artifact("stats", artifact_object={"mean": 1.5, "count": 3}, wait_on_upload=True)

weights = work / "model.bin"
weights.write_bytes(rng.randbytes(300_000))
model = OutputModel(
    task=task,
    name="train model",
    framework="PyTorch",
    label_enumeration={"setosa": 0, "versicolor": 1, "virginica": 2},
    config_dict={"layers": [4, 8, 3]},
    tags=["d2s-test"],
)
model.update_weights(weights_filename=str(weights), auto_delete_file=False, iteration=9)

package_dir = work / "package"
(package_dir / "sub").mkdir(parents=True, exist_ok=True)
(package_dir / "model.onnx").write_bytes(rng.randbytes(50_000))
(package_dir / "sub" / "labels.txt").write_text("setosa\nversicolor\nvirginica\n", encoding="utf-8")
package = OutputModel(task=task, name="package model", framework="ONNX")
package.update_weights_package(weights_path=str(package_dir), auto_delete_file=False, iteration=9)

paused = False
if pause_file is not None and resume_file is not None:
    task.flush(wait_for_uploads=True)
    pause_file.write_text(task.id, encoding="utf-8")
    deadline = time.monotonic() + 400  # the test resumes once its other phase-1 flows are done
    while not resume_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    paused = resume_file.exists()
    report(10, 15)
    print(f"{marker}-AFTER-RESTART", flush=True)

task.close()

emit(
    {
        "task_id": task.id,
        "project": PROJECT,
        "name": NAME,
        "marker": marker,
        "paused": paused,
        "scalars": expected,
        "params": params,
        "model_config": model_config,
        "data_file_sha256": sha256(data_file),
        "model_id": model.id,
        "model_sha256": sha256(weights),
        "package_model_id": package.id,
        "package_files": tree_hashes(package_dir),
    }
)
