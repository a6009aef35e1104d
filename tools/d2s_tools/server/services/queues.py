# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""queues.* and workers.* (minimal: nothing executes tasks here, but agents and clearml-serving ask)."""

from __future__ import annotations

from typing import Any

from ..api import Call, Identity, endpoint
from ..errors import ApiError, invalid_queue, validation
from ..store import Store
from ..util import new_id, now_iso
from .common import list_filter, metadata_dict, regex_filter, run_get_all, str_list, tags_filter

DEFAULT_QUEUE_NAME = "default"

_FILTERS = {
    "id": list_filter,
    "name": regex_filter,
    "tags": tags_filter,
    "system_tags": tags_filter,
    "user": list_filter,
}


def _new_queue(identity: Identity, name: str, tags: list[str], system_tags: list[str]) -> dict[str, Any]:
    return {
        "id": new_id(),
        "name": name,
        "user": identity.user,
        "company": identity.company,
        "created": now_iso(),
        "last_update": now_iso(),
        "tags": tags,
        "system_tags": system_tags,
        "entries": [],
        "metadata": {},
    }


def ensure_default_queue(store: Store, identity: Identity) -> None:
    """clearml-server creates a ``default`` queue tagged ``default`` at its first start."""
    if any("default" in (q.get("system_tags") or []) for q in store.all("queues")):
        return
    store.put("queues", _new_queue(identity, DEFAULT_QUEUE_NAME, [], ["default"]))


def _get_queue(call: Call, queue_id: Any) -> dict[str, Any]:
    doc = call.store.get("queues", queue_id)
    if doc is None:
        raise invalid_queue(queue_id)
    return doc


def _by_name(call: Call, name: str) -> dict[str, Any] | None:
    for doc in call.store.all("queues"):
        if doc.get("name") == name:
            return call.store.get("queues", doc["id"])
    return None


def resolve_queue(call: Call, queue_id: Any, queue_name: Any, create: bool = False) -> dict[str, Any]:
    if queue_id:
        return _get_queue(call, queue_id)
    if queue_name:
        doc = _by_name(call, queue_name)
        if doc is None:
            if not create:
                raise ApiError(400, 701, f"Invalid queue id: name={queue_name}")
            doc = _new_queue(call.identity, queue_name, [], [])
            call.store.put("queues", doc)
        return doc
    for doc in call.store.all("queues"):
        if "default" in (doc.get("system_tags") or []):
            return call.store.get("queues", doc["id"])
    raise ApiError(400, 707, "No queue is tagged as the default queue for this company")


def queue_add_task(call: Call, queue_id: str, task_id: str) -> None:
    doc = _get_queue(call, queue_id)
    entries = [e for e in doc.get("entries") or [] if e.get("task") != task_id]
    entries.append({"task": task_id, "added": now_iso()})
    doc["entries"] = entries
    doc["last_update"] = now_iso()
    call.store.put("queues", doc)


def queue_remove_task(call: Call, queue_id: str, task_id: str) -> bool:
    doc = call.store.get("queues", queue_id)
    if doc is None:
        return False
    before = doc.get("entries") or []
    after = [e for e in before if e.get("task") != task_id]
    if len(after) == len(before):
        return False
    doc["entries"] = after
    doc["last_update"] = now_iso()
    call.store.put("queues", doc)
    return True


@endpoint("queues.get_all", "queues.get_all_ex")
def get_all(call: Call) -> dict[str, Any]:
    return run_get_all(call, "queues", "queues", _FILTERS, hidden_tag_filter=True)


@endpoint("queues.get_by_id")
def get_by_id(call: Call) -> dict[str, Any]:
    return {"queue": _get_queue(call, call.require("queue"))}


@endpoint("queues.get_default")
def get_default(call: Call) -> dict[str, Any]:
    doc = resolve_queue(call, None, None)
    return {"id": doc["id"], "name": doc["name"]}


@endpoint("queues.create")
def create(call: Call) -> dict[str, Any]:
    name = call.require("name")
    if not isinstance(name, str) or not name.strip():
        raise validation("name must be a non-empty string")
    if _by_name(call, name) is not None:
        raise ApiError(400, 702, f"Queue with this name already exists: name={name}", name=name)
    doc = _new_queue(
        call.identity,
        name,
        str_list(call.body.get("tags"), "tags"),
        str_list(call.body.get("system_tags"), "system_tags"),
    )
    call.store.put("queues", doc)
    return {"id": doc["id"]}


@endpoint("queues.update")
def update(call: Call) -> dict[str, Any]:
    doc = _get_queue(call, call.require("queue"))
    fields: dict[str, Any] = {}
    if call.body.get("name") is not None:
        fields["name"] = call.body["name"]
    for key in ("tags", "system_tags"):
        if call.body.get(key) is not None:
            fields[key] = str_list(call.body[key], key)
    doc.update(fields)
    if fields:
        doc["last_update"] = now_iso()
        call.store.put("queues", doc)
    return {"updated": 1 if fields else 0, "fields": fields}


@endpoint("queues.delete")
def delete(call: Call) -> dict[str, Any]:
    doc = _get_queue(call, call.require("queue"))
    if doc.get("entries") and not call.body.get("force"):
        raise ApiError(400, 703, f"Queue is not empty: id={doc['id']}")
    call.store.delete("queues", doc["id"])
    return {"deleted": 1}


@endpoint("queues.add_task")
def add_task(call: Call) -> dict[str, Any]:
    queue_add_task(call, call.require("queue"), call.require("task"))
    return {"added": 1}


@endpoint("queues.remove_task")
def remove_task(call: Call) -> dict[str, Any]:
    return {"removed": 1 if queue_remove_task(call, call.require("queue"), call.require("task")) else 0}


@endpoint("queues.get_next_task")
def get_next_task(call: Call) -> dict[str, Any]:
    doc = _get_queue(call, call.require("queue"))
    entries = doc.get("entries") or []
    if not entries:
        return {}
    entry = entries[0]
    doc["entries"] = entries[1:]
    call.store.put("queues", doc)
    result: dict[str, Any] = {"entry": entry}
    if call.body.get("get_task_info"):
        task = call.store.get("tasks", entry["task"])
        result["task_info"] = {"company": (task or {}).get("company"), "user": (task or {}).get("user")}
    return result


@endpoint("queues.peek_task")
def peek_task(call: Call) -> dict[str, Any]:
    entries = _get_queue(call, call.require("queue")).get("entries") or []
    return {"task": entries[0]["task"]} if entries else {}


@endpoint("queues.get_num_entries")
def get_num_entries(call: Call) -> dict[str, Any]:
    return {"num": len(_get_queue(call, call.require("queue")).get("entries") or [])}


@endpoint("queues.add_or_update_metadata")
def add_or_update_metadata(call: Call) -> dict[str, Any]:
    doc = _get_queue(call, call.require("queue"))
    metadata = {} if call.body.get("replace_metadata") else dict(doc.get("metadata") or {})
    metadata.update(metadata_dict(call.require("metadata")))
    doc["metadata"] = metadata
    call.store.put("queues", doc)
    return {"updated": 1}


@endpoint("queues.get_queue_metrics")
def get_queue_metrics(call: Call) -> dict[str, Any]:
    return {"queues": []}


# -- workers: accepted and forgotten (no agent runs against this server) -----------------------------
@endpoint("workers.register", "workers.unregister", "workers.status_report")
def worker_noop(call: Call) -> dict[str, Any]:
    return {}


@endpoint("workers.get_all")
def workers_get_all(call: Call) -> dict[str, Any]:
    return {"workers": []}


@endpoint("workers.get_runtime_properties")
def workers_runtime_properties(call: Call) -> dict[str, Any]:
    return {"runtime_properties": []}
