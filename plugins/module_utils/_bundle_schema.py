# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""JSON Schema of the bundle manifest v1, embedded as a Python dict, and its validators.

Private to this collection: not a public API, may change without notice.

Ansible ships module_utils to managed hosts as Python only, so the schema lives here;
``schemas/manifest-v1.schema.json`` is a generated copy (a unit test keeps them equal). Regenerate it
with ``python plugins/module_utils/_bundle_schema.py > schemas/manifest-v1.schema.json``.

Validation uses ``jsonschema`` when it is importable and otherwise a small built-in validator for
exactly the keywords in ``SCHEMA_KEYWORDS`` (the unit tests run both and prove they agree).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

try:
    import jsonschema
except ImportError:  # pragma: no cover - exercised by forcing engine="builtin" in the tests
    HAS_JSONSCHEMA = False
else:
    HAS_JSONSCHEMA = True

SCHEMA_ID = "https://deploy2standalone.example/schemas/manifest-v1.schema.json"
_DIGEST = "^[0-9a-f]{64}$"
_ID = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_SLUG = "^[a-z0-9][a-z0-9._-]{0,63}$"


def _obj(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


_NULLABLE_STR = {"type": ["string", "null"]}
_STR_LIST = {"type": "array", "items": {"type": "string"}}
_NULLABLE_ID = {"type": ["string", "null"], "pattern": _ID}
_NULLABLE_DIGEST = {"type": ["string", "null"], "pattern": _DIGEST}

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "deploy2standalone bundle manifest, format v1",
    "description": (
        "manifest.json at the root of a deploy2standalone bundle. Field by field in docs/bundle-format.md. "
        "Volatile fields (export time, exporter) live in manifest.volatile.json ($defs/volatile)."
    ),
    "type": "object",
    "required": [
        "format",
        "tool",
        "source",
        "serving_id",
        "model",
        "tasks",
        "datasets",
        "serving",
        "models",
        "task_records",
        "dataset_versions",
        "code",
        "images",
        "wheels",
        "redactions",
        "blobs",
    ],
    "additionalProperties": False,
    "properties": {
        "format": _obj(
            ["name", "version"],
            {
                "name": {"const": "deploy2standalone-bundle"},
                "version": {"type": "string", "pattern": "^[0-9]{1,4}\\.[0-9]{1,4}$"},
            },
        ),
        "tool": _obj(
            ["name", "version"],
            {"name": {"type": "string", "minLength": 1}, "version": {"type": "string", "minLength": 1}},
        ),
        "source": _obj(
            ["api_host"],
            {
                "api_host": {"type": "string", "minLength": 1},
                "web_host": _NULLABLE_STR,
                "files_host": _NULLABLE_STR,
                "api_version": _NULLABLE_STR,
                "server_version": _NULLABLE_STR,
            },
        ),
        "serving_id": _NULLABLE_ID,
        "model": {
            "type": ["object", "null"],
            "required": ["id", "url"],
            "properties": {"id": _ref("id"), "url": _NULLABLE_STR, "name": _NULLABLE_STR},
            "additionalProperties": False,
        },
        "tasks": {"type": "array", "items": _ref("task_entry")},
        "datasets": {
            "type": "object",
            "propertyNames": _ref("id"),
            "additionalProperties": _obj(
                ["name", "project"],
                {"name": {"type": "string"}, "project": _NULLABLE_STR, "version": _NULLABLE_STR},
            ),
        },
        "serving": {"anyOf": [{"type": "null"}, _ref("serving")]},
        "models": {"type": "object", "propertyNames": _ref("id"), "additionalProperties": _ref("model")},
        "task_records": {
            "type": "object",
            "propertyNames": _ref("id"),
            "additionalProperties": _ref("task_record"),
        },
        "dataset_versions": {
            "type": "object",
            "propertyNames": _ref("id"),
            "additionalProperties": _ref("dataset_version"),
        },
        "code": {"type": "array", "items": _ref("code")},
        "images": {"type": "array", "items": _ref("image")},
        "wheels": {"type": "array", "items": _ref("wheel")},
        "redactions": {"type": "array", "items": _ref("redaction")},
        "blobs": {
            "type": "object",
            "propertyNames": _ref("digest"),
            "additionalProperties": _obj(
                ["size", "kind", "media_type"],
                {
                    "size": {"type": "integer", "minimum": 0},
                    "kind": _ref("slug"),
                    "media_type": {"type": "string", "pattern": "^[a-z0-9.+-]+/[A-Za-z0-9.+_-]+$"},
                },
            ),
        },
    },
    "$defs": {
        "digest": {"type": "string", "pattern": _DIGEST},
        "id": {"type": "string", "pattern": _ID},
        "slug": {"type": "string", "pattern": _SLUG},
        "relpath": {
            "type": "string",
            "minLength": 1,
            "maxLength": 4096,
            "pattern": "^(?!/)(?!.*\\\\)(?!(.*/)?\\.{1,2}(/|$))(?!.*//)(?!.*/$)[^\\x00-\\x1f\\x7f]+$",
        },
        "file": _obj(
            ["path", "blob"],
            {"path": _ref("relpath"), "blob": _ref("digest"), "executable": {"type": "boolean"}},
        ),
        "files": {"type": "array", "items": _ref("file")},
        "task_entry": _obj(
            ["id", "models", "datasets"],
            {
                "id": _ref("id"),
                "name": _NULLABLE_STR,
                "models": {
                    "type": "array",
                    "items": _obj(["name", "model"], {"name": {"type": "string"}, "model": _ref("id")}),
                },
                "datasets": {"type": "array", "items": _ref("id")},
            },
        ),
        "endpoint": {
            "type": "object",
            "required": ["engine_type", "serving_url"],
            "properties": {
                "engine_type": {"type": "string", "minLength": 1},
                "serving_url": {"type": "string", "minLength": 1},
                "model_id": _NULLABLE_ID,
                "version": {"type": ["string", "integer", "null"]},
                "preprocess_artifact": _NULLABLE_STR,
            },
        },
        "serving": _obj(
            ["id", "name", "project", "endpoints"],
            {
                "id": _ref("id"),
                "name": {"type": "string"},
                "project": _NULLABLE_STR,
                "record": _NULLABLE_DIGEST,
                "parameters": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                "endpoints": {"type": "object", "additionalProperties": _ref("endpoint")},
                "model_monitoring": {"type": "object", "additionalProperties": {"type": "object"}},
                "canary": {"type": "object", "additionalProperties": {"type": "object"}},
                "metric_logging": {"type": "object", "additionalProperties": {"type": "object"}},
                "preprocess": {
                    "type": "object",
                    "additionalProperties": _obj(
                        ["blob", "filename"],
                        {
                            "blob": _ref("digest"),
                            "filename": {"type": "string", "minLength": 1},
                            "hash": _NULLABLE_STR,
                            "type": _NULLABLE_STR,
                            "uri": _NULLABLE_STR,
                        },
                    ),
                },
            },
        ),
        "model": _obj(
            ["name", "framework", "ready", "files"],
            {
                "name": {"type": "string"},
                "project": _NULLABLE_STR,
                "framework": _NULLABLE_STR,
                "design": _NULLABLE_STR,
                "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
                "tags": _STR_LIST,
                "system_tags": _STR_LIST,
                "metadata": {"type": "object", "additionalProperties": {"type": "object"}},
                "ready": {"type": "boolean"},
                "task": _NULLABLE_ID,
                "parent": _NULLABLE_ID,
                "uri": _NULLABLE_STR,
                "comment": _NULLABLE_STR,
                "files": {"type": "array", "minItems": 1, "items": _ref("file")},
            },
        ),
        "artifact": _obj(
            ["key", "blob"],
            {
                "key": {"type": "string", "minLength": 1},
                "mode": _NULLABLE_STR,
                "type": _NULLABLE_STR,
                "filename": _NULLABLE_STR,
                "hash": _NULLABLE_STR,
                "uri": _NULLABLE_STR,
                "blob": _NULLABLE_DIGEST,
            },
        ),
        "task_record": _obj(
            ["name", "type", "record"],
            {
                "name": {"type": "string"},
                "project": _NULLABLE_STR,
                "type": {"type": "string"},
                "status": _NULLABLE_STR,
                "parent": _NULLABLE_ID,
                "record": _ref("digest"),
                "events": _NULLABLE_DIGEST,
                "event_blobs": {"type": "array", "items": _ref("digest")},
                "artifacts": {"type": "array", "items": _ref("artifact")},
            },
        ),
        "dataset_version": _obj(
            ["name", "project", "version", "parents", "state", "files"],
            {
                "name": {"type": "string"},
                "project": _NULLABLE_STR,
                "version": _NULLABLE_STR,
                "tags": _STR_LIST,
                "parents": {"type": "array", "uniqueItems": True, "items": _ref("id")},
                "record": _NULLABLE_DIGEST,
                "state": _ref("digest"),
                "files": _ref("files"),
                "chunks": {
                    "type": "array",
                    "items": _obj(
                        ["artifact", "blob"],
                        {"artifact": {"type": "string", "minLength": 1}, "blob": _ref("digest")},
                    ),
                },
            },
        ),
        "code": _obj(
            ["role", "repository"],
            {
                "role": _ref("slug"),
                "task": _NULLABLE_ID,
                "repository": _NULLABLE_STR,
                "branch": _NULLABLE_STR,
                "commit": _NULLABLE_STR,
                "tag": _NULLABLE_STR,
                "entry_point": _NULLABLE_STR,
                "working_dir": _NULLABLE_STR,
                "bundle": _NULLABLE_DIGEST,
                "diff": _NULLABLE_DIGEST,
                "requirements": _NULLABLE_DIGEST,
                "files": _ref("files"),
            },
        ),
        "image": _obj(
            ["name", "id", "layout", "members"],
            {
                "name": {"type": "string", "minLength": 1},
                "id": _ref("image_id"),
                "alt_ids": {"type": "array", "items": _ref("image_id")},
                "repo_tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "layout": _ref("slug"),
                "layers": {"type": "array", "items": _ref("image_id")},
                "members": {"type": "array", "minItems": 1, "items": _ref("image_member")},
                "size": {"type": "integer", "minimum": 0},
                "role": {"type": ["string", "null"], "pattern": _SLUG},
                "platform": _NULLABLE_STR,
            },
        ),
        "image_id": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "image_member": _obj(
            ["path", "digest", "size", "mode"],
            {
                "path": _ref("relpath"),
                "digest": _ref("digest"),
                "size": {"type": "integer", "minimum": 0},
                "mode": {"type": "integer", "minimum": 0, "maximum": 4095},
            },
        ),
        "wheel": _obj(
            ["name", "version", "filename", "blob"],
            {
                "name": {"type": "string", "minLength": 1},
                "version": {"type": "string", "minLength": 1},
                "filename": {"type": "string", "pattern": "^[^/\\\\\\x00-\\x1f]+$"},
                "blob": _ref("digest"),
                "purpose": {"type": ["string", "null"], "pattern": _SLUG},
            },
        ),
        "redaction": _obj(
            ["object_kind", "object_id", "path", "rule"],
            {
                "object_kind": {"type": "string", "minLength": 1},
                "object_id": {"type": "string"},
                "path": {"type": "string", "minLength": 1},
                "rule": {"type": "string", "minLength": 1},
            },
        ),
        "volatile": _obj(
            ["exported_on"],
            {
                "exported_on": {"type": "string", "minLength": 1},
                "developer": _NULLABLE_STR,
                "exporter": _obj([], {"user": _NULLABLE_STR, "host": _NULLABLE_STR}),
            },
        ),
        "signature": _obj(
            [
                "format",
                "algorithm",
                "public_key",
                "fingerprint",
                "content_digest",
                "checksums_sha256",
                "signature",
            ],
            {
                "format": {"const": "deploy2standalone-bundle-signature/1"},
                "algorithm": {"const": "ed25519"},
                "public_key": {"type": "string", "pattern": "^[A-Za-z0-9+/]{43}=$"},
                "fingerprint": {"type": "string", "pattern": "^SHA256:[A-Za-z0-9+/]{43}$"},
                "content_digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                "checksums_sha256": _ref("digest"),
                "signature": {"type": "string", "pattern": "^[A-Za-z0-9+/]{86}==$"},
            },
        ),
    },
}

# Every keyword the schema uses; the built-in validator implements exactly these (a unit test checks).
SCHEMA_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "$ref",
        "title",
        "description",
        "type",
        "required",
        "properties",
        "additionalProperties",
        "propertyNames",
        "items",
        "minItems",
        "uniqueItems",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "anyOf",
    }
)


_SUB_SCHEMAS: dict[tuple[str, int], tuple[dict[str, Any], dict[str, Any]]] = {}


def sub_schema(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A schema that validates against ``$defs/<name>`` (volatile file, signature file); memoized."""
    schema = schema if schema is not None else MANIFEST_SCHEMA
    hit = _SUB_SCHEMAS.get((name, id(schema)))
    if hit is None or hit[0] is not schema:
        sub = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{name}"}
        hit = _SUB_SCHEMAS[(name, id(schema))] = (schema, sub)
    return hit[1]


def relaxed_schema(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema without ``additionalProperties: false``: a newer minor version may add fields."""
    schema = copy.deepcopy(schema if schema is not None else MANIFEST_SCHEMA)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("additionalProperties") is False:
                del node["additionalProperties"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


# ---------------------------------------------------------------------------------------------------------
# Built-in validator: the JSON Schema 2020-12 semantics of SCHEMA_KEYWORDS, nothing more.

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
}


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema defines it (1 == 1.0, but True != 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _fmt(path: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else "(root)"


Check = Callable[[Any, tuple], list]


def _ok(_instance: Any, _path: tuple[Any, ...]) -> list[str]:
    return []


class _Compiler:
    """Turns a schema into nested closures once; validating is then a walk with no schema lookups."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.defs: dict[str, Check | None] = {}

    def ref(self, ref: str) -> Check:
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        name = ref[len("#/$defs/") :]
        if name not in self.defs:
            self.defs[name] = None  # compiling: a recursive reference binds late
            self.defs[name] = self.compile(self.root["$defs"][name])
        compiled = self.defs[name]
        if compiled is not None:
            return compiled
        defs = self.defs
        return lambda instance, path: defs[name](instance, path)  # noqa: PLW0108 - late binding

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _ok
        if schema is False:
            return lambda _i, path: [f"{_fmt(path)}: not allowed here"]
        if set(schema) == {"$ref"}:
            return self.ref(schema["$ref"])
        if set(schema) <= {"type", "minLength", "maxLength", "pattern"} and schema.get("type") == "string":
            return _plain_string(schema)
        ref = self.ref(schema["$ref"]) if "$ref" in schema else None
        type_names = schema.get("type")
        if isinstance(type_names, str):
            type_names = [type_names]
        types = tuple(_TYPES[t] for t in type_names) if type_names else None
        type_text = " or ".join(type_names or ())
        any_of = [self.compile(sub) for sub in schema.get("anyOf", ())]
        checks = [
            c
            for c in (
                _const_check(schema),
                _number_check(schema),
                _string_check(schema),
                self._array_check(schema),
                self._object_check(schema),
            )
            if c is not None
        ]

        def check(instance: Any, path: tuple[Any, ...]) -> list[str]:
            errors = ref(instance, path) if ref is not None else []
            if types is not None and not any(t(instance) for t in types):
                errors.append(f"{_fmt(path)}: {_short(instance)} is not of type {type_text}")
                return errors
            if any_of:
                branches = [sub(instance, path) for sub in any_of]
                if all(branches):  # report the branch that got furthest into the instance
                    errors += max(
                        branches, key=lambda errs: max(e.split(": ", 1)[0].count("/") for e in errs)
                    )
            for c in checks:
                errors += c(instance, path)
            return errors

        return check

    def _array_check(self, schema: dict[str, Any]) -> Check | None:
        min_items = schema.get("minItems")
        unique = schema.get("uniqueItems", False)
        items = self.compile(schema["items"]) if "items" in schema else None
        if min_items is None and not unique and items is None:
            return None

        def check(instance: Any, path: tuple[Any, ...]) -> list[str]:
            if not isinstance(instance, list):
                return []
            errors = []
            if min_items is not None and len(instance) < min_items:
                errors.append(f"{_fmt(path)}: expected at least {min_items} item(s)")
            if unique:
                for i in range(len(instance)):
                    if any(_json_equal(instance[i], instance[j]) for j in range(i)):
                        errors.append(f"{_fmt(path)}: item {i} is a duplicate")
                        break
            if items is not None:
                for i, item in enumerate(instance):
                    errors += items(item, (*path, i))
            return errors

        return check

    def _object_check(self, schema: dict[str, Any]) -> Check | None:
        required = tuple(schema.get("required", ()))
        names = self.compile(schema["propertyNames"]) if "propertyNames" in schema else None
        props = {k: self.compile(v) for k, v in schema.get("properties", {}).items()}
        extra_schema = schema.get("additionalProperties", True)
        extra = None if extra_schema is False else self.compile(extra_schema)
        if not required and names is None and not props and extra is _ok:
            return None

        def check(instance: Any, path: tuple[Any, ...]) -> list[str]:
            if not isinstance(instance, dict):
                return []
            errors = [
                f"{_fmt(path)}: required property {k!r} is missing" for k in required if k not in instance
            ]
            if names is not None:
                for key in instance:
                    errors += [f"{err} (property name)" for err in names(key, path)]
            for key, value in instance.items():
                sub = props.get(key, extra)
                if sub is None:
                    errors.append(f"{_fmt(path)}: unexpected property {key!r}")
                elif sub is not _ok:
                    errors += sub(value, (*path, key))
            return errors

        return check


def _plain_string(schema: dict[str, Any]) -> Check:
    """The common leaf ``{"type": "string", ...}`` in one closure."""
    strings = _string_check(schema) or _ok

    def check(instance: Any, path: tuple[Any, ...]) -> list[str]:
        if not isinstance(instance, str):
            return [f"{_fmt(path)}: {_short(instance)} is not of type string"]
        return strings(instance, path)

    return check


def _const_check(schema: dict[str, Any]) -> Check | None:
    if "const" not in schema:
        return None
    const = schema["const"]
    return lambda instance, path: (
        [] if _json_equal(instance, const) else [f"{_fmt(path)}: {_short(instance)} is not {const!r}"]
    )


def _number_check(schema: dict[str, Any]) -> Check | None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is None and high is None:
        return None

    def check(instance: Any, path: tuple[Any, ...]) -> list[str]:
        if not _TYPES["number"](instance):
            return []
        errors = []
        if low is not None and instance < low:
            errors.append(f"{_fmt(path)}: {instance!r} is less than the minimum {low}")
        if high is not None and instance > high:
            errors.append(f"{_fmt(path)}: {instance!r} is more than the maximum {high}")
        return errors

    return check


def _string_check(schema: dict[str, Any]) -> Check | None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    if low is None and high is None and pattern is None:
        return None

    def check(instance: Any, path: tuple[Any, ...]) -> list[str]:
        if not isinstance(instance, str):
            return []
        errors = []
        if low is not None and len(instance) < low:
            errors.append(f"{_fmt(path)}: {_short(instance)} is shorter than {low}")
        if high is not None and len(instance) > high:
            errors.append(f"{_fmt(path)}: {_short(instance)} is longer than {high}")
        if pattern is not None and not pattern.search(instance):
            errors.append(f"{_fmt(path)}: {_short(instance)} does not match {pattern.pattern!r}")
        return errors

    return check


_COMPILED: dict[int, tuple[dict[str, Any], Check]] = {}


def _builtin(schema: dict[str, Any]) -> Check:
    """The compiled validator of a schema (cached per schema object)."""
    hit = _COMPILED.get(id(schema))
    if hit is None or hit[0] is not schema:
        if len(_COMPILED) > 32:  # callers pass a few long-lived schemas; never grow without bound
            _COMPILED.clear()
        hit = (schema, _Compiler(schema).compile(schema))
        _COMPILED[id(schema)] = hit
    return hit[1]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _deepest(error: Any) -> Any:
    """For anyOf failures, the sub-error deepest in the instance (the real problem, not "not null")."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


def _jsonschema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        err = _deepest(err)  # noqa: PLW2901 - replaced by its most specific cause
        out.append(f"{_fmt(tuple(err.absolute_path))}: {_short_msg(err.message)}")
    return out


def _short_msg(text: str) -> str:
    return text if len(text) <= 300 else text[:297] + "..."


def schema_errors(instance: Any, schema: dict[str, Any] | None = None, *, engine: str = "auto") -> list[str]:
    """Validation errors of ``instance`` against ``schema`` (default: the manifest), as readable strings.

    ``engine``: ``jsonschema``, ``builtin`` or ``auto`` (jsonschema when importable). Never raises on
    bad input; an empty list means valid.
    """
    schema = schema if schema is not None else MANIFEST_SCHEMA
    if engine == "auto":
        engine = "jsonschema" if HAS_JSONSCHEMA else "builtin"
    if engine == "jsonschema":
        if not HAS_JSONSCHEMA:
            raise ValueError("the jsonschema package is not installed")
        try:
            return _jsonschema_errors(instance, schema)
        except RecursionError:
            return ["(root): the document is nested too deeply"]
    if engine != "builtin":
        raise ValueError(f"unknown schema engine {engine!r}")
    try:
        return _builtin(schema)(instance, ())
    except RecursionError:
        return ["(root): the document is nested too deeply"]


if __name__ == "__main__":  # pragma: no cover - regenerates schemas/manifest-v1.schema.json
    import json
    import sys

    sys.stdout.write(json.dumps(MANIFEST_SCHEMA, indent=2, sort_keys=True) + "\n")
