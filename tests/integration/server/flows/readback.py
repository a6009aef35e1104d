# SPDX-License-Identifier: GPL-3.0-or-later
"""Read a trained task back in a fresh process with an empty cache: Task.get_task by id and by
project+name, scalars, console, plots, single values, debug samples, parameters, configuration objects,
artifacts and their local copies, output models (properties, local copies, query_models),
InputModel.import_model, export_task / import_task / update_task, Task.create.

Usage: readback.py OUT.json TRAIN.json WORKDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import emit, probe, sha256, tree_hashes
from clearml import InputModel, Model, StorageManager, Task

train = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
work = Path(sys.argv[3])
work.mkdir(parents=True, exist_ok=True)
out: dict = {}

task = Task.get_task(task_id=train["task_id"])
out["by_id"] = {
    "id": task.id,
    "name": task.name,
    "status": str(task.get_status()),
    "project": task.get_project_name(),
}
by_name = Task.get_task(project_name=train["project"], task_name=train["name"])
out["by_name_id"] = by_name.id
out["scalars"] = probe(task.get_reported_scalars)
out["last_scalars"] = probe(task.get_last_scalar_metrics)
out["console"] = probe(lambda: "\n".join(task.get_reported_console_output(number_of_reports=1000)))
out["plots"] = probe(
    lambda: sorted((p["metric"], p["variant"], p["iter"]) for p in task.get_reported_plots())
)
out["single_values"] = probe(task.get_reported_single_values)


def debug_samples() -> list:
    samples = task.get_debug_samples("debug", "img")
    return [
        {"iter": s["iter"], "url": s["url"], "sha256": sha256(StorageManager.get_local_copy(s["url"]))}
        for s in samples
    ]


out["debug_samples"] = probe(debug_samples)
out["parameters"] = probe(task.get_parameters)
out["configuration"] = probe(lambda: task.get_configuration_object_as_dict("model config"))
out["notes"] = probe(lambda: task.get_configuration_object("notes"))
out["last_iteration"] = task.get_last_iteration()


def artifacts() -> dict:
    result = {}
    for key, artifact in task.artifacts.items():
        entry = {"type": artifact.type, "hash": artifact.hash, "url": artifact.url}
        if key == "stats":
            entry["value"] = artifact.get()
        else:
            entry["local_sha256"] = sha256(artifact.get_local_copy())
        result[key] = entry
    return result


out["artifacts"] = probe(artifacts)


def model_info(model_id: str) -> dict:
    model = Model(model_id)
    local = model.get_local_copy()
    info = {
        "id": model.id,
        "name": model.name,
        "url": model.url,
        "framework": model.framework,
        "labels": model.labels,
        "config_dict": model.config_dict,
        "task": model.task,
        "project": model.project,
        "tags": model.tags,
        "system_tags": model.system_tags,
        "published": model.published,
    }
    info["local"] = tree_hashes(local) if Path(local).is_dir() else sha256(local)
    return info


out["model"] = probe(lambda: model_info(train["model_id"]))
out["package_model"] = probe(lambda: model_info(train["package_model_id"]))
out["task_models"] = probe(
    lambda: {
        kind: sorted(m.id for m in models)
        for kind, models in task.models.items()
        if kind in ("input", "output")
    }
)
out["query_models"] = probe(
    lambda: [m.id for m in Model.query_models(project_name=train["project"], model_name="train model")]
)


def import_models() -> dict:
    same = InputModel.import_model(weights_url=out["model"]["url"], name="reimport")
    extra = work / "extra weights.bin"
    extra.write_bytes(b"extra weights " * 1000)
    url = StorageManager.upload_file(str(extra), f"{Session_files()}/D2S Server/imports/extra weights.bin")
    new = InputModel.import_model(
        weights_url=url,
        name="imported model",
        project="D2S Server/Imports",
        framework="ONNX",
        tags=["imported"],
    )
    again = InputModel.import_model(weights_url=url, name="imported model again")
    fresh = Model(new.id)
    return {
        "same_id": same.id,
        "new_id": new.id,
        "again_id": again.id,
        "new_url": url,
        "new_name": fresh.name,
        "new_framework": fresh.framework,
        "new_tags": fresh.tags,
        "new_sha256": sha256(fresh.get_local_copy()),
        "expected_sha256": sha256(extra),
    }


def Session_files() -> str:
    from clearml.backend_api import Session

    return Session.get_files_server_host()


out["import_model"] = probe(import_models)


def export_import() -> dict:
    exported = task.export_task()
    clone = Task.import_task(exported)
    clone_data = Task.get_task(task_id=clone.id).export_task()
    clone.update_task({"comment": "updated by update_task", "hyperparams": exported.get("hyperparams")})
    updated = Task.get_task(task_id=clone.id)
    return {
        "clone_id": clone.id,
        "same": {
            key: exported.get(key) == clone_data.get(key)
            for key in ("name", "type", "hyperparams", "configuration", "script", "project_name")
        },
        "clone_status": str(updated.get_status()),
        "comment": updated.comment,
    }


out["export_import"] = probe(export_import)


def created_task() -> dict:
    made = Task.create(
        project_name="D2S Server/Created", task_name="created task", task_type="data_processing"
    )
    made.set_parameters({"Args/x": 5})
    fetched = Task.get_task(task_id=made.id)
    return {
        "id": made.id,
        "type": str(fetched.task_type),
        "params": fetched.get_parameters(),
        "status": str(fetched.get_status()),
    }


out["created"] = probe(created_task)
emit(out)
