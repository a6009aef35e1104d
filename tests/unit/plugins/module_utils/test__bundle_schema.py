# SPDX-License-Identifier: GPL-3.0-or-later
"""Manifest v1: the embedded schema, both validators (jsonschema and built-in), versions, the parser fuzzed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle_schema as schema_mod

REPO = Path(__file__).resolve().parents[4]
FIXTURES = REPO / "tests" / "unit" / "fixtures" / "bundle"
ENGINES = ["jsonschema", "builtin"]


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


FULL = _fixture("manifest-full.json")
MINIMAL = _fixture("manifest-minimal.json")
INVALID = _fixture("manifest-invalid.json")


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def apply_ops(doc: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if op["op"] == "set":
            node[key] = op["value"]
        else:
            del node[key]
    return doc


def test_json_schema_file_is_the_generated_copy() -> None:
    on_disk = json.loads((REPO / "schemas" / "manifest-v1.schema.json").read_text(encoding="utf-8"))
    assert on_disk == schema_mod.MANIFEST_SCHEMA, (
        "schemas/manifest-v1.schema.json is stale: regenerate it with "
        "`python plugins/module_utils/_bundle_schema.py > schemas/manifest-v1.schema.json`"
    )


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="the meta-schema check needs jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema_mod.MANIFEST_SCHEMA)


def _keywords(node: Any, out: set[str], *, in_properties: bool = False) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if not in_properties:
                out.add(key)
            # names under properties/$defs are not keywords; their values are schemas
            _keywords(value, out, in_properties=key in ("properties", "$defs") and not in_properties)
    elif isinstance(node, list):
        for value in node:
            _keywords(value, out)
    return out


def test_builtin_validator_covers_every_keyword_the_schema_uses() -> None:
    used = _keywords(schema_mod.MANIFEST_SCHEMA, set())
    # "enum"-free etc.: a keyword the built-in validator does not implement would be silently ignored
    assert used <= schema_mod.SCHEMA_KEYWORDS, sorted(used - schema_mod.SCHEMA_KEYWORDS)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("doc", [FULL, MINIMAL], ids=["full", "minimal"])
def test_valid_fixtures_accepted(engine: str, doc: dict[str, Any]) -> None:
    assert schema_mod.schema_errors(doc, engine=engine) == []
    manifest = bundle.validate_manifest(copy.deepcopy(doc), engine=engine)
    assert manifest.warnings == []
    assert manifest.version == "1.0"


@pytest.mark.parametrize("case", INVALID, ids=[c["id"] for c in INVALID])
@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_fixtures_rejected_with_a_message_naming_the_field(engine: str, case: dict[str, Any]) -> None:
    doc = apply_ops(FULL, case["ops"])
    errors = schema_mod.schema_errors(doc, engine=engine)
    assert bool(errors) is case["schema"], errors
    with pytest.raises(bundle.BundleError) as info:
        bundle.validate_manifest(doc, engine=engine)
    assert case["error"] in str(info.value) + " ".join(info.value.problems), (
        str(info.value),
        info.value.problems,
    )


def test_validators_agree_on_the_error_location() -> None:
    doc = apply_ops(
        FULL, [{"op": "set", "path": "/models/" + next(iter(FULL["models"])) + "/ready", "value": 1}]
    )
    by_engine = {e: schema_mod.schema_errors(doc, engine=e) for e in ENGINES}
    locations = {e: {err.split(":")[0] for err in errs} for e, errs in by_engine.items()}
    assert locations["jsonschema"] == locations["builtin"], by_engine


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        ["", "a" * 64, "sha256:" + "b" * 64, "1.0", "1.9", "2.0", "../x", "/abs", "model.onnx", "triton"]
    ),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


_FULL_PATHS = _paths(FULL)[1:]
RELAXED = schema_mod.relaxed_schema()


@st.composite
def mutated_manifests(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(FULL)
    doc["format"]["version"] = draw(st.sampled_from(["1.0", "1.9"]))  # 1.9: the relaxed schema
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_FULL_PATHS))
        node = doc
        try:
            for part in path[:-1]:
                node = node[part]
            if draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(_json)
        except (KeyError, IndexError, TypeError):
            continue
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_manifests())
def test_validators_agree_on_mutated_manifests(doc: Any) -> None:
    pytest.importorskip("jsonschema", reason="agreement needs both engines")
    fmt = doc.get("format")
    schema = RELAXED if isinstance(fmt, dict) and fmt.get("version") == "1.9" else schema_mod.MANIFEST_SCHEMA
    a = schema_mod.schema_errors(doc, schema, engine="jsonschema")
    b = schema_mod.schema_errors(doc, schema, engine="builtin")
    assert bool(a) == bool(b), (a, b)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode())))
def test_load_manifest_fuzz_raises_only_bundle_error(data: bytes) -> None:
    try:
        manifest = bundle.load_manifest(data)
    except bundle.BundleError as exc:
        assert exc.msg
    else:
        assert manifest.content_digest.startswith("sha256:")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_manifests(), st.sampled_from(ENGINES))
def test_load_manifest_fuzz_mutations_raise_only_bundle_error(doc: Any, engine: str) -> None:
    data = json.dumps(doc).encode()
    try:
        bundle.load_manifest(data, engine=engine)
    except bundle.BundleError as exc:
        assert exc.msg


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "must hold a JSON object"),
        (b'{"format": {"name": "x", "version": "1.0"}}', "not a deploy2standalone-bundle manifest"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        (b'{"format": {"name": "deploy2standalone-bundle", "version": "1"}}', "MAJOR.MINOR"),
        (b'{"format": {"name": "deploy2standalone-bundle", "version": "1.0.0"}}', "MAJOR.MINOR"),
    ],
    ids=[
        "empty",
        "not-utf8",
        "array",
        "other-format",
        "duplicate-key",
        "nan",
        "deep",
        "version-1",
        "version-semver",
    ],
)
def test_load_manifest_refuses_garbage(data: bytes, message: str) -> None:
    with pytest.raises(bundle.BundleError, match=message):
        bundle.load_manifest(data)


@pytest.mark.parametrize("version", ["2.0", "0.9", "10.1"])
def test_unknown_major_version_is_refused_naming_it(version: str) -> None:
    doc = apply_ops(FULL, [{"op": "set", "path": "/format/version", "value": version}])
    with pytest.raises(bundle.BundleError, match=rf"bundle format version {version} is not supported"):
        bundle.load_manifest(json.dumps(doc).encode())


@pytest.mark.parametrize("engine", ENGINES)
def test_newer_minor_version_is_accepted_with_a_warning_and_new_fields(engine: str) -> None:
    doc = apply_ops(
        FULL,
        [
            {"op": "set", "path": "/format/version", "value": "1.7"},
            {"op": "set", "path": "/sboms", "value": []},
            {"op": "set", "path": "/source/region", "value": "eu"},
        ],
    )
    manifest = bundle.validate_manifest(doc, engine=engine)
    assert any("1.7 is newer than 1.0" in w for w in manifest.warnings)
    # the same new field at 1.0 is an error: the current version is strict
    strict = apply_ops(FULL, [{"op": "set", "path": "/sboms", "value": []}])
    with pytest.raises(bundle.BundleError, match="sboms"):
        bundle.validate_manifest(strict, engine=engine)
    # a newer minor still has to satisfy the known structure
    broken = apply_ops(doc, [{"op": "del", "path": "/blobs"}])
    with pytest.raises(bundle.BundleError, match="blobs"):
        bundle.validate_manifest(broken, engine=engine)


def test_content_digest_ignores_key_order_and_whitespace() -> None:
    a = bundle.load_manifest(json.dumps(FULL, indent=4).encode())
    b = bundle.load_manifest(json.dumps(dict(reversed(list(FULL.items())))).encode())
    assert a.content_digest == b.content_digest
    changed = apply_ops(FULL, [{"op": "set", "path": "/tool/version", "value": "0.2.0"}])
    assert bundle.load_manifest(json.dumps(changed).encode()).content_digest != a.content_digest


@pytest.mark.parametrize(
    ("doc", "ok"),
    [
        ({"exported_on": "2026-01-01T00:00:00+00:00"}, True),
        ({"exported_on": "x", "developer": None, "exporter": {"user": "kai", "host": "dev1"}}, True),
        ({"developer": "kai"}, False),
        ({"exported_on": "x", "exporter": {"password": "x"}}, False),
    ],
)
def test_volatile_schema(doc: dict[str, Any], ok: bool) -> None:
    data = json.dumps(doc).encode()
    if ok:
        assert bundle.load_volatile(data) == doc
    else:
        with pytest.raises(bundle.BundleError, match=r"manifest\.volatile\.json is malformed"):
            bundle.load_volatile(data)


def test_new_manifest_is_valid_and_unreferenced_blobs_warn() -> None:
    doc = bundle.new_manifest(tool_version="0.1.0", api_host="http://127.0.0.1:8008")
    assert bundle.validate_manifest(copy.deepcopy(doc)).warnings == []
    doc["blobs"]["0" * 64] = {"size": 1, "kind": "other", "media_type": "application/octet-stream"}
    assert any("not referenced" in w for w in bundle.validate_manifest(doc).warnings)


def _big_manifest(n: int) -> dict[str, Any]:
    doc = copy.deepcopy(FULL)
    ds = next(iter(doc["dataset_versions"]))
    files = []
    for i in range(n):
        digest = f"{i:064x}"
        files.append({"path": f"train/{i:06d}.png", "blob": digest})
        doc["blobs"][digest] = {"size": 100 + i, "kind": "dataset", "media_type": "image/png"}
    doc["dataset_versions"][ds]["files"] = files
    return doc


def test_big_manifests_validate_fast_and_both_engines_agree() -> None:
    doc = _big_manifest(3000)
    assert len(doc["blobs"]) > bundle.JSONSCHEMA_MAX_BLOBS
    manifest = bundle.validate_manifest(doc)  # auto: the built-in validator past the threshold
    assert manifest.total_bytes() > 3000 * 100
    ds = next(iter(doc["dataset_versions"]))
    doc["dataset_versions"][ds]["files"][2718]["path"] = "../escape"
    for engine in ENGINES:
        errors = schema_mod.schema_errors(doc, engine=engine)
        assert errors and all("/files/2718/path" in e for e in errors), (engine, errors)
    with pytest.raises(bundle.BundleError, match="2718"):
        bundle.validate_manifest(doc)
