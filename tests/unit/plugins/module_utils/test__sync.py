# SPDX-License-Identifier: GPL-3.0-or-later
"""_sync, _sync_export, _sync_import, _sync_job: the pure parts of sync-back, on documents shaped as the
ClearML server returns them (fixtures are data; everything that talks to a server is in
tests/integration/sync)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _sync, _sync_job
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._deployment import Deployment
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._sync_export import remap_deployment
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._sync_import import (
    earliest,
    is_reference,
)

DEV_TASK, DEV_DS, DEV_MODEL = "d" * 32, "e" * 32, "f" * 32
IMPORTED_TASK, CLONE, SITE_DS, SITE_TASK, IMPORTED_DS = "1" * 32, "2" * 32, "3" * 32, "4" * 32, "5" * 32
P_DEMO, P_DS, P_OTHER = "a1" * 16, "a2" * 16, "a3" * 16


def task(tid: str, created: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "name": kw.pop("name", "t"),
        "type": kw.pop("type", "training"),
        "status": kw.pop("status", "completed"),
        "system_tags": kw.pop("system_tags", []),
        "tags": kw.pop("tags", []),
        "project": kw.pop("project", P_DEMO),
        "created": created,
        **kw,
    }


def index() -> _sync.SourceIndex:
    origin = [f"d2s-origin:{DEV_TASK}", "d2s-complete", "d2s-bundle:abc"]
    tasks = [
        task(IMPORTED_TASK, "2026-01-01T00:00:00+00:00", system_tags=origin),
        # Task.clone copies the system tags: a site-made task with the same origin tag, made later
        task(CLONE, "2026-02-01T00:00:00+00:00", system_tags=[*origin, "development"], tags=["retrain"]),
        task(
            IMPORTED_DS,
            "2026-01-01T00:00:01+00:00",
            type="data_processing",
            system_tags=["dataset", f"d2s-origin:{DEV_DS}", "d2s-complete"],
            project=P_DS,
        ),
        task(
            SITE_DS,
            "2026-02-02T00:00:00+00:00",
            type="data_processing",
            system_tags=["dataset"],
            project=P_DS,
        ),
        task("6" * 32, "2026-02-03T00:00:00+00:00", status="in_progress"),
        task("7" * 32, "2026-02-03T00:00:00+00:00", system_tags=["archived"]),
        task("8" * 32, "2026-02-03T00:00:00+00:00", type="service", system_tags=["serving-control-plane"]),
        task("9" * 32, "2026-02-03T00:00:00+00:00", type="inference"),
        task(SITE_TASK, "2026-02-04T00:00:00+00:00", project=P_OTHER, tags=["keep"]),
        task(
            "0" * 32,
            "2026-02-05T00:00:00+00:00",
            type="data_processing",
            system_tags=["dataset"],
            status="failed",
        ),
    ]
    models = [
        {"id": "b" * 32, "system_tags": [f"d2s-origin:{DEV_MODEL}", "d2s-complete"], "created": "2026-01-01"},
        {"id": "c" * 32, "system_tags": [], "created": "2026-02-01", "task": CLONE},
    ]
    projects = {P_DEMO: "d2s-demo", P_DS: "d2s-demo/.datasets/iris-like", P_OTHER: "experiments/site"}
    return _sync.SourceIndex(tasks, models, projects)


def test_objects_from_dev_are_the_first_created_per_origin() -> None:
    idx = index()
    assert idx.from_dev == {IMPORTED_TASK: DEV_TASK, IMPORTED_DS: DEV_DS, "b" * 32: DEV_MODEL}
    assert idx.copies == [CLONE]
    own = idx.own_ids()
    assert CLONE in own["tasks"] and IMPORTED_TASK not in own["tasks"] and IMPORTED_DS not in own["tasks"]
    assert own["models"] == ["c" * 32]


@pytest.mark.parametrize(
    ("params", "datasets", "tasks"),
    [
        ({}, [SITE_DS], [CLONE, SITE_TASK]),
        ({"include": ["datasets"]}, [SITE_DS], []),
        ({"include": ["tasks"]}, [], [CLONE, SITE_TASK]),
        # a dataset's project is the user project, not P/.datasets/N
        ({"projects": ["d2s-*"]}, [SITE_DS], [CLONE]),
        ({"projects": ["experiments/*"]}, [], [SITE_TASK]),
        ({"tags": ["keep", "retrain"]}, [], [CLONE, SITE_TASK]),
        ({"task_types": ["training", "inference"]}, [SITE_DS], [CLONE, "9" * 32, SITE_TASK]),
    ],
)
def test_selection(params: dict[str, Any], datasets: list[str], tasks: list[str]) -> None:
    assert index().select(params, exclude=set()) == {"datasets": datasets, "tasks": tasks}


def test_selection_leaves_out_what_dev_has() -> None:
    assert index().select({}, exclude={CLONE, SITE_DS}) == {"datasets": [], "tasks": [SITE_TASK]}


def test_earliest_breaks_ties_by_id() -> None:
    docs = [{"id": "b", "created": "x"}, {"id": "a", "created": "x"}, {"id": "c", "created": "w"}]
    assert earliest(docs)["id"] == "c"
    assert earliest([]) is None


def test_remap_deployment_writes_dev_ids() -> None:
    dep = Deployment()
    dep.datasets = {IMPORTED_DS: {"id": IMPORTED_DS, "name": "iris-like"}, SITE_DS: {"id": SITE_DS}}
    dep.dataset_states = {
        IMPORTED_DS: {"id": IMPORTED_DS, "dependency_graph": {IMPORTED_DS: []}},
        SITE_DS: {
            "id": SITE_DS,
            "dataset_file_entries": [{"relative_path": "a", "parent_dataset_id": IMPORTED_DS}],
            "dependency_graph": {SITE_DS: [IMPORTED_DS], IMPORTED_DS: []},
        },
    }
    dep.tasks = {
        CLONE: {"id": CLONE, "parent": IMPORTED_TASK, "runtime": {"datasets": [SITE_DS, IMPORTED_DS]}}
    }
    known = {IMPORTED_DS: DEV_DS, IMPORTED_TASK: DEV_TASK}
    refs = remap_deployment(dep, known)
    assert refs == {DEV_DS}
    assert list(dep.datasets) == [DEV_DS, SITE_DS]  # parents first, re-keyed
    assert dep.dataset_states[SITE_DS]["dependency_graph"] == {SITE_DS: [DEV_DS], DEV_DS: []}
    assert dep.dataset_states[SITE_DS]["dataset_file_entries"][0]["parent_dataset_id"] == DEV_DS
    assert dep.tasks[CLONE]["parent"] == DEV_TASK
    assert dep.tasks[CLONE]["runtime"]["datasets"] == [SITE_DS, DEV_DS]


def test_reference_entries() -> None:
    assert is_reference({"record": None, "files": [], "chunks": []})
    assert not is_reference(
        {"record": "0" * 64, "files": [], "chunks": []}
    )  # a version that only removed files
    assert not is_reference({"record": None, "files": [], "chunks": [{"artifact": "data", "blob": "0" * 64}]})


def test_describe_bundle_leaves_references_out() -> None:
    manifest = {
        "dataset_versions": {
            DEV_DS: {
                "name": "n",
                "project": "p",
                "version": "1.2.0",
                "record": None,
                "files": [],
                "chunks": [],
            },
            SITE_DS: {
                "name": "n",
                "project": "p",
                "version": "1.2.1",
                "record": "0" * 64,
                "files": [],
                "chunks": [],
            },
        },
        "task_records": {CLONE: {"name": "t", "project": "p"}},
        "models": {"c" * 32: {"name": "m", "task": CLONE}},
    }
    got = _sync.describe_bundle(manifest)
    assert (
        list(got["datasets"]) == [SITE_DS]
        and list(got["tasks"]) == [CLONE]
        and list(got["models"]) == ["c" * 32]
    )


def _validate(params: dict[str, Any]) -> list[str]:
    return (
        ArgumentSpecValidator(
            _sync.sync_argument_spec(), required_if=_sync.SYNC_REQUIRED_IF, required_by=_sync.SYNC_REQUIRED_BY
        )
        .validate(params)
        .error_messages
    )


SOURCE = {"source_api_host": "http://s", "source_access_key": "k", "source_secret_key": "s"}
DEST = {"dest_api_host": "http://d", "dest_access_key": "k", "dest_secret_key": "s"}


@pytest.mark.parametrize(
    ("params", "missing"),
    [
        ({**SOURCE, **DEST}, None),
        ({**SOURCE}, "dest_api_host"),
        ({**DEST, "mode": "import"}, "bundle"),
        ({**DEST, "mode": "import", "bundle": "/b"}, None),
        ({**SOURCE, "mode": "export", "bundle": "/b"}, None),
        ({**DEST, "mode": "export", "bundle": "/b"}, "source_api_host"),
        ({**SOURCE, "dest_api_host": "http://d"}, "dest_access_key"),
    ],
)
def test_options_required_per_mode(params: dict[str, Any], missing: str | None) -> None:
    errors = _validate({"site_name": "site_a", **params})
    if missing is None:
        assert errors == []
    else:
        assert any(missing in e for e in errors), errors


def test_connection_options_are_prefixed_secret_and_without_env() -> None:
    spec = _sync.sync_argument_spec()
    for prefix in ("source_", "dest_"):
        for name in (
            "api_host",
            "access_key",
            "secret_key",
            "web_host",
            "files_host",
            "validate_certs",
            "ca_path",
        ):
            assert "fallback" not in spec[prefix + name]
            assert not spec[prefix + name].get("required")
        assert spec[prefix + "access_key"]["no_log"] is True
        assert spec[prefix + "secret_key"]["no_log"] is True


def test_job_refuses_a_bad_job_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _sync_job.main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read the job file" in json.loads(capsys.readouterr().out)["msg"]
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"site_name": "site_a", **SOURCE}))  # online without dev
    assert _sync_job.main([str(job)]) == 2
    line = json.loads(capsys.readouterr().out)
    assert line["failed"] is True and "dest_api_host" in line["msg"]


def test_job_reports_a_failed_sync(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.json"
    # nothing listens on port 9 of the loopback: the sync fails with a message naming the server
    dead = {
        "source_api_host": "http://127.0.0.1:9",
        "source_access_key": "k",
        "source_secret_key": "secret-value",
    }
    job.write_text(
        json.dumps({"site_name": "site_a", "mode": "export", "bundle": str(tmp_path / "b"), **dead})
    )
    assert _sync_job.main([str(job)]) == 1
    out = capsys.readouterr().out
    line = json.loads(out)
    assert line["failed"] is True and "127.0.0.1:9" in line["msg"]
    assert "secret-value" not in out


def test_module_documents_its_argument_spec() -> None:
    """What validate-modules checks: every option documented with the spec's type, default and choices."""
    import yaml

    from ansible_collections.deploy2standalone.clearml.plugins.doc_fragments.clearml import ModuleDocFragment
    from ansible_collections.deploy2standalone.clearml.plugins.modules import dataset_sync

    # The module's own options plus those of its source_dest fragment (the storage credentials).
    doc = {
        **yaml.safe_load(dataset_sync.DOCUMENTATION)["options"],
        **yaml.safe_load(ModuleDocFragment.SOURCE_DEST)["options"],
    }
    spec = _sync.sync_argument_spec()
    assert set(doc) == set(spec)
    for name, opts in spec.items():
        assert doc[name]["type"] == opts["type"], name
        assert doc[name].get("default") == opts.get("default"), name
        assert doc[name].get("choices") == opts.get("choices"), name
        assert doc[name].get("elements") == opts.get("elements"), name
        assert bool(doc[name].get("required")) == bool(opts.get("required")), name
    assert "source_dest" in " ".join(
        yaml.safe_load(dataset_sync.DOCUMENTATION)["extends_documentation_fragment"]
    )
    yaml.safe_load(dataset_sync.EXAMPLES)
    returned = yaml.safe_load(dataset_sync.RETURN)
    assert all({"description", "returned", "type", "sample"} <= set(v) for v in returned.values())
