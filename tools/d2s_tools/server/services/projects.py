# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""projects.*"""

from __future__ import annotations

from typing import Any

from ..api import Call, endpoint
from ..errors import ApiError, validation
from ..util import now_iso
from .common import (
    as_bool,
    ensure_project,
    get_project,
    list_filter,
    new_project_doc,
    normalize_project_name,
    project_by_name,
    project_descendants,
    regex_filter,
    run_get_all,
    str_list,
    tags_filter,
)

_FILTERS = {
    "id": list_filter,
    "name": regex_filter,
    "basename": regex_filter,
    "description": regex_filter,
    "user": list_filter,
    "tags": tags_filter,
    "system_tags": tags_filter,
}


@endpoint("projects.create")
def create(call: Call) -> dict[str, Any]:
    name = normalize_project_name(call.require("name"))
    if project_by_name(call.store, name) is not None:
        raise ApiError(400, 801, f"Project with the same name already exists: name={name}", name=name)
    location, _, _ = name.rpartition("/")
    parent = ensure_project(call.store, call.identity, location) if location else None
    doc = new_project_doc(
        call.identity,
        name,
        parent,
        description=call.arg("description", ""),
        tags=str_list(call.body.get("tags"), "tags"),
        system_tags=str_list(call.body.get("system_tags"), "system_tags"),
        default_output_destination=call.body.get("default_output_destination"),
    )
    call.store.put("projects", doc)
    if parent is not None:
        parent = call.store.get("projects", parent["id"])
        parent["last_update"] = doc["created"]
        call.store.put("projects", parent)
    return {"id": doc["id"]}


@endpoint("projects.get_by_id")
def get_by_id(call: Call) -> dict[str, Any]:
    return {"project": get_project(call, call.require("project"))}


@endpoint("projects.get_all", "projects.get_all_ex")
def get_all(call: Call) -> dict[str, Any]:
    """``parent``: the descendants of those projects, only their direct children with ``shallow_search``;
    ``shallow_search`` alone: top-level projects only."""
    body = call.body
    shallow = as_bool(body.get("shallow_search"))
    parents = body.get("parent")
    if parents is not None and not isinstance(parents, list):
        parents = [parents]
    call.body = {k: v for k, v in body.items() if k != "parent"}
    extra = None
    if parents:
        wanted = set(parents)

        def extra(doc: dict[str, Any]) -> bool:
            if shallow:
                return doc.get("parent") in wanted
            return bool(wanted.intersection(doc.get("path") or []))

    elif shallow and not body.get("id"):

        def extra(doc: dict[str, Any]) -> bool:
            return not doc.get("parent")

    return run_get_all(call, "projects", "projects", _FILTERS, extra=extra, hidden_tag_filter=True)


@endpoint("projects.update")
def update(call: Call) -> dict[str, Any]:
    doc = get_project(call, call.require("project"))
    fields: dict[str, Any] = {}
    for key in ("description", "default_output_destination"):
        if key in call.body and call.body[key] is not None:
            fields[key] = call.body[key]
    for key in ("tags", "system_tags"):
        if call.body.get(key) is not None:
            fields[key] = str_list(call.body[key], key)
    new_name = call.body.get("name")
    if new_name is not None:
        new_name = normalize_project_name(new_name)
        if new_name != doc["name"]:
            _rename(call, doc, new_name)
            doc = call.store.get("projects", doc["id"])
            fields["name"] = new_name
    if fields:
        doc.update({k: v for k, v in fields.items() if k != "name"})
        doc["last_update"] = now_iso()
        call.store.put("projects", doc)
    return {"updated": 1 if fields else 0, "fields": fields}


def _rename(call: Call, doc: dict[str, Any], new_name: str) -> None:
    clash = project_by_name(call.store, new_name)
    if clash is not None:
        raise ApiError(400, 801, f"Project with the same name already exists: name={new_name}", name=new_name)
    old_name = doc["name"]
    if new_name.startswith(old_name + "/"):
        raise validation("a project cannot be moved under itself")
    location, _, _ = new_name.rpartition("/")
    parent = ensure_project(call.store, call.identity, location) if location else None
    doc["name"] = new_name
    doc["basename"] = new_name.rsplit("/", 1)[-1]
    doc["path"] = [*(parent.get("path") or []), parent["id"]] if parent else []
    if parent:
        doc["parent"] = parent["id"]
    else:
        doc.pop("parent", None)
    call.store.put("projects", doc)
    for child_id in project_descendants(call.store, [doc["id"]]) - {doc["id"]}:
        child = call.store.get("projects", child_id)
        child["name"] = new_name + child["name"][len(old_name) :]
        path = child.get("path") or []
        index = path.index(doc["id"])
        child["path"] = doc["path"] + path[index:]
        call.store.put("projects", child)


@endpoint("projects.move")
def move(call: Call) -> dict[str, Any]:
    doc = get_project(call, call.require("project"))
    location = call.body.get("new_location") or ""
    location = location.strip("/")
    new_name = f"{location}/{doc['basename']}" if location else doc["basename"]
    if new_name != doc["name"]:
        _rename(call, doc, new_name)
    return {"moved": 1}


def _project_contents(call: Call, project_ids: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tasks = [t for t in call.store.all("tasks") if t.get("project") in project_ids]
    models = [m for m in call.store.all("models") if m.get("project") in project_ids]
    return tasks, models


@endpoint("projects.validate_delete")
def validate_delete(call: Call) -> dict[str, Any]:
    doc = get_project(call, call.require("project"))
    tasks, models = _project_contents(call, project_descendants(call.store, [doc["id"]]))
    return {
        "tasks": len(tasks),
        "non_archived_tasks": sum(1 for t in tasks if "archived" not in (t.get("system_tags") or [])),
        "models": len(models),
        "non_archived_models": sum(1 for m in models if "archived" not in (m.get("system_tags") or [])),
    }


@endpoint("projects.delete")
def delete(call: Call) -> dict[str, Any]:
    doc = get_project(call, call.require("project"))
    force = as_bool(call.body.get("force"))
    delete_contents = as_bool(call.body.get("delete_contents"))
    ids = project_descendants(call.store, [doc["id"]])
    tasks, models = _project_contents(call, ids)
    active_tasks = [t for t in tasks if "archived" not in (t.get("system_tags") or [])]
    if active_tasks and not force and not delete_contents:
        raise ApiError(
            400,
            403,
            f"project has associated non-archived tasks: id={doc['id']} tasks={len(active_tasks)}",
            id=doc["id"],
        )
    deleted_tasks = deleted_models = disassociated = 0
    urls: dict[str, list[str]] = {"model_urls": [], "artifact_urls": [], "event_urls": []}
    for task in tasks:
        if delete_contents:
            call.store.delete("tasks", task["id"])
            call.store.delete_events(task["id"])
            urls["artifact_urls"].extend(
                a["uri"] for a in (task.get("execution") or {}).get("artifacts") or [] if a.get("uri")
            )
            deleted_tasks += 1
        else:
            fresh = call.store.get("tasks", task["id"])
            fresh.pop("project", None)
            call.store.put("tasks", fresh)
            disassociated += 1
    for model in models:
        if delete_contents:
            call.store.delete("models", model["id"])
            if model.get("uri"):
                urls["model_urls"].append(model["uri"])
            deleted_models += 1
        else:
            fresh = call.store.get("models", model["id"])
            fresh.pop("project", None)
            call.store.put("models", fresh)
    for project_id in ids:
        call.store.delete("projects", project_id)
    return {
        "deleted": len(ids),
        "disassociated_tasks": disassociated,
        "deleted_tasks": deleted_tasks,
        "deleted_models": deleted_models,
        "urls": urls,
    }


def _tags_of(call: Call, kind: str) -> dict[str, list[str]]:
    projects = call.body.get("projects")
    tags: set[str] = set()
    system_tags: set[str] = set()
    for doc in call.store.all(kind):
        if projects and doc.get("project") not in projects:
            continue
        tags.update(doc.get("tags") or [])
        system_tags.update(doc.get("system_tags") or [])
    return {"tags": sorted(tags), "system_tags": sorted(system_tags)}


@endpoint("projects.get_task_tags")
def get_task_tags(call: Call) -> dict[str, Any]:
    return _tags_of(call, "tasks")


@endpoint("projects.get_model_tags")
def get_model_tags(call: Call) -> dict[str, Any]:
    return _tags_of(call, "models")


@endpoint("projects.get_project_tags")
def get_project_tags(call: Call) -> dict[str, Any]:
    tags: set[str] = set()
    system_tags: set[str] = set()
    for doc in call.store.all("projects"):
        tags.update(doc.get("tags") or [])
        system_tags.update(doc.get("system_tags") or [])
    return {"tags": sorted(tags), "system_tags": sorted(system_tags)}


@endpoint("projects.get_task_parents")
def get_task_parents(call: Call) -> dict[str, Any]:
    projects = call.body.get("projects")
    parent_ids = {
        t.get("parent")
        for t in call.store.all("tasks")
        if t.get("parent") and (not projects or t.get("project") in projects)
    }
    parents = []
    for parent_id in sorted(parent_ids):
        parent = call.store.get("tasks", parent_id)
        if parent is not None:
            parents.append(
                {"id": parent_id, "name": parent.get("name"), "project": {"id": parent.get("project")}}
            )
    return {"parents": parents}


@endpoint("organization.get_tags")
def organization_tags(call: Call) -> dict[str, Any]:
    tags: set[str] = set()
    system_tags: set[str] = set()
    for kind in ("tasks", "models", "projects"):
        for doc in call.store.all(kind):
            tags.update(doc.get("tags") or [])
            system_tags.update(doc.get("system_tags") or [])
    return {"tags": sorted(tags), "system_tags": sorted(system_tags)}
