# SPDX-License-Identifier: GPL-3.0-or-later
"""A short flow for extra instances and TLS: Task.create, parameters, an artifact uploaded and read back,
a model registered and downloaded, every object found again by name.

Usage: small.py OUT.json WORKDIR PROJECT
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import emit, sha256
from clearml import InputModel, Model, StorageManager, Task
from clearml.backend_api import Session

work = Path(sys.argv[2])
project = sys.argv[3]
work.mkdir(parents=True, exist_ok=True)
payload = work / "payload.txt"
payload.write_text(f"payload of {project}\n", encoding="utf-8")

task = Task.create(project_name=project, task_name="small flow")
task.set_parameters({"Args/where": project})
task.upload_artifact("payload", artifact_object=str(payload), wait_on_upload=True)
url = StorageManager.upload_file(str(payload), f"{Session.get_files_server_host()}/{project}/weights.txt")
model = InputModel.import_model(weights_url=url, name="small model", project=project)

again = Task.get_task(project_name=project, task_name="small flow")
emit(
    {
        "api_host": Session.get_api_server_host(),
        "task_id": task.id,
        "found_id": again.id,
        "params": again.get_parameters(),
        "artifact_sha256": sha256(again.artifacts["payload"].get_local_copy()),
        "model_id": model.id,
        "model_sha256": sha256(Model(model.id).get_local_copy()),
        "expected_sha256": sha256(payload),
    }
)
