# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Query semantics of ClearML's ``*.get_all`` calls over plain dicts.

Covers what clearml-server does with MongoDB: regex fields, tag-list operators, list filters, date
ranges, ``_any_``/``_all_`` patterns, dotted ``only_fields`` projection (parent dicts are kept, as a Mongo
projection keeps them), ``order_by`` and paging.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import ApiError
from .util import parse_iso

_MISSING = object()

TAG_OP_PREFIX = "__$"
_GROUP_OPS = {"all": "and", "and": "and", "any": "or", "or": "or"}


def get_path(doc: Any, path: str, default: Any = None) -> Any:
    """Value at dotted ``path`` in ``doc``; lists of dicts yield the list of their values."""
    cur = doc
    parts = path.split(".")
    for index, part in enumerate(parts):
        if isinstance(cur, dict):
            if part not in cur:
                return default
            cur = cur[part]
        elif isinstance(cur, list):
            rest = ".".join(parts[index:])
            values = [get_path(item, rest, _MISSING) for item in cur]
            return [v for v in values if v is not _MISSING]
        else:
            return default
    return cur


def regex_match(pattern: Any, value: Any) -> bool:
    if pattern is None:
        return True
    try:
        compiled = re.compile(str(pattern))
    except re.error as exc:
        raise ApiError(400, 12, f"Validation error (invalid regular expression {pattern!r}: {exc})") from None
    if isinstance(value, list):
        return any(isinstance(v, str) and compiled.search(v) for v in value)
    return isinstance(value, str) and compiled.search(value) is not None


def _parse_tag_groups(spec: Sequence[Any]) -> tuple[list[tuple[str, list[str], list[str]]], bool]:
    """Split a tag filter into ``(op, include, exclude)`` groups, as clearml-server does."""
    groups: list[tuple[str, list[str], list[str]]] = []
    op, include, exclude = "or", [], []
    allow_empty = False
    pending_unary: str | None = None
    for item in spec:
        if item is None:
            allow_empty = True
            continue
        value = str(item)
        if value.startswith(TAG_OP_PREFIX):
            name = value[len(TAG_OP_PREFIX) :]
            if name in _GROUP_OPS:
                if include or exclude:
                    groups.append((op, include, exclude))
                op, include, exclude = _GROUP_OPS[name], [], []
                pending_unary = None
                continue
            if name in ("not", "nop"):
                pending_unary = name
                continue
            raise ApiError(400, 12, f"Validation error (unknown tag operator {value!r})")
        if pending_unary == "not":
            exclude.append(value)
        elif pending_unary == "nop":
            include.append(value)
        elif value.startswith("-"):
            exclude.append(value[1:])
        else:
            include.append(value)
        pending_unary = None
    if include or exclude:
        groups.append((op, include, exclude))
    return groups, allow_empty


def _group_matches(op: str, include: list[str], exclude: list[str], present: set[str]) -> bool:
    # Mongo: "and" groups use $all / not $all, "or" groups use $in / $nin
    combine = all if op == "and" else any
    if include and not combine(t in present for t in include):
        return False
    return not (exclude and combine(t in present for t in exclude))


def tags_match(spec: Any, tags: Any) -> bool:
    if spec is None:
        return True
    if isinstance(spec, str):
        spec = [spec]
    if not spec:
        return True
    present = set(tags or [])
    groups, allow_empty = _parse_tag_groups(spec)
    if allow_empty and not present:
        return True
    if not groups:
        return not allow_empty
    return all(_group_matches(op, include, exclude, present) for op, include, exclude in groups)


def in_list(spec: Any, value: Any) -> bool:
    """``field: [a, b]`` filter: the value (or one of a list value's items) is one of the given values."""
    if spec is None:
        return True
    if not isinstance(spec, (list, tuple)):
        spec = [spec]
    if not spec:
        return True
    if isinstance(value, list):
        return any(v in spec for v in value) or (not value and None in spec)
    return value in spec


def _compare_dates(value: Any, op: str, bound: str) -> bool:
    if not isinstance(value, str):
        return False
    value_key, bound_key = _date_key(value), _date_key(bound)
    return {
        ">": value_key > bound_key,
        ">=": value_key >= bound_key,
        "<": value_key < bound_key,
        "<=": value_key <= bound_key,
        "=": value_key == bound_key,
    }[op]


def _date_key(text: str) -> str:
    # ISO strings compare correctly as text once normalised to UTC with the same shape.
    try:
        return parse_iso(text).isoformat()
    except ValueError:
        raise ApiError(400, 12, f"Validation error (invalid date {text!r})") from None


def date_match(spec: Any, value: Any) -> bool:
    if spec is None:
        return True
    if isinstance(spec, str):
        spec = [spec]
    ops = [s for s in spec if isinstance(s, str) and s[:1] in "<>="]
    if ops:
        conditions = []
        for item in ops:
            op = item[:2] if item[:2] in (">=", "<=") else item[:1]
            conditions.append((op, item[len(op) :]))
    elif len(spec) == 2:  # [from, to], either may be null
        conditions = [(op, bound) for op, bound in zip((">=", "<="), spec, strict=True) if bound is not None]
    else:
        conditions = [("=", s) for s in spec if s is not None]
    return all(_compare_dates(value, op, bound) for op, bound in conditions)


def pattern_match(spec: Any, doc: dict[str, Any], mode: str) -> bool:
    """``_any_``/``_all_``: ``{pattern, fields}`` (or ``{datetime, fields}``) across several fields."""
    if not spec:
        return True
    if not isinstance(spec, dict):
        raise ApiError(400, 12, f"Validation error (invalid {mode} filter)")
    fields = spec.get("fields") or []
    pattern = spec.get("pattern")
    if pattern is None:
        return True
    results = []
    for field in fields:
        value = get_path(doc, field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        results.append(regex_match(pattern, value))
    if not results:
        return True
    return any(results) if mode == "_any_" else all(results)


def project_fields(doc: dict[str, Any], only_fields: Iterable[str] | None) -> dict[str, Any]:
    """Mongo-style projection: keep the dotted paths, and the parent dicts on the way even when empty."""
    if not only_fields:
        return doc
    out: dict[str, Any] = {"id": doc.get("id")} if "id" in doc else {}
    for path in only_fields:
        if not path:
            continue
        _project_into(doc, out, path.split("."))
    return out


def _project_into(src: Any, dst: dict[str, Any], parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if not isinstance(src, dict) or head not in src:
        return
    value = src[head]
    if not rest:
        dst[head] = value
        return
    if isinstance(value, dict):
        sub = dst.get(head)
        if not isinstance(sub, dict):
            sub = dst[head] = {}
        _project_into(value, sub, rest)
    elif isinstance(value, list):
        existing = dst.get(head)
        items = existing if isinstance(existing, list) and len(existing) == len(value) else None
        if items is None:
            items = [{} if isinstance(v, dict) else None for v in value]
            dst[head] = items
        for index, item in enumerate(value):
            if isinstance(item, dict) and isinstance(items[index], dict):
                _project_into(item, items[index], rest)
        dst[head] = [i for i in items if i is not None]


def _sort_value(value: Any) -> tuple[int, Any]:
    # Mongo orders null/missing first, then numbers, then strings, ... (enough for the fields we sort on).
    if value is None or value is _MISSING:
        return (0, 0)
    if isinstance(value, bool):
        return (4, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, (list, tuple)):
        return (3, str(value))
    return (3, str(value))


def sort_docs(docs: list[dict[str, Any]], order_by: Sequence[str] | None) -> list[dict[str, Any]]:
    if not order_by:
        return docs
    if isinstance(order_by, str):
        order_by = [order_by]
    result = list(docs)
    for key in reversed([o for o in order_by if o]):
        descending = key.startswith("-")
        field = key.lstrip("-+")
        result.sort(key=lambda d, f=field: _sort_value(get_path(d, f, _MISSING)), reverse=descending)
    return result


def paginate(docs: list[Any], page: Any, page_size: Any) -> list[Any]:
    if page is None and page_size is None:
        return docs
    try:
        page_n = int(page or 0)
        size = int(page_size) if page_size is not None else 500
    except (TypeError, ValueError):
        raise ApiError(400, 12, "Validation error (page and page_size must be integers)") from None
    if page_n < 0 or size < 1:
        raise ApiError(400, 12, "Validation error (page must be >= 0 and page_size >= 1)")
    return docs[page_n * size : (page_n + 1) * size]
