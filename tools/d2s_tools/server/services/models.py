# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""models.*"""

from __future__ import annotations

import copy
from typing import Any

from ..api import Call, endpoint
from ..errors import ApiError, invalid_task, validation
from ..util import new_id, now_iso
from .common import (
    as_bool,
    as_int,
    bool_filter,
    check_project,
    date_filter,
    ensure_project,
    get_model,
    get_task,
    list_filter,
    metadata_dict,
    normalize_project_name,
    project_descendants,
    regex_filter,
    run_get_all,
    str_list,
    tags_filter,
)
from .tasks import publish_task

_FILTERS = {
    "id": list_filter,
    "name": regex_filter,
    "comment": regex_filter,
    "uri": list_filter,
    "project": list_filter,
    "task": list_filter,
    "framework": list_filter,
    "user": list_filter,
    "parent": list_filter,
    "ready": bool_filter,
    "tags": tags_filter,
    "system_tags": tags_filter,
    "last_update": date_filter,
    "created": date_filter,
}

_FIELDS = (
    "uri",
    "name",
    "comment",
    "tags",
    "system_tags",
    "framework",
    "design",
    "labels",
    "project",
    "parent",
    "task",
)


def _labels(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise validation("labels must be an object of label name to integer")
    out = {}
    for key, raw in value.items():
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise validation(f"labels: the value of {key!r} must be an integer")
        try:
            out[str(key)] = int(raw)
        except ValueError:
            raise validation(f"labels: the value of {key!r} must be an integer") from None
    return out


def _validate(call: Call, fields: dict[str, Any]) -> None:
    if fields.get("project"):
        check_project(call, fields["project"])
    if fields.get("task") and not call.store.exists("tasks", fields["task"]):
        raise invalid_task(fields["task"])
    if fields.get("parent") and not call.store.exists("models", fields["parent"]):
        raise ApiError(400, 201, f"Invalid model id: parent={fields['parent']}")
    for key in ("tags", "system_tags"):
        if fields.get(key) is not None:
            str_list(fields[key], key)
    if fields.get("design") is not None and not isinstance(fields["design"], dict):
        raise validation("design must be an object")
    if "labels" in fields:
        fields["labels"] = _labels(fields["labels"])


@endpoint("models.create")
def create(call: Call) -> dict[str, Any]:
    uri = call.body.get("uri")
    name = call.body.get("name")
    if uri is None or name is None:
        raise validation("missing required field(s): uri, name")
    fields = {k: call.body[k] for k in _FIELDS if call.body.get(k) is not None}
    _validate(call, fields)
    now = now_iso()
    doc: dict[str, Any] = {
        "id": new_id(),
        "name": name,
        "uri": uri,
        "comment": "",
        "tags": [],
        "system_tags": [],
        "design": {},
        "labels": {},
        "ready": as_bool(call.body.get("ready")),
        "metadata": metadata_dict(call.body.get("metadata")),
        "user": call.identity.user,
        "company": call.identity.company,
        "created": now,
        "last_update": now,
    }
    doc.update(copy.deepcopy(fields))
    call.store.put("models", doc)
    return {"id": doc["id"], "created": True}


@endpoint("models.get_by_id")
def get_by_id(call: Call) -> dict[str, Any]:
    return {"model": get_model(call, call.require("model"))}


@endpoint("models.get_by_task_id")
def get_by_task_id(call: Call) -> dict[str, Any]:
    task = get_task(call, call.require("task"))
    outputs = (task.get("models") or {}).get("output") or []
    model_id = outputs[-1].get("model") if outputs else (task.get("output") or {}).get("model")
    if not model_id:
        raise ApiError(400, 201, f"Invalid model id: the task has no output model (task={task['id']})")
    return {"model": get_model(call, model_id)}


@endpoint("models.get_all", "models.get_all_ex")
def get_all(call: Call) -> dict[str, Any]:
    extra = None
    if as_bool(call.body.get("include_subprojects")) and call.body.get("project"):
        projects = project_descendants(call.store, call.body["project"])
        call.body = dict(call.body)
        call.body.pop("project")

        def extra(doc: dict[str, Any]) -> bool:
            return doc.get("project") in projects

    return run_get_all(call, "models", "models", _FILTERS, extra=extra)


def _apply_edit(call: Call, doc: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    _validate(call, fields)
    for key, value in fields.items():
        doc[key] = copy.deepcopy(value)
    iteration = as_int(call.body.get("iteration"), "iteration")
    task_id = doc.get("task")
    if iteration is not None and task_id:
        task = call.store.get("tasks", task_id)
        if task is not None and iteration > int(task.get("last_iteration") or 0):
            task["last_iteration"] = iteration
            call.store.put("tasks", task)
    if fields:
        doc["last_update"] = now_iso()
        call.store.put("models", doc)
        fields = dict(fields, last_update=doc["last_update"])
    return fields


@endpoint("models.edit")
def edit(call: Call) -> dict[str, Any]:
    doc = get_model(call, call.require("model"))
    fields = {k: call.body[k] for k in _FIELDS if call.body.get(k) is not None}
    if call.body.get("ready") is not None:
        fields["ready"] = as_bool(call.body["ready"])
    if call.body.get("metadata") is not None:
        fields["metadata"] = metadata_dict(call.body["metadata"])
    fields = _apply_edit(call, doc, fields)
    return {"updated": 1 if fields else 0, "fields": fields}


@endpoint("models.update")
def update(call: Call) -> dict[str, Any]:
    doc = get_model(call, call.require("model"))
    fields = {
        k: call.body[k]
        for k in ("name", "comment", "tags", "system_tags", "project", "task", "created", "ui_cache")
        if call.body.get(k) is not None
    }
    if call.body.get("ready") is not None:
        fields["ready"] = as_bool(call.body["ready"])
    fields = _apply_edit(call, doc, fields)
    return {"updated": 1 if fields else 0, "fields": fields}


@endpoint("models.update_for_task")
def update_for_task(call: Call) -> dict[str, Any]:
    task = get_task(call, call.require("task"))
    override = call.body.get("override_model_id")
    now = now_iso()
    created = False
    if override:
        model = get_model(call, override)
        fields: dict[str, Any] = {}
    else:
        uri = call.body.get("uri")
        if not uri:
            raise validation("uri or override_model_id is required")
        model = {
            "id": new_id(),
            "name": call.body.get("name") or task["name"],
            "uri": uri,
            "comment": call.body.get("comment") or "",
            "tags": list(call.body.get("tags") or []),
            "system_tags": list(call.body.get("system_tags") or []),
            "design": {},
            "labels": {},
            "ready": False,
            "metadata": {},
            "task": task["id"],
            "user": call.identity.user,
            "company": call.identity.company,
            "created": now,
            "last_update": now,
        }
        if task.get("project"):
            model["project"] = task["project"]
        fields = dict(model)
        created = True
        call.store.put("models", model)
    models = dict(task.get("models") or {"input": [], "output": []})
    name = call.body.get("name") or model.get("name") or "Output Model"
    outputs = [m for m in models.get("output") or [] if m.get("name") != name]
    outputs.append({"name": name, "model": model["id"], "updated": now})
    models["output"] = outputs
    task["models"] = models
    iteration = as_int(call.body.get("iteration"), "iteration")
    if iteration is not None:
        task["last_iteration"] = max(int(task.get("last_iteration") or 0), iteration)
    task["last_update"] = now
    call.store.put("tasks", task)
    return {"id": model["id"], "created": created, "updated": 0 if created else 1, "fields": fields}


def _publish_task_of(call: Call, model: dict[str, Any], force: bool) -> dict[str, Any] | None:
    task_id = model.get("task")
    task = call.store.get("tasks", task_id) if task_id else None
    if task is None or task.get("status") == "published":
        return None
    fields = publish_task(call, task, force=force, publish_model=False)
    return {"id": task_id, "data": {"updated": 1, "fields": fields}}


def _set_ready(call: Call, model_id: str, publish_task: bool, force_publish_task: bool) -> dict[str, Any]:
    model = get_model(call, model_id)
    if model.get("ready"):
        raise ApiError(400, 203, f"Model is ready: id={model_id}", id=model_id)
    published_task = _publish_task_of(call, model, force_publish_task) if publish_task else None
    model = get_model(call, model_id)
    model["ready"] = True
    model["last_update"] = now_iso()
    call.store.put("models", model)
    return {"updated": 1, "published_task": published_task}


@endpoint("models.set_ready")
def set_ready(call: Call) -> dict[str, Any]:
    return _set_ready(
        call,
        call.require("model"),
        as_bool(call.body.get("publish_task"), True),
        as_bool(call.body.get("force_publish_task")),
    )


def _batch(call: Call, func: Any) -> dict[str, Any]:
    succeeded, failed = [], []
    for model_id in str_list(call.require("ids"), "ids"):
        try:
            succeeded.append(dict({"id": model_id}, **func(model_id)))
        except ApiError as exc:
            failed.append({"id": model_id, "error": {"codes": [exc.code, exc.subcode], "msg": exc.msg}})
    return {"succeeded": succeeded, "failed": failed}


@endpoint("models.publish_many")
def publish_many(call: Call) -> dict[str, Any]:
    publish_tasks = as_bool(call.body.get("publish_tasks"), True)
    force = as_bool(call.body.get("force_publish_task"))
    return _batch(call, lambda model_id: _set_ready(call, model_id, publish_tasks, force))


def _set_archived(call: Call, model_id: str, archived: bool) -> dict[str, Any]:
    model = get_model(call, model_id)
    tags = list(model.get("system_tags") or [])
    changed = ("archived" in tags) != archived
    if archived and changed:
        tags.append("archived")
    elif not archived:
        tags = [t for t in tags if t != "archived"]
    model["system_tags"] = tags
    if changed:
        model["last_update"] = now_iso()
        call.store.put("models", model)
    return {"archived" if archived else "unarchived": changed}


@endpoint("models.archive_many")
def archive_many(call: Call) -> dict[str, Any]:
    return _batch(call, lambda model_id: _set_archived(call, model_id, True))


@endpoint("models.unarchive_many")
def unarchive_many(call: Call) -> dict[str, Any]:
    return _batch(call, lambda model_id: _set_archived(call, model_id, False))


def delete_model(call: Call, model_id: str, force: bool) -> dict[str, Any]:
    model = get_model(call, model_id)
    task_id = model.get("task")
    task = call.store.get("tasks", task_id) if task_id else None
    if task is not None:
        models = dict(task.get("models") or {})
        outputs = models.get("output") or []
        if task.get("status") == "published":
            if not force:
                raise ApiError(
                    400,
                    205,
                    f"Model creating task exists and published, use force=True to delete: task={task_id}",
                    task=task_id,
                )
            for item in outputs:
                if item.get("model") == model_id:
                    item["model"] = f"__DELETED__{model_id}"
            output = dict(task.get("output") or {})
            output["error"] = f"model deleted on {now_iso()}"
            task["output"] = output
        else:
            models["output"] = [m for m in outputs if m.get("model") != model_id]
        task["models"] = models
        task["last_change"] = now_iso()
        call.store.put("tasks", task)
    call.store.delete("models", model_id)
    call.store.delete_events(model_id)
    return {"deleted": True, "url": model.get("uri")}


@endpoint("models.delete")
def delete(call: Call) -> dict[str, Any]:
    return delete_model(call, call.require("model"), as_bool(call.body.get("force")))


@endpoint("models.delete_many")
def delete_many(call: Call) -> dict[str, Any]:
    force = as_bool(call.body.get("force"))
    return _batch(call, lambda model_id: delete_model(call, model_id, force))


@endpoint("models.add_or_update_metadata")
def add_or_update_metadata(call: Call) -> dict[str, Any]:
    model = get_model(call, call.require("model"))
    metadata = {} if as_bool(call.body.get("replace_metadata")) else dict(model.get("metadata") or {})
    metadata.update(metadata_dict(call.require("metadata")))
    model["metadata"] = metadata
    model["last_update"] = now_iso()
    call.store.put("models", model)
    return {"updated": 1}


@endpoint("models.delete_metadata")
def delete_metadata(call: Call) -> dict[str, Any]:
    model = get_model(call, call.require("model"))
    metadata = dict(model.get("metadata") or {})
    removed = sum(1 for key in str_list(call.require("keys"), "keys") if metadata.pop(key, None) is not None)
    model["metadata"] = metadata
    if removed:
        model["last_update"] = now_iso()
        call.store.put("models", model)
    return {"updated": 1 if removed else 0}


@endpoint("models.get_frameworks")
def get_frameworks(call: Call) -> dict[str, Any]:
    projects = call.body.get("projects")
    frameworks = {
        m.get("framework")
        for m in call.store.all("models")
        if m.get("framework") and (not projects or m.get("project") in projects)
    }
    return {"frameworks": sorted(frameworks)}


@endpoint("models.move")
def move(call: Call) -> dict[str, Any]:
    project = call.body.get("project")
    if not project and call.body.get("project_name"):
        project = ensure_project(
            call.store, call.identity, normalize_project_name(call.body["project_name"])
        )["id"]
    if not project:
        raise validation("project or project_name is required")
    check_project(call, project)
    for model_id in str_list(call.require("ids"), "ids"):
        model = get_model(call, model_id)
        model["project"] = project
        model["last_update"] = now_iso()
        call.store.put("models", model)
    return {"project_id": project}
