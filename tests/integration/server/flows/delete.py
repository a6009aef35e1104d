# SPDX-License-Identifier: GPL-3.0-or-later
"""Delete flow: Task.delete(delete_artifacts_and_models=True) and Model.remove(delete_weights_file=True),
then check that the objects and their files are gone.

Usage: delete.py OUT.json WORKDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests
from _common import emit, probe
from clearml import InputModel, Model, OutputModel, StorageManager, Task
from clearml.backend_api import Session

work = Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
files = Session.get_files_server_host()
blob = work / "blob.bin"
blob.write_bytes(b"to be deleted\n" * 100)

task = Task.create(project_name="D2S Server/Delete", task_name="task to delete")
task.upload_artifact("blob", artifact_object=str(blob), wait_on_upload=True)
weights = work / "weights.bin"
weights.write_bytes(b"doomed weights\n" * 100)
output = OutputModel(task=task, name="doomed output model")
output.update_weights(
    weights_filename=str(weights), upload_uri=files, auto_delete_file=False, async_enable=False
)
task.reload()

standalone_url = StorageManager.upload_file(str(weights), f"{files}/D2S Server/Delete/standalone.bin")
standalone = InputModel.import_model(weights_url=standalone_url, name="standalone doomed model")

urls = {
    "artifact": task.artifacts["blob"].url,
    "output_model": Model(output.id).url,
    "standalone_model": standalone_url,
}


def status(url: str) -> int:
    return requests.head(url, timeout=30).status_code


before = {key: status(url) for key, url in urls.items()}
task_deleted = task.delete(delete_artifacts_and_models=True, raise_on_error=True)
model_removed = Model.remove(standalone.id, delete_weights_file=True, raise_on_errors=True)
after = {key: status(url) for key, url in urls.items()}


def gone_task() -> str:
    try:
        Task.get_task(task_id=task.id)
    except ValueError as exc:
        return f"ValueError: {exc}"
    return "still there"


emit(
    {
        "task_id": task.id,
        "output_model_id": output.id,
        "standalone_model_id": standalone.id,
        "urls": urls,
        "before": before,
        "after": after,
        "task_deleted": bool(task_deleted),
        "model_removed": model_removed,
        "get_task_after": probe(gone_task),
        "query_after": probe(
            lambda: [
                m.id for m in Model.query_models(project_name="D2S Server/Delete", include_archived=True)
            ]
        ),
    }
)
