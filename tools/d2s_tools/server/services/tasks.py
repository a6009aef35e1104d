# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tasks.*"""

from __future__ import annotations

import copy
from typing import Any

from ..api import Call, endpoint
from ..errors import ApiError, invalid_model, invalid_task, validation
from ..util import new_id, now_iso
from .common import (
    as_bool,
    as_int,
    check_project,
    date_filter,
    ensure_project,
    get_task,
    list_filter,
    normalize_project_name,
    project_descendants,
    regex_filter,
    run_get_all,
    str_list,
    tags_filter,
)
from .queues import queue_add_task, queue_remove_task, resolve_queue

TASK_TYPES = (
    "training",
    "testing",
    "inference",
    "data_processing",
    "application",
    "monitor",
    "controller",
    "optimizer",
    "service",
    "qc",
    "custom",
)

# clearml-server's state machine (apiserver/bll/task/utils.py); ``force`` skips it.
TRANSITIONS: dict[str, set[str]] = {
    "created": {"created", "queued", "in_progress"},
    "queued": {"created", "in_progress", "stopped"},
    "in_progress": {"stopped", "failed", "created", "completed"},
    "stopped": {
        "closed",
        "created",
        "failed",
        "queued",
        "in_progress",
        "published",
        "publishing",
        "completed",
    },
    "closed": {"created", "failed", "published", "publishing", "stopped"},
    "failed": {"created", "stopped", "published", "queued"},
    "publishing": {"published"},
    "published": set(),
    "completed": {"published", "in_progress", "created"},
    "unknown": {"created", "queued", "in_progress", "stopped", "failed", "completed", "closed"},
}

_FILTERS = {
    "id": list_filter,
    "name": regex_filter,
    "comment": regex_filter,
    "project": list_filter,
    "status": list_filter,
    "type": list_filter,
    "user": list_filter,
    "parent": list_filter,
    "tags": tags_filter,
    "system_tags": tags_filter,
    "status_changed": date_filter,
    "last_update": date_filter,
    "created": date_filter,
}

_EDITABLE = (
    "name",
    "tags",
    "system_tags",
    "type",
    "comment",
    "parent",
    "project",
    "input",
    "models",
    "container",
    "execution",
    "hyperparams",
    "configuration",
    "script",
    "runtime",
)
_MERGED = ("script", "execution", "output", "models", "input")  # shallow merge on edit
_REPLACED = ("hyperparams", "configuration", "runtime", "container")


# -- documents --------------------------------------------------------------------------------------
def _default_execution() -> dict[str, Any]:
    return {"parameters": {}, "model_desc": {}, "model_labels": {}, "artifacts": []}


def new_task_doc(call: Call, fields: dict[str, Any]) -> dict[str, Any]:
    now = now_iso()
    execution = _default_execution()
    execution.update(copy.deepcopy(fields.get("execution") or {}))
    models = {"input": [], "output": []}
    models.update(copy.deepcopy(fields.get("models") or {}))
    output: dict[str, Any] = {}
    if fields.get("output_dest"):
        output["destination"] = fields["output_dest"]
    doc: dict[str, Any] = {
        "id": new_id(),
        "name": fields["name"],
        "type": fields["type"],
        "status": "created",
        "status_reason": "",
        "status_message": "",
        "status_changed": now,
        "comment": fields.get("comment") or "",
        "created": now,
        "last_update": now,
        "last_change": now,
        "last_changed_by": call.identity.user,
        "user": call.identity.user,
        "company": call.identity.company,
        "tags": list(fields.get("tags") or []),
        "system_tags": sorted(set(fields.get("system_tags") or [])),
        "output": output,
        "execution": execution,
        "script": copy.deepcopy(fields.get("script") or {}),
        "hyperparams": copy.deepcopy(fields.get("hyperparams") or {}),
        "configuration": copy.deepcopy(fields.get("configuration") or {}),
        "runtime": copy.deepcopy(fields.get("runtime") or {}),
        "models": models,
        "container": copy.deepcopy(fields.get("container") or {}),
        "last_iteration": 0,
        "last_metrics": {},
    }
    if fields.get("project"):
        doc["project"] = fields["project"]
    if fields.get("parent"):
        doc["parent"] = fields["parent"]
    return doc


def _validate_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) < 3:
        raise validation(f"name: the task name must be a string of at least 3 characters (got {name!r})")
    return name


def _validate_type(task_type: Any) -> str:
    if task_type not in TASK_TYPES:
        raise validation(f"type: {task_type!r} is not one of {', '.join(TASK_TYPES)}")
    return task_type


def _validate_models(call: Call, models: Any) -> None:
    if not isinstance(models, dict):
        raise validation("models must be an object")
    for kind in ("input", "output"):
        items = models.get(kind)
        if items is None:
            continue
        if not isinstance(items, list):
            raise validation(f"models.{kind} must be a list")
        for item in items:
            if not isinstance(item, dict) or not item.get("model"):
                raise validation(f"models.{kind} items need a model id")
            if kind == "input" and not call.store.exists("models", item["model"]):
                raise invalid_model(item["model"])


def _validate_refs(call: Call, fields: dict[str, Any]) -> None:
    """clearml-server checks that the project, the parent task and every input model exist."""
    if "project" in fields:
        check_project(call, fields.get("project"))
    parent = fields.get("parent")
    if parent and not call.store.exists("tasks", parent):
        raise ApiError(400, 101, f"Invalid task id: parent={parent}", parent=parent)
    if fields.get("models") is not None:
        _validate_models(call, fields["models"])
    for key in ("hyperparams", "configuration", "runtime", "container", "execution", "script"):
        if fields.get(key) is not None and not isinstance(fields[key], dict):
            raise validation(f"{key} must be an object")
    for key in ("tags", "system_tags"):
        if key in fields and fields[key] is not None:
            str_list(fields[key], key)


def _touch(doc: dict[str, Any], call: Call, now: str | None = None) -> str:
    now = now or now_iso()
    doc["last_update"] = now
    doc["last_change"] = now
    doc["last_changed_by"] = call.identity.user
    return now


def _check_editable(doc: dict[str, Any], force: bool) -> None:
    if not force and doc.get("status") != "created":
        raise ApiError(
            400,
            110,
            f"Invalid task status (expected=created, status={doc.get('status')})",
            expected="created",
            status=doc.get("status"),
        )


def _models_with_timestamps(models: dict[str, Any], now: str) -> dict[str, Any]:
    out = copy.deepcopy(models)
    for kind in ("input", "output"):
        for item in out.get(kind) or []:
            if isinstance(item, dict):
                item.setdefault("updated", now)
    return out


# -- create / read ----------------------------------------------------------------------------------
@endpoint("tasks.create")
def create(call: Call) -> dict[str, Any]:
    fields = dict(call.body)
    fields["name"] = _validate_name(call.body.get("name"))
    fields["type"] = _validate_type(call.body.get("type"))
    _validate_refs(call, fields)
    doc = new_task_doc(call, fields)
    doc["models"] = _models_with_timestamps(doc["models"], doc["created"])
    call.store.put("tasks", doc)
    return {"id": doc["id"]}


@endpoint("tasks.get_by_id")
def get_by_id(call: Call) -> dict[str, Any]:
    return {"task": get_task(call, call.require("task"))}


def _extra_project_filter(call: Call) -> Any:
    if as_bool(call.body.get("include_subprojects")) and call.body.get("project"):
        projects = project_descendants(call.store, call.body["project"])
        call.body = dict(call.body)
        call.body.pop("project")
        return lambda d: d.get("project") in projects
    return None


@endpoint("tasks.get_all", "tasks.get_all_ex")
def get_all(call: Call) -> dict[str, Any]:
    extra = _extra_project_filter(call)
    return run_get_all(call, "tasks", "tasks", _FILTERS, extra=extra, hidden_tag_filter=True)


@endpoint("tasks.get_types")
def get_types(call: Call) -> dict[str, Any]:
    projects = call.body.get("projects")
    types = {
        t.get("type") for t in call.store.all("tasks") if not projects or t.get("project") in projects
    } - {None}
    return {"types": sorted(types)}


# -- edit -------------------------------------------------------------------------------------------
@endpoint("tasks.edit")
def edit(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    _check_editable(doc, as_bool(call.body.get("force")))
    fields = {k: call.body[k] for k in _EDITABLE if k in call.body and call.body[k] is not None}
    if "name" in fields:
        _validate_name(fields["name"])
    if "type" in fields:
        _validate_type(fields["type"])
    _validate_refs(call, fields)
    now = now_iso()
    updated: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _MERGED and isinstance(value, dict):
            merged = dict(doc.get(key) or {})
            merged.update(copy.deepcopy(value))
            if key == "models":
                merged = _models_with_timestamps(merged, now)
            doc[key] = merged
        elif key == "system_tags":
            doc[key] = sorted(set(value))
        else:
            doc[key] = copy.deepcopy(value)
        updated[key] = doc[key]
    output_dest = call.body.get("output_dest")
    if output_dest is not None:
        output = dict(doc.get("output") or {})
        output["destination"] = output_dest
        doc["output"] = output
        updated["output"] = output
    if updated:
        _touch(doc, call, now)
        call.store.put("tasks", doc)
        updated["last_update"] = now
    return {"updated": 1 if updated else 0, "fields": updated}


@endpoint("tasks.update")
def update(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    fields: dict[str, Any] = {}
    for key in ("name", "comment", "tags", "system_tags", "project", "created"):
        if call.body.get(key) is not None:
            fields[key] = call.body[key]
    if "name" in fields:
        _validate_name(fields["name"])
    _validate_refs(call, fields)
    if call.body.get("output__error") is not None:
        output = dict(doc.get("output") or {})
        output["error"] = call.body["output__error"]
        doc["output"] = output
        fields["output.error"] = output["error"]
    for key, value in fields.items():
        if key != "output.error":
            doc[key] = sorted(set(value)) if key == "system_tags" else value
    if fields:
        _touch(doc, call)
        call.store.put("tasks", doc)
    return {"updated": 1 if fields else 0, "fields": fields}


def _param_items(value: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise validation(f"{name} must be a list")
    for item in value:
        if not isinstance(item, dict):
            raise validation(f"{name} items must be objects")
    return value


@endpoint("tasks.edit_hyper_params")
def edit_hyper_params(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    items = _param_items(call.require("hyperparams"), "hyperparams")
    properties_only = all(i.get("section") == "properties" for i in items)
    if not properties_only:
        _check_editable(doc, as_bool(call.body.get("force")))
    replace = call.body.get("replace_hyperparams") or "none"
    if replace not in ("none", "section", "all"):
        raise validation("replace_hyperparams must be one of none, section, all")
    hyperparams = {} if replace == "all" else copy.deepcopy(doc.get("hyperparams") or {})
    if replace == "section":
        for section in {i.get("section") for i in items}:
            hyperparams.pop(section, None)
    for item in items:
        section, name = item.get("section"), item.get("name")
        if not section or not name:
            raise validation("hyperparams items need a section and a name")
        entry = {"section": section, "name": name}
        for key in ("value", "type", "description"):
            if item.get(key) is not None:
                entry[key] = str(item[key]) if key == "value" else item[key]
        entry.setdefault("value", "")
        hyperparams.setdefault(section, {})[name] = entry
    doc["hyperparams"] = hyperparams
    _touch(doc, call)
    call.store.put("tasks", doc)
    return {"updated": 1}


@endpoint("tasks.delete_hyper_params")
def delete_hyper_params(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    items = _param_items(call.require("hyperparams"), "hyperparams")
    if not all(i.get("section") == "properties" for i in items):
        _check_editable(doc, as_bool(call.body.get("force")))
    hyperparams = doc.get("hyperparams") or {}
    deleted = 0
    for item in items:
        section, name = item.get("section"), item.get("name")
        if section not in hyperparams:
            continue
        if name:
            if hyperparams[section].pop(name, None) is not None:
                deleted += 1
            if not hyperparams[section]:
                hyperparams.pop(section)
        else:
            hyperparams.pop(section)
            deleted += 1
    doc["hyperparams"] = hyperparams
    if deleted:
        _touch(doc, call)
        call.store.put("tasks", doc)
    return {"deleted": deleted}


@endpoint("tasks.get_hyper_params")
def get_hyper_params(call: Call) -> dict[str, Any]:
    params = []
    for task_id in str_list(call.require("tasks"), "tasks"):
        doc = get_task(call, task_id)
        flat = [
            dict(item, section=item.get("section", section), name=item.get("name", name))
            for section, entries in (doc.get("hyperparams") or {}).items()
            for name, item in entries.items()
        ]
        params.append({"task": task_id, "hyperparams": flat})
    return {"params": params}


@endpoint("tasks.edit_configuration")
def edit_configuration(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    _check_editable(doc, as_bool(call.body.get("force")))
    items = _param_items(call.require("configuration"), "configuration")
    configuration = (
        {} if as_bool(call.body.get("replace_configuration")) else dict(doc.get("configuration") or {})
    )
    for item in items:
        name = item.get("name")
        if not name:
            raise validation("configuration items need a name")
        entry = {"name": name}
        for key in ("value", "type", "description"):
            if item.get(key) is not None:
                entry[key] = item[key]
        configuration[name] = entry
    doc["configuration"] = configuration
    _touch(doc, call)
    call.store.put("tasks", doc)
    return {"updated": 1}


@endpoint("tasks.delete_configuration")
def delete_configuration(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    _check_editable(doc, as_bool(call.body.get("force")))
    names = str_list(call.require("configuration"), "configuration")
    configuration = dict(doc.get("configuration") or {})
    deleted = sum(1 for n in names if configuration.pop(n, None) is not None)
    doc["configuration"] = configuration
    if deleted:
        _touch(doc, call)
        call.store.put("tasks", doc)
    return {"deleted": deleted}


@endpoint("tasks.get_configurations")
def get_configurations(call: Call) -> dict[str, Any]:
    names = call.body.get("names")
    result = []
    for task_id in str_list(call.require("tasks"), "tasks"):
        doc = get_task(call, task_id)
        items = [
            dict(item, name=item.get("name", name))
            for name, item in (doc.get("configuration") or {}).items()
            if not names or name in names
        ]
        result.append({"task": task_id, "configuration": items})
    return {"configurations": result}


@endpoint("tasks.get_configuration_names")
def get_configuration_names(call: Call) -> dict[str, Any]:
    skip_empty = as_bool(call.body.get("skip_empty"), True)
    result = []
    for task_id in str_list(call.require("tasks"), "tasks"):
        doc = get_task(call, task_id)
        names = [
            name
            for name, item in (doc.get("configuration") or {}).items()
            if not skip_empty or (item or {}).get("value")
        ]
        result.append({"task": task_id, "names": sorted(names)})
    return {"configurations": result}


@endpoint("tasks.set_requirements")
def set_requirements(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    requirements = call.require("requirements")
    if not isinstance(requirements, dict):
        raise validation("requirements must be an object")
    script = dict(doc.get("script") or {})
    script["requirements"] = requirements
    doc["script"] = script
    _touch(doc, call)
    call.store.put("tasks", doc)
    return {"updated": 1, "fields": {"script.requirements": requirements}}


@endpoint("tasks.ping")
def ping(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    doc["last_update"] = now_iso()
    call.store.put("tasks", doc)
    return {}


# -- artifacts and models ---------------------------------------------------------------------------
@endpoint("tasks.add_or_update_artifacts")
def add_or_update_artifacts(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    artifacts = call.require("artifacts")
    if not isinstance(artifacts, list):
        raise validation("artifacts must be a list")
    execution = dict(doc.get("execution") or _default_execution())
    current = list(execution.get("artifacts") or [])
    for item in artifacts:
        if not isinstance(item, dict) or not item.get("key") or not item.get("type"):
            raise validation("artifacts need a key and a type")
        artifact = copy.deepcopy(item)
        artifact.setdefault("mode", "output")
        identity = (artifact["key"], artifact["mode"])
        for index, existing in enumerate(current):
            if (existing.get("key"), existing.get("mode", "output")) == identity:
                current[index] = artifact
                break
        else:
            current.append(artifact)
    execution["artifacts"] = current
    doc["execution"] = execution
    _touch(doc, call)
    call.store.put("tasks", doc)
    return {"updated": 1}


@endpoint("tasks.delete_artifacts")
def delete_artifacts(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    keys = call.require("artifacts")
    if not isinstance(keys, list):
        raise validation("artifacts must be a list")
    wanted = {(k.get("key"), k.get("mode") or "output") for k in keys if isinstance(k, dict)}
    execution = dict(doc.get("execution") or _default_execution())
    before = list(execution.get("artifacts") or [])
    after = [a for a in before if (a.get("key"), a.get("mode", "output")) not in wanted]
    execution["artifacts"] = after
    doc["execution"] = execution
    deleted = len(before) - len(after)
    if deleted:
        _touch(doc, call)
        call.store.put("tasks", doc)
    return {"deleted": deleted}


@endpoint("tasks.add_or_update_model")
def add_or_update_model(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    name = call.require("name")
    model_id = call.require("model")
    model_type = call.require("type")
    if model_type not in ("input", "output"):
        raise validation("type must be input or output")
    now = now_iso()
    models = dict(doc.get("models") or {"input": [], "output": []})
    items = [m for m in (models.get(model_type) or []) if m.get("name") != name]
    items.append({"name": name, "model": model_id, "updated": now})
    models[model_type] = items
    models.setdefault("input", [])
    models.setdefault("output", [])
    doc["models"] = models
    iteration = as_int(call.body.get("iteration"), "iteration")
    if iteration is not None and model_type == "output":
        doc["last_iteration"] = max(int(doc.get("last_iteration") or 0), iteration)
    _touch(doc, call, now)
    call.store.put("tasks", doc)
    return {"updated": 1}


@endpoint("tasks.delete_models")
def delete_models(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    wanted = call.require("models")
    if not isinstance(wanted, list):
        raise validation("models must be a list")
    models = dict(doc.get("models") or {"input": [], "output": []})
    removed = 0
    for item in wanted:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        before = models.get(kind) or []
        after = [m for m in before if m.get("name") != item.get("name")]
        removed += len(before) - len(after)
        models[kind] = after
    doc["models"] = models
    if removed:
        _touch(doc, call)
        call.store.put("tasks", doc)
    return {"updated": 1 if removed else 0}


# -- status changes ---------------------------------------------------------------------------------
def change_status(
    call: Call,
    doc: dict[str, Any],
    new_status: str,
    force: bool,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    current = doc.get("status") or "created"
    # clearml-server allows a same-state "transition" (it only refreshes the status fields)
    if not force and new_status != current and new_status not in TRANSITIONS.get(current, set()):
        raise ApiError(
            400,
            110,
            f"Invalid task status (Invalid status change: current_status={current}, new_status={new_status})",
            current_status=current,
            new_status=new_status,
        )
    now = now_iso()
    fields: dict[str, Any] = {
        "status": new_status,
        "status_changed": now,
        "status_reason": call.body.get("status_reason") or "",
        "status_message": call.body.get("status_message") or "",
    }
    fields.update(extra or {})
    for key, value in fields.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    doc["last_update"] = now
    doc["last_change"] = now
    call.store.put("tasks", doc)
    return {k: v for k, v in fields.items() if v is not None}


def _status_call(call: Call, new_status: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    fields = change_status(call, doc, new_status, as_bool(call.body.get("force")), extra)
    return {"updated": 1, "fields": fields}


@endpoint("tasks.started")
def started(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    extra = {} if doc.get("started") else {"started": now_iso()}
    fields = change_status(call, doc, "in_progress", as_bool(call.body.get("force")), extra)
    return {"updated": 1, "started": 1, "fields": fields}


@endpoint("tasks.stopped")
def stopped(call: Call) -> dict[str, Any]:
    return _status_call(call, "stopped")


@endpoint("tasks.stop")
def stop(call: Call) -> dict[str, Any]:
    # Nothing runs tasks here (no agents): a stop request stops the task at once.
    return _status_call(call, "stopped")


@endpoint("tasks.failed")
def failed(call: Call) -> dict[str, Any]:
    return _status_call(call, "failed")


@endpoint("tasks.close")
def close(call: Call) -> dict[str, Any]:
    return _status_call(call, "closed")


@endpoint("tasks.completed")
def completed(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    force = as_bool(call.body.get("force"))
    fields = change_status(call, doc, "completed", force, {"completed": now_iso()})
    published = 0
    if as_bool(call.body.get("publish")):
        doc = get_task(call, doc["id"])
        fields.update(publish_task(call, doc, force=force, publish_model=True))
        published = 1
    return {"updated": 1, "published": published, "fields": fields}


def publish_task(call: Call, doc: dict[str, Any], force: bool, publish_model: bool) -> dict[str, Any]:
    fields = change_status(call, doc, "published", force, {"published": now_iso()})
    if publish_model:
        for item in (doc.get("models") or {}).get("output") or []:
            model = call.store.get("models", item.get("model"))
            if model is not None and not model.get("ready"):
                model["ready"] = True
                model["last_update"] = now_iso()
                call.store.put("models", model)
    return fields


@endpoint("tasks.publish")
def publish(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    fields = publish_task(
        call, doc, as_bool(call.body.get("force")), as_bool(call.body.get("publish_model"), True)
    )
    return {"updated": 1, "fields": fields, "committed_versions_results": []}


@endpoint("tasks.reset")
def reset(call: Call) -> dict[str, Any]:
    """Back to ``created``, as clearml-server's reset_task: times, metrics, events, runtime, output
    artifacts and draft output models go; ``clear_all`` also clears the execution and the script."""
    doc = get_task(call, call.require("task"))
    if doc.get("status") == "published" and not as_bool(call.body.get("force")):
        raise ApiError(
            400, 110, f"Invalid task status (task={doc['id']}, status=published)", status="published"
        )
    dequeued: dict[str, Any] = {}
    if doc.get("status") == "queued":
        queue_id = (doc.get("execution") or {}).get("queue")
        if queue_id and queue_remove_task(call, queue_id, doc["id"]):
            dequeued = {"removed": 1}
    clear_all = as_bool(call.body.get("clear_all"))
    execution = dict(doc.get("execution") or _default_execution())
    artifacts = execution.get("artifacts") or []
    removed_urls = [
        a.get("uri") for a in artifacts if a.get("uri") and (clear_all or a.get("mode") != "input")
    ]
    if clear_all:
        execution = _default_execution()
        doc["script"] = {}
    else:
        execution["artifacts"] = [a for a in artifacts if a.get("mode") == "input"]
        execution.pop("queue", None)
    doc["execution"] = execution
    models = dict(doc.get("models") or {})
    model_urls = []
    deleted_models = 0
    if as_bool(call.body.get("delete_output_models"), True):
        for item in models.get("output") or []:
            model = call.store.get("models", item.get("model"))
            if model is not None and not model.get("ready") and model.get("task") == doc["id"]:
                if model.get("uri"):
                    model_urls.append(model["uri"])
                call.store.delete("models", model["id"])
                deleted_models += 1
    models["output"] = []
    doc["models"] = models
    events_deleted = call.store.delete_events(doc["id"])
    doc["last_iteration"] = 0
    doc["last_metrics"] = {}
    doc["runtime"] = {}
    output = dict(doc.get("output") or {})
    output.pop("result", None)
    output.pop("error", None)
    doc["output"] = output
    call.body = {**call.body, "status_reason": "reset", "status_message": "reset"}
    fields = change_status(
        call,
        doc,
        "created",
        True,
        {"started": None, "completed": None, "published": None, "last_worker": None},
    )
    return {
        "updated": 1,
        "fields": fields,
        "deleted_models": deleted_models,
        "dequeued": dequeued,
        "events": {"deleted": events_deleted},
        "urls": {"model_urls": model_urls, "artifact_urls": removed_urls, "event_urls": []},
    }


@endpoint("tasks.enqueue")
def enqueue(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    queue = resolve_queue(call, call.body.get("queue"), call.body.get("queue_name"), create=True)
    fields = change_status(call, doc, "queued", False)
    doc = get_task(call, doc["id"])
    execution = dict(doc.get("execution") or _default_execution())
    execution["queue"] = queue["id"]
    doc["execution"] = execution
    call.store.put("tasks", doc)
    queue_add_task(call, queue["id"], doc["id"])
    fields["execution.queue"] = queue["id"]
    return {"updated": 1, "queued": 1, "fields": fields, "queue_watched": False}


@endpoint("tasks.dequeue")
def dequeue(call: Call) -> dict[str, Any]:
    doc = get_task(call, call.require("task"))
    if doc.get("status") != "queued":
        raise ApiError(400, 110, f"Invalid task status (expected=queued, status={doc.get('status')})")
    queue_id = (doc.get("execution") or {}).get("queue")
    removed = queue_remove_task(call, queue_id, doc["id"]) if queue_id else False
    fields = change_status(call, doc, "created", True)
    return {"updated": 1, "dequeued": 1 if removed else 0, "fields": fields}


# -- archive / delete / clone / move ----------------------------------------------------------------
def _batch(call: Call, func: Any) -> dict[str, Any]:
    succeeded, failed_items = [], []
    for task_id in str_list(call.require("ids"), "ids"):
        try:
            result = func(task_id)
            succeeded.append(dict({"id": task_id}, **result))
        except ApiError as exc:
            failed_items.append({"id": task_id, "error": {"codes": [exc.code, exc.subcode], "msg": exc.msg}})
    return {"succeeded": succeeded, "failed": failed_items}


def _set_archived(call: Call, task_id: str, archived: bool) -> dict[str, Any]:
    doc = get_task(call, task_id)
    tags = set(doc.get("system_tags") or [])
    changed = ("archived" in tags) != archived
    if archived:
        tags.add("archived")
    else:
        tags.discard("archived")
    doc["system_tags"] = sorted(tags)
    if changed:
        _touch(doc, call)
        call.store.put("tasks", doc)
    return {"archived" if archived else "unarchived": changed}


@endpoint("tasks.archive_many")
def archive_many(call: Call) -> dict[str, Any]:
    return _batch(call, lambda task_id: _set_archived(call, task_id, True))


@endpoint("tasks.unarchive_many")
def unarchive_many(call: Call) -> dict[str, Any]:
    return _batch(call, lambda task_id: _set_archived(call, task_id, False))


@endpoint("tasks.archive")
def archive(call: Call) -> dict[str, Any]:
    count = 0
    for task_id in str_list(call.require("tasks"), "tasks"):
        if _set_archived(call, task_id, True)["archived"]:
            count += 1
    return {"archived": count}


def delete_task(call: Call, task_id: str, force: bool, delete_output_models: bool) -> dict[str, Any]:
    doc = get_task(call, task_id)
    if doc.get("status") == "in_progress" and not force:
        raise ApiError(400, 110, "Invalid task status (cannot delete a running task without force)")
    updated_children = 0
    for child in call.store.all("tasks"):
        if child.get("parent") == task_id:
            fresh = call.store.get("tasks", child["id"])
            fresh.pop("parent", None)
            call.store.put("tasks", fresh)
            updated_children += 1
    updated_models = 0
    model_urls: list[str] = []
    for model in call.store.all("models"):
        if model.get("task") != task_id:
            continue
        in_use = any(
            model["id"] == m.get("model")
            for other in call.store.all("tasks")
            if other["id"] != task_id
            for m in (other.get("models") or {}).get("input") or []
        )
        if delete_output_models and not model.get("ready") and not in_use:
            # draft output models go with their task (clearml-server's cleanup_task)
            if model.get("uri"):
                model_urls.append(model["uri"])
            call.store.delete("models", model["id"])
        else:
            fresh = call.store.get("models", model["id"])
            fresh.pop("task", None)
            call.store.put("models", fresh)
            updated_models += 1
    events_deleted = call.store.delete_events(task_id)
    call.store.delete("tasks", task_id)
    artifact_urls = [a["uri"] for a in (doc.get("execution") or {}).get("artifacts") or [] if a.get("uri")]
    queue_id = (doc.get("execution") or {}).get("queue")
    if doc.get("status") == "queued" and queue_id:
        queue_remove_task(call, queue_id, task_id)
    return {
        "deleted": True,
        "updated_children": updated_children,
        "updated_models": updated_models,
        "events": {"deleted": events_deleted},
        "urls": {"model_urls": model_urls, "artifact_urls": artifact_urls, "event_urls": []},
    }


@endpoint("tasks.delete")
def delete(call: Call) -> dict[str, Any]:
    result = delete_task(
        call,
        call.require("task"),
        as_bool(call.body.get("force")),
        as_bool(call.body.get("delete_output_models"), True),
    )
    if not as_bool(call.body.get("return_file_urls")):
        result.pop("urls")
    return result


@endpoint("tasks.delete_many")
def delete_many(call: Call) -> dict[str, Any]:
    force = as_bool(call.body.get("force"))
    delete_models_flag = as_bool(call.body.get("delete_output_models"), True)
    return _batch(call, lambda task_id: delete_task(call, task_id, force, delete_models_flag))


@endpoint("tasks.clone")
def clone(call: Call) -> dict[str, Any]:
    source = get_task(call, call.require("task"))
    body = call.body
    new_project = None
    project = body.get("new_task_project") or source.get("project")
    if body.get("new_project_name"):
        created = ensure_project(call.store, call.identity, normalize_project_name(body["new_project_name"]))
        project = created["id"]
        new_project = {"id": created["id"], "name": created["name"]}
    execution = copy.deepcopy(source.get("execution") or _default_execution())
    execution["artifacts"] = [a for a in execution.get("artifacts") or [] if a.get("mode") == "input"]
    execution.pop("queue", None)
    if body.get("execution_overrides"):
        execution.update(copy.deepcopy(body["execution_overrides"]))
    input_models = body.get("new_task_input_models")
    if input_models is None:
        input_models = (source.get("models") or {}).get("input") or []
    fields = {
        "name": body.get("new_task_name") or source["name"],
        "type": source["type"],
        "comment": body.get("new_task_comment")
        if body.get("new_task_comment") is not None
        else source["comment"],
        "parent": body.get("new_task_parent") or source.get("parent"),
        "project": project,
        "tags": body.get("new_task_tags") if body.get("new_task_tags") is not None else source.get("tags"),
        "system_tags": body.get("new_task_system_tags")
        if body.get("new_task_system_tags") is not None
        else [t for t in source.get("system_tags") or [] if t != "archived"],
        "script": source.get("script"),
        "execution": execution,
        "hyperparams": body.get("new_task_hyperparams") or source.get("hyperparams"),
        "configuration": body.get("new_task_configuration") or source.get("configuration"),
        "container": body.get("new_task_container") or source.get("container"),
        "models": {"input": input_models, "output": []},
        "output_dest": (source.get("output") or {}).get("destination"),
    }
    if as_bool(body.get("validate_references")):
        _validate_refs(call, fields)
    else:
        check_project(call, project)
    doc = new_task_doc(call, fields)
    doc["models"] = _models_with_timestamps(doc["models"], doc["created"])
    call.store.put("tasks", doc)
    result: dict[str, Any] = {"id": doc["id"]}
    if new_project:
        result["new_project"] = new_project
    return result


@endpoint("tasks.move")
def move(call: Call) -> dict[str, Any]:
    project = call.body.get("project")
    if not project and call.body.get("project_name"):
        project = ensure_project(
            call.store, call.identity, normalize_project_name(call.body["project_name"])
        )["id"]
    if not project:
        raise validation("project or project_name is required")
    check_project(call, project)
    for task_id in str_list(call.require("ids"), "ids"):
        doc = get_task(call, task_id)
        doc["project"] = project
        _touch(doc, call)
        call.store.put("tasks", doc)
    return {"project_id": project}


@endpoint("tasks.validate")
def validate(call: Call) -> dict[str, Any]:
    fields = dict(call.body)
    _validate_name(fields.get("name"))
    _validate_type(fields.get("type"))
    _validate_refs(call, fields)
    return {}


def task_exists_or_fail(call: Call, task_id: Any) -> None:
    if not call.store.exists("tasks", task_id):
        raise invalid_task(task_id)
