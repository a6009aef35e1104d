# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the services: lookups, validation, projects by name, generic ``get_all``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .. import query
from ..api import Call, Identity
from ..errors import ApiError, invalid_model, invalid_project, invalid_task, validation
from ..store import Store
from ..util import new_id, now_iso

# Request keys that steer get_all and are never field filters.
CONTROL_KEYS = {
    "only_fields",
    "order_by",
    "page",
    "page_size",
    "search_hidden",
    "_any_",
    "_all_",
    "scroll_id",
    "refresh_scroll",
    "size",
    "search_text",
    "shallow_search",
    "include_subprojects",
    "include_stats",
    "method",
    "allow_public",
    "max_task_entries",
    "active_users",
    "check_own_contents",
    "include_stats_filter",
    "stats_for_state",
    "stats_with_children",
    "children_type",
    "children_tags",
    "non_public",
    "include_dataset_stats",
}


def get_task(call: Call, task_id: Any) -> dict[str, Any]:
    doc = call.store.get("tasks", task_id)
    if doc is None:
        raise invalid_task(task_id)
    return doc


def get_model(call: Call, model_id: Any) -> dict[str, Any]:
    doc = call.store.get("models", model_id)
    if doc is None:
        raise invalid_model(model_id)
    return doc


def get_project(call: Call, project_id: Any) -> dict[str, Any]:
    doc = call.store.get("projects", project_id)
    if doc is None:
        raise invalid_project(project_id)
    return doc


def check_project(call: Call, project_id: Any) -> None:
    if project_id not in (None, "") and not call.store.exists("projects", project_id):
        raise invalid_project(project_id)


def str_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise validation(f"{name} must be a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise validation(f"{name} must be a list of strings")
    return list(value)


def as_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def as_int(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise validation(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise validation(f"{name} must be an integer") from None


def ids_from(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)]


# -- projects by name -------------------------------------------------------------------------------
def normalize_project_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ApiError(400, 407, "Invalid project name (a string is required)")
    parts = [p.strip() for p in name.split("/")]
    parts = [p for p in parts if p]
    if not parts:
        raise ApiError(400, 407, "Invalid project name (the name cannot be empty)")
    return "/".join(parts)


def project_by_name(store: Store, name: str) -> dict[str, Any] | None:
    for doc in store.all("projects"):
        if doc.get("name") == name:
            return doc
    return None


def new_project_doc(
    identity: Identity,
    name: str,
    parent: dict[str, Any] | None,
    description: str = "",
    tags: list[str] | None = None,
    system_tags: list[str] | None = None,
    default_output_destination: str | None = None,
) -> dict[str, Any]:
    now = now_iso()
    doc: dict[str, Any] = {
        "id": new_id(),
        "name": name,
        "basename": name.rsplit("/", 1)[-1],
        "description": description or "",
        "user": identity.user,
        "company": identity.company,
        "created": now,
        "last_update": now,
        "tags": list(tags or []),
        "system_tags": list(system_tags or []),
    }
    if default_output_destination:
        doc["default_output_destination"] = default_output_destination
    if parent is not None:
        doc["parent"] = parent["id"]
        doc["path"] = [*(parent.get("path") or []), parent["id"]]
    else:
        doc["path"] = []
    return doc


def ensure_project(store: Store, identity: Identity, name: str) -> dict[str, Any] | None:
    """Find or create the project ``name`` and its missing parents (plain projects, no tags)."""
    name = name.strip("/")
    if not name:
        return None
    existing = project_by_name(store, name)
    if existing is not None:
        return existing
    location, _, _ = name.rpartition("/")
    parent = ensure_project(store, identity, location) if location else None
    doc = new_project_doc(identity, name, parent)
    store.put("projects", doc)
    return doc


def project_descendants(store: Store, project_ids: Iterable[str]) -> set[str]:
    wanted = set(project_ids)
    result = set(wanted)
    for doc in store.all("projects"):
        if wanted.intersection(doc.get("path") or []):
            result.add(doc["id"])
    return result


# -- generic get_all --------------------------------------------------------------------------------
FieldFilter = Callable[[Any, Any], bool]


def _build_checks(
    body: dict[str, Any], filters: dict[str, FieldFilter], hidden_tag_filter: bool
) -> list[Callable[[dict[str, Any]], bool]]:
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for key, value in body.items():
        if value is None or key in CONTROL_KEYS:
            continue
        if key in filters:
            checks.append(lambda d, k=key, v=value: filters[k](v, query.get_path(d, k)))
        elif "." in key and not key.startswith("_"):
            # generic dotted field filter (e.g. "hyperparams.Args.lr.value", "runtime.version")
            checks.append(lambda d, k=key, v=value: query.in_list(v, query.get_path(d, k)))
    for mode in ("_any_", "_all_"):
        spec = body.get(mode)
        if spec:
            checks.append(lambda d, m=mode, s=spec: query.pattern_match(s, d, m))
    search_text = body.get("search_text")
    if search_text:
        pattern = re.escape(str(search_text))
        checks.append(
            lambda d: any(
                query.regex_match(pattern, d.get(f)) for f in ("id", "name", "comment", "description")
            )
        )
    if hidden_tag_filter and not as_bool(body.get("search_hidden")) and not body.get("id"):
        checks.append(lambda d: "hidden" not in (d.get("system_tags") or []))
    return checks


def run_get_all(
    call: Call,
    kind: str,
    key: str,
    filters: dict[str, FieldFilter],
    extra: Callable[[dict[str, Any]], bool] | None = None,
    hidden_tag_filter: bool = False,
) -> dict[str, Any]:
    """``{key: [documents]}`` filtered, sorted, paged and projected the way clearml-server does.

    Paging is ``page``/``page_size`` (what the SDK uses) or ``size`` + ``scroll_id`` (the response then
    carries the ``scroll_id`` of the next page).
    """
    body = call.body
    checks = _build_checks(body, filters, hidden_tag_filter)
    if extra is not None:
        checks.append(extra)
    docs = [d for d in call.store.all(kind) if all(check(d) for check in checks)]
    docs = query.sort_docs(docs, body.get("order_by"))
    result: dict[str, Any] = {}
    if body.get("scroll_id") or (body.get("size") is not None and body.get("page_size") is None):
        size = as_int(body.get("size"), "size", 500) or 500
        offset = _scroll_offset(body.get("scroll_id"))
        docs = docs[offset : offset + size]
        result["scroll_id"] = f"offset-{offset + len(docs)}"
    else:
        docs = query.paginate(docs, body.get("page"), body.get("page_size"))
    only_fields = body.get("only_fields")
    if only_fields:
        if isinstance(only_fields, str):
            only_fields = [only_fields]
        docs = [query.project_fields(d, only_fields) for d in docs]
    result[key] = docs
    return result


def _scroll_offset(scroll_id: Any) -> int:
    if not scroll_id:
        return 0
    text = str(scroll_id)
    if not text.startswith("offset-") or not text[7:].isdigit():
        raise validation(f"invalid scroll_id {text!r}")
    return int(text[7:])


def regex_filter(pattern: Any, value: Any) -> bool:
    return query.regex_match(pattern, value)


def list_filter(spec: Any, value: Any) -> bool:
    return query.in_list(spec, value)


def tags_filter(spec: Any, value: Any) -> bool:
    return query.tags_match(spec, value)


def bool_filter(spec: Any, value: Any) -> bool:
    return as_bool(spec) == bool(value)


def date_filter(spec: Any, value: Any) -> bool:
    return query.date_match(spec, value)


def merge_system_tags(tags: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for tag in tags:
        if tag not in seen:
            seen.append(tag)
    return seen


def metadata_dict(items: Any) -> dict[str, Any]:
    """Model/queue ``metadata`` arrives as ``[{key, type, value}]`` and is stored keyed by ``key``."""
    if items is None:
        return {}
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list):
        raise validation("metadata must be a list of {key, type, value}")
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("key"):
            raise validation("metadata items need a key")
        key = str(item["key"])
        out[key] = {"key": key, "type": item.get("type"), "value": item.get("value")}
    return out
