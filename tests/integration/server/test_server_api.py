# SPDX-License-Identifier: GPL-3.0-or-later
"""The REST API on the wire: envelope, login, error codes, query semantics, edit rules, status changes,
events. Every successful reply is validated against the JSON schema of the SDK's own response class
(clearml 2.1.12, services v2.23), the schema its typed parsing is generated from."""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
from typing import Any

import jsonschema
import pytest
import referencing.exceptions
import requests
from clearml.backend_api.session.datamodel import _CustomValidator

from d2s_tools.server.api import all_endpoints
from d2s_tools.server.testing import ServerHandle


class Api:
    def __init__(self, server: ServerHandle) -> None:
        self.server = server
        self.session = requests.Session()
        self.token = server.token()

    def raw(
        self, endpoint: str, body: Any = None, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not False:
            headers.setdefault("Authorization", f"Bearer {token or self.token}")
        # the SDK's default: GET with a JSON body
        return self.session.get(
            f"{self.server.api_url}/v2.23/{endpoint}", json=body, headers=headers, timeout=30, **kwargs
        )

    def ok(self, endpoint: str, **body: Any) -> dict[str, Any]:
        reply = self.raw(endpoint, body)
        envelope = reply.json()
        assert reply.status_code == 200, envelope["meta"]
        assert envelope["meta"]["result_code"] == 200
        validate_reply(endpoint, envelope["data"])
        return envelope["data"]

    def error(self, endpoint: str, code: int, subcode: int | None = None, **body: Any) -> dict[str, Any]:
        reply = self.raw(endpoint, body)
        meta = reply.json()["meta"]
        assert reply.status_code == code == meta["result_code"], meta
        if subcode is not None:
            assert meta["result_subcode"] == subcode, meta
        return meta


def validate_reply(endpoint: str, data: Any) -> None:
    """Check ``data`` against the SDK's response schema for ``endpoint`` (when the SDK has one)."""
    service, _, action = endpoint.partition(".")
    try:
        module = importlib.import_module(f"clearml.backend_api.services.v2_23.{service}")
    except ImportError:
        return
    cls = getattr(module, "".join(p.capitalize() for p in action.split("_")) + "Response", None)
    if cls is None:
        return
    # a dangling $ref in the SDK's own schema (events.DebugImagesResponse) leaves the typed parsing only
    with contextlib.suppress(referencing.exceptions.Unresolvable):
        jsonschema.validate(data, cls._schema, cls=_CustomValidator)
    cls(**data)  # and the SDK's typed parsing accepts it


@pytest.fixture(scope="module")
def api(clearml_server: ServerHandle) -> Api:
    return Api(clearml_server)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- transport, envelope, login ---------------------------------------------------------------------
def test_login_token_claims(clearml_server: ServerHandle) -> None:
    basic = (clearml_server.access_key, clearml_server.secret_key)
    reply = requests.get(f"{clearml_server.api_url}/auth.login", auth=basic, timeout=30)
    assert reply.status_code == 200
    claims = _claims(reply.json()["data"]["token"])
    assert claims["api_version"] == "2.31"
    assert claims["feature_set"] == "basic"
    assert claims["server_version"]
    assert claims["exp"] > claims["iat"]
    short = requests.get(
        f"{clearml_server.api_url}/auth.login", auth=basic, params={"expiration_sec": 120}, timeout=30
    )
    short_claims = _claims(short.json()["data"]["token"])
    assert short_claims["exp"] - short_claims["iat"] == 120


def test_login_refresh_with_bearer(api: Api) -> None:
    reply = api.raw("auth.login")
    assert reply.status_code == 200
    fresh = reply.json()["data"]["token"]
    assert api.raw("tasks.get_all", {}, token=fresh).status_code == 200


@pytest.mark.parametrize(
    ("headers", "subcode"),
    [
        ({}, 20),
        ({"Authorization": "Bearer not-a-token"}, 22),
        ({"Authorization": "Basic " + base64.b64encode(b"d2s-access-key:wrong").decode()}, 22),
    ],
)
def test_bad_credentials_are_401(api: Api, headers: dict[str, str], subcode: int) -> None:
    for endpoint in ("tasks.get_all", "auth.login"):
        reply = api.raw(endpoint, {}, token=False, headers=dict(headers))
        assert reply.status_code == 401
        assert reply.json()["meta"]["result_subcode"] == subcode


def test_token_signed_by_another_instance_is_refused(api: Api, clearml_server_factory: Any) -> None:
    other = clearml_server_factory("other-signer")
    reply = api.raw("tasks.get_all", {}, token=other.token())
    assert reply.status_code == 401


def test_envelope(api: Api) -> None:
    reply = api.raw("projects.get_all", {"only_fields": ["id"]})
    envelope = reply.json()
    assert set(envelope) == {"meta", "data"}
    meta = envelope["meta"]
    assert meta["result_code"] == 200
    assert meta["result_msg"] == "OK"
    assert meta["endpoint"]["name"] == "projects.get_all"
    assert len(meta["id"]) == 32


@pytest.mark.parametrize("prefix", ["/v2.23", "/v2.9", "/v2.31", ""])
def test_any_api_version_prefix(api: Api, prefix: str) -> None:
    reply = requests.post(
        f"{api.server.api_url}{prefix}/projects.get_all",
        json={},
        headers={"Authorization": f"Bearer {api.token}"},
        timeout=30,
    )
    assert reply.status_code == 200


def test_query_string_merges_into_body(api: Api) -> None:
    pid = api.ok("projects.create", name="query args project")["id"]
    reply = requests.get(
        f"{api.server.api_url}/v2.23/projects.get_by_id",
        params={"project": pid},
        headers={"Authorization": f"Bearer {api.token}"},
        timeout=30,
    )
    assert reply.json()["data"]["project"]["id"] == pid


def test_unknown_endpoint_and_bad_bodies_are_400(api: Api) -> None:
    meta = api.error("tasks.no_such_action", 400)
    assert "tasks.no_such_action" in meta["result_msg"]
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    for body in (b"{not json", b"[1, 2", "\u00ff".encode("latin-1")):
        reply = requests.post(
            f"{api.server.api_url}/v2.23/tasks.get_all", data=body, headers=headers, timeout=30
        )
        assert reply.status_code == 400
        assert reply.json()["meta"]["result_code"] == 400


JUNK_BODIES: list[Any] = [
    {},
    {"task": 7, "model": [], "project": {"a": 1}, "ids": "x", "tasks": "y", "queue": 3},
    {"task": "0" * 32, "model": "0" * 32, "project": "0" * 32, "ids": ["0" * 32], "tasks": ["0" * 32]},
    {
        "name": None,
        "only_fields": 5,
        "order_by": 7,
        "page": "x",
        "page_size": -1,
        "tags": "t",
        "metrics": "m",
    },
    {"requirements": [], "artifacts": {"a": 1}, "hyperparams": "h", "configuration": 1, "models": "m"},
]


def test_no_endpoint_answers_5xx(api: Api) -> None:
    """The SDK retries a 5xx forever: every endpoint answers junk with a 4xx envelope instead."""
    statuses: dict[str, set[int]] = {}
    for endpoint in all_endpoints():
        if endpoint in ("auth.login", "auth.logout"):
            continue
        for body in JUNK_BODIES:
            reply = api.raw(endpoint, body)
            assert reply.status_code < 500, (endpoint, body, reply.text)
            meta = reply.json()["meta"]
            assert meta["result_code"] == reply.status_code
            statuses.setdefault(endpoint, set()).add(reply.status_code)
    assert statuses["tasks.get_by_id"] == {400}


# --- projects ---------------------------------------------------------------------------------------
def test_projects_create_parents_and_duplicates(api: Api) -> None:
    pid = api.ok("projects.create", name=" Proj A / data / sets ", description="d")["id"]
    project = api.ok("projects.get_by_id", project=pid)["project"]
    assert project["name"] == "Proj A/data/sets"
    assert project["basename"] == "sets"
    parent = api.ok("projects.get_all", name=r"^Proj\ A/data$")["projects"]
    assert [p["name"] for p in parent] == ["Proj A/data"]
    assert project["parent"] == parent[0]["id"]
    api.error("projects.create", 400, 801, name="Proj A/data/sets")
    api.error("projects.get_by_id", 400, 401, project="0" * 32)
    # the name filter is a case-sensitive regex search
    names = {p["name"] for p in api.ok("projects.get_all", name="^Proj A")["projects"]}
    assert {"Proj A", "Proj A/data", "Proj A/data/sets"} <= names
    assert api.ok("projects.get_all", name="^proj a$")["projects"] == []


def test_hidden_projects(api: Api) -> None:
    pid = api.ok("projects.create", name="Vis/.datasets/hidden one", system_tags=["hidden", "dataset"])["id"]
    plain = [p["id"] for p in api.ok("projects.get_all", name="^Vis/")["projects"]]
    assert pid not in plain
    hidden = [p["id"] for p in api.ok("projects.get_all", name="^Vis/", search_hidden=True)["projects"]]
    assert pid in hidden
    assert [p["id"] for p in api.ok("projects.get_all", id=[pid])["projects"]] == [pid]


def test_project_parent_and_shallow_search(api: Api) -> None:
    leaf = api.ok("projects.create", name="Tree/a/b")["id"]
    top = api.ok("projects.get_all", name="^Tree$")["projects"][0]["id"]
    middle = api.ok("projects.get_all", name="^Tree/a$")["projects"][0]["id"]
    below = {p["id"] for p in api.ok("projects.get_all", parent=[top])["projects"]}
    assert below == {middle, leaf}  # every descendant
    direct = [p["id"] for p in api.ok("projects.get_all", parent=[top], shallow_search=True)["projects"]]
    assert direct == [middle]
    tops = {p["id"] for p in api.ok("projects.get_all", shallow_search=True)["projects"]}
    assert top in tops and middle not in tops


def test_project_update_and_rename(api: Api) -> None:
    pid = api.ok("projects.create", name="Ren/old/child")["id"]
    old = api.ok("projects.get_all", name="^Ren/old$")["projects"][0]["id"]
    result = api.ok("projects.update", project=old, name="Ren/new", system_tags=["x"])
    assert result["updated"] == 1
    assert api.ok("projects.get_by_id", project=pid)["project"]["name"] == "Ren/new/child"
    assert api.ok("projects.get_by_id", project=old)["project"]["system_tags"] == ["x"]


# --- tasks ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def project(api: Api) -> str:
    return api.ok("projects.create", name="API tests")["id"]


def _task(api: Api, project: str, name: str = "api task", **fields: Any) -> str:
    return api.ok("tasks.create", name=name, type=fields.pop("type", "training"), project=project, **fields)[
        "id"
    ]


def test_task_create_validation(api: Api, project: str) -> None:
    api.error("tasks.create", 400, 12, name="ab", type="training", project=project)
    api.error("tasks.create", 400, 12, name="abc", type="no-such-type", project=project)
    api.error("tasks.create", 400, 401, name="abc", type="training", project="0" * 32)
    api.error("tasks.get_by_id", 400, 101, task="0" * 32)


def test_task_document_defaults(api: Api, project: str) -> None:
    tid = _task(api, project, output_dest="http://files.example/x")
    task = api.ok("tasks.get_by_id", task=tid)["task"]
    assert task["status"] == "created"
    assert task["output"] == {"destination": "http://files.example/x"}
    assert task["execution"]["artifacts"] == []
    assert task["models"] == {"input": [], "output": []}
    for key in ("script", "hyperparams", "configuration", "runtime", "container", "last_metrics"):
        assert task[key] == {}, key
    assert task["last_iteration"] == 0
    assert task["created"].endswith("+00:00")
    assert len(task["id"]) == 32


def test_task_edit_rules(api: Api, project: str) -> None:
    tid = _task(api, project, script={"repository": "r", "entry_point": "a.py"})
    api.ok("tasks.edit", task=tid, script={"branch": "main"}, runtime={"a": 1, "b.c/d": 2})
    task = api.ok("tasks.get_by_id", task=tid)["task"]
    assert task["script"] == {"repository": "r", "entry_point": "a.py", "branch": "main"}  # merged
    api.ok("tasks.edit", task=tid, runtime={"z": 3}, output_dest="http://f/y")
    task = api.ok("tasks.get_by_id", task=tid)["task"]
    assert task["runtime"] == {"z": 3}  # replaced
    assert task["output"]["destination"] == "http://f/y"
    api.error("tasks.edit", 400, 201, task=tid, models={"input": [{"name": "m", "model": "0" * 32}]})
    api.ok("tasks.started", task=tid)
    api.error("tasks.edit", 400, 110, task=tid, comment="not while running")
    result = api.ok("tasks.edit", task=tid, force=True, comment="forced")
    assert result["updated"] == 1


def test_hyper_params_and_configurations(api: Api, project: str) -> None:
    tid = _task(api, project)
    items = [
        {"section": "Args", "name": "lr", "value": "0.1", "type": "float"},
        {"section": "Args", "name": "epochs", "value": "3"},
        {"section": "General", "name": "x", "value": "y"},
    ]
    api.ok("tasks.edit_hyper_params", task=tid, hyperparams=items)
    api.ok("tasks.edit_hyper_params", task=tid, hyperparams=[items[0]], replace_hyperparams="section")
    params = api.ok("tasks.get_hyper_params", tasks=[tid])["params"][0]["hyperparams"]
    assert sorted((p["section"], p["name"], p["value"]) for p in params) == [
        ("Args", "lr", "0.1"),
        ("General", "x", "y"),
    ]
    api.ok(
        "tasks.edit_configuration",
        task=tid,
        configuration=[{"name": "cfg", "value": "a = 1", "type": "hocon"}],
    )
    configs = api.ok("tasks.get_configurations", tasks=[tid])["configurations"][0]["configuration"]
    assert configs == [{"name": "cfg", "value": "a = 1", "type": "hocon"}]
    assert api.ok("tasks.delete_hyper_params", task=tid, hyperparams=[{"section": "General"}])["deleted"] == 1
    # a running task: only "properties" may change without force (what Dataset.create relies on)
    api.ok("tasks.started", task=tid)
    api.ok(
        "tasks.edit_hyper_params",
        task=tid,
        hyperparams=[{"section": "properties", "name": "version", "value": "1"}],
    )
    api.error("tasks.edit_hyper_params", 400, 110, task=tid, hyperparams=[items[1]])


def test_status_transitions(api: Api, project: str) -> None:
    tid = _task(api, project)
    api.error("tasks.completed", 400, 110, task=tid)  # created -> completed needs force
    started = api.ok("tasks.started", task=tid)
    assert started["started"] == 1
    task = api.ok("tasks.get_by_id", task=tid)["task"]
    assert task["status"] == "in_progress"
    assert task["started"]
    completed = api.ok("tasks.completed", task=tid, status_reason="completed", publish=False)
    assert completed["published"] == 0
    api.ok("tasks.publish", task=tid)
    task = api.ok("tasks.get_by_id", task=tid)["task"]
    assert (task["status"], task["status_reason"]) == ("published", "")
    assert task["completed"] and task["published"]
    api.error("tasks.reset", 400, 110, task=tid)
    api.error("tasks.started", 400, 110, task=tid)
    api.ok("tasks.reset", task=tid, force=True)
    task = api.ok("tasks.get_by_id", task=tid)["task"]
    assert (task["status"], task["status_reason"]) == ("created", "reset")
    assert "started" not in task and "completed" not in task
    # a same-state change is accepted (it refreshes the status fields)
    api.ok("tasks.started", task=tid)
    api.ok("tasks.started", task=tid, status_message="again")
    assert api.ok("tasks.get_by_id", task=tid)["task"]["status_message"] == "again"


def test_enqueue_dequeue_default_queue(api: Api, project: str) -> None:
    default = api.ok("queues.get_default")
    assert default["name"] == "default"
    tid = _task(api, project)
    result = api.ok("tasks.enqueue", task=tid)
    assert result["queued"] == 1
    task = api.ok("tasks.get_by_id", task=tid)["task"]
    assert (task["status"], task["execution"]["queue"]) == ("queued", default["id"])
    assert api.ok("queues.get_num_entries", queue=default["id"])["num"] >= 1
    assert api.ok("tasks.dequeue", task=tid)["dequeued"] == 1
    assert api.ok("tasks.get_by_id", task=tid)["task"]["status"] == "created"


def test_artifacts_and_task_models(api: Api, project: str) -> None:
    tid = _task(api, project)
    art = {"key": "a", "type": "custom", "uri": "http://f/a", "hash": "h1", "timestamp": 1, "content_size": 3}
    api.ok("tasks.add_or_update_artifacts", task=tid, artifacts=[art, dict(art, key="b")])
    api.ok("tasks.add_or_update_artifacts", task=tid, artifacts=[dict(art, hash="h2")])
    artifacts = api.ok("tasks.get_by_id", task=tid)["task"]["execution"]["artifacts"]
    assert [(a["key"], a["hash"], a["mode"]) for a in artifacts] == [
        ("a", "h2", "output"),
        ("b", "h1", "output"),
    ]
    assert api.ok("tasks.delete_artifacts", task=tid, artifacts=[{"key": "b"}])["deleted"] == 1
    mid = api.ok("models.create", uri="http://f/m", name="m")["id"]
    api.ok("tasks.add_or_update_model", task=tid, name="best", model=mid, type="output")
    api.ok("tasks.add_or_update_model", task=tid, name="best", model=mid, type="output", iteration=7)
    models = api.ok("tasks.get_by_id", task=tid)["task"]["models"]
    assert [(m["name"], m["model"]) for m in models["output"]] == [("best", mid)]
    api.ok("tasks.delete_models", task=tid, models=[{"name": "best", "type": "output"}])
    assert api.ok("tasks.get_by_id", task=tid)["task"]["models"]["output"] == []


def test_task_delete_reply_types(api: Api, project: str) -> None:
    tid = _task(api, project)
    draft = api.ok("models.create", uri="http://f/d", name="draft", task=tid)["id"]
    published = api.ok("models.create", uri="http://f/p", name="published", task=tid, ready=True)["id"]
    result = api.ok("tasks.delete", task=tid, force=True)
    assert result["deleted"] is True
    api.error("models.get_by_id", 400, 201, model=draft)  # draft output models go with their task
    assert "task" not in api.ok("models.get_by_id", model=published)["model"]
    api.error("tasks.get_by_id", 400, 101, task=tid)


def test_clone(api: Api, project: str) -> None:
    tid = _task(api, project, hyperparams={"A": {"x": {"section": "A", "name": "x", "value": "1"}}})
    clone = api.ok("tasks.clone", task=tid, new_task_name="the clone")["id"]
    task = api.ok("tasks.get_by_id", task=clone)["task"]
    assert (task["name"], task["status"], task["hyperparams"]["A"]["x"]["value"]) == (
        "the clone",
        "created",
        "1",
    )


# --- get_all semantics ------------------------------------------------------------------------------
def test_get_all_filters(api: Api) -> None:
    pid = api.ok("projects.create", name="Filters")["id"]
    ids = {}
    for name, tags, system_tags in (
        ("t one", ["a"], ["dataset"]),
        ("t two", ["a", "b"], ["dataset", "archived"]),
        ("t three", ["c"], []),
        ("t hidden", [], ["hidden"]),
    ):
        ids[name] = _task(api, pid, name=name, tags=tags, system_tags=system_tags, type="data_processing")
    api.ok("tasks.edit", task=ids["t one"], runtime={"version": "1.0.0", "x": 1})

    def names(**query: Any) -> list[str]:
        query.setdefault("order_by", ["name"])
        tasks = api.ok("tasks.get_all", project=[pid], **query)["tasks"]
        return [t["name"] for t in tasks]

    assert names() == ["t one", "t three", "t two"]  # hidden tasks need search_hidden or an id
    assert names(search_hidden=True) == ["t hidden", "t one", "t three", "t two"]
    assert names(tags=["a", "c"]) == ["t one", "t three", "t two"]  # OR
    assert names(tags=["__$all", "a", "b"]) == ["t two"]
    assert names(tags=["-a"]) == ["t three"]
    assert names(system_tags=["__$all", "dataset", "__$not", "archived"]) == ["t one"]
    assert names(system_tags=["-archived"]) == ["t one", "t three"]
    assert names(name="^t t") == ["t three", "t two"]
    assert names(name=r"^t\ one$") == ["t one"]
    assert names(_any_={"pattern": "thr", "fields": ["name", "comment"]}) == ["t three"]
    assert names(order_by=["-name"]) == ["t two", "t three", "t one"]
    assert names(page=1, page_size=2) == ["t two"]
    hidden = api.ok("tasks.get_all", id=[ids["t hidden"]])["tasks"]
    assert [t["id"] for t in hidden] == [ids["t hidden"]]


def test_only_fields_keeps_parent_dicts(api: Api, project: str) -> None:
    tid = _task(api, project)
    api.ok("tasks.edit", task=tid, runtime={"other": 1})
    task = api.ok("tasks.get_all", id=[tid], only_fields=["runtime.version", "name", "script.repository"])[
        "tasks"
    ][0]
    assert task == {"id": tid, "name": "api task", "runtime": {}, "script": {}}
    task = api.ok("tasks.get_all", id=[tid], only_fields=["execution.artifacts.key"])["tasks"][0]
    assert task == {"id": tid, "execution": {"artifacts": []}}


# --- models -----------------------------------------------------------------------------------------
def test_models(api: Api, project: str) -> None:
    created = api.ok("models.create", uri="http://f/model.bin", name="mod", project=project, labels={"a": 0})
    assert created["created"] is True
    mid = created["id"]
    api.ok("models.edit", model=mid, framework="ONNX", design={"design": "x"}, tags=["t"])
    model = api.ok("models.get_by_id", model=mid)["model"]
    assert (model["framework"], model["design"], model["tags"], model["ready"]) == (
        "ONNX",
        {"design": "x"},
        ["t"],
        False,
    )
    assert [m["id"] for m in api.ok("models.get_all", uri=["http://f/model.bin"])["models"]] == [mid]
    api.error("models.create", 400, 12, uri="http://f/x", name="bad labels", labels={"a": "b"})
    api.error("models.create", 400, 101, uri="http://f/x", name="bad task", task="0" * 32)
    ready = api.ok("models.set_ready", model=mid, publish_task=False)
    assert (ready["updated"], ready["published_task"]) == (1, None)
    api.error("models.set_ready", 400, 203, model=mid)
    archived = api.ok("models.archive_many", ids=[mid])
    assert archived == {"succeeded": [{"id": mid, "archived": True}], "failed": []}
    assert api.ok("models.get_all", uri=["http://f/model.bin"], system_tags=["-archived"])["models"] == []
    deleted = api.ok("models.delete", model=mid)
    assert deleted == {"deleted": True, "url": "http://f/model.bin"}
    api.error("models.delete", 400, 201, model=mid)


# --- events -----------------------------------------------------------------------------------------
def _add_batch(api: Api, events: list[dict[str, Any]]) -> dict[str, Any]:
    body = "\n".join(json.dumps(e) for e in events)
    reply = api.session.post(
        f"{api.server.api_url}/v2.23/events.add_batch",
        data=body.encode(),
        headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json-lines"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    validate_reply("events.add_batch", data)
    return data


def test_events(api: Api, project: str) -> None:
    tid = _task(api, project)
    events = [
        {
            "type": "training_stats_scalar",
            "task": tid,
            "iter": i,
            "metric": "loss",
            "variant": "train",
            "value": 1 / (i + 1),
            "timestamp": 1000 + i,
        }
        for i in range(5)
    ]
    events += [
        {"type": "log", "task": tid, "msg": f"line {i}", "level": "info", "timestamp": 2000 + i}
        for i in range(4)
    ]
    events.append({"type": "plot", "task": tid, "iter": 1, "metric": "p", "variant": "v", "plot_str": "{}"})
    events.append(
        {
            "type": "training_debug_image",
            "task": tid,
            "iter": 2,
            "metric": "img",
            "variant": "v",
            "url": "http://f/i.png",
        }
    )
    events.append(
        {
            "type": "training_stats_scalar",
            "task": tid,
            "iter": -(2**31),
            "metric": "Summary",
            "variant": "acc",
            "value": 0.9,
        }
    )
    events.append(
        {
            "type": "training_stats_scalar",
            "task": "0" * 32,
            "iter": 0,
            "metric": "m",
            "variant": "v",
            "value": 1,
        }
    )
    result = _add_batch(api, events)
    assert (result["added"], result["errors"]) == (len(events) - 1, 1)

    task = api.ok("tasks.get_by_id", task=tid)["task"]
    assert task["last_iteration"] == 4
    (variants,) = task["last_metrics"].values()
    (last,) = variants.values()
    assert (last["metric"], last["variant"], last["value"], last["min_value"], last["max_value"]) == (
        "loss",
        "train",
        0.2,
        0.2,
        1.0,
    )
    histogram = api.ok("events.scalar_metrics_iter_histogram", task=tid)
    assert histogram["loss"]["train"]["x"] == [0, 1, 2, 3, 4]
    assert histogram["loss"]["train"]["y"] == pytest.approx([1, 0.5, 1 / 3, 0.25, 0.2])
    assert "Summary" not in histogram
    single = api.ok("events.get_task_single_value_metrics", tasks=[tid])["tasks"][0]["values"]
    assert [(v["metric"], v["variant"], v["value"]) for v in single] == [("Summary", "acc", 0.9)]

    log = api.ok("events.get_task_log", task=tid, order="asc", navigate_earlier=True, batch_size=2)
    assert [e["msg"] for e in log["events"]] == ["line 2", "line 3"]
    assert log["total"] == 4
    first = api.ok("events.get_task_events", task=tid, event_type="training_stats_scalar", batch_size=3)
    assert (first["returned"], first["total"]) == (3, 6)
    assert set(first["events"][0]) == {
        "type",
        "task",
        "iter",
        "metric",
        "variant",
        "value",
        "timestamp",
        "worker",
        "@timestamp",
    }
    rest = api.ok(
        "events.get_task_events",
        task=tid,
        event_type="training_stats_scalar",
        batch_size=3,
        scroll_id=first["scroll_id"],
    )
    # ordered by timestamp: the single value got the server time, later than the explicit ones
    assert [e["iter"] for e in first["events"] + rest["events"]] == [0, 1, 2, 3, 4, -(2**31)]
    plots = api.ok("events.get_task_plots", task=tid, iters=1)
    assert [(p["metric"], p["plot_str"]) for p in plots["plots"]] == [("p", "{}")]
    images = api.ok("events.debug_images", metrics=[{"task": tid, "metric": "img"}], iters=5)
    assert [e["url"] for it in images["metrics"][0]["iterations"] for e in it["events"]] == ["http://f/i.png"]
    again = api.ok(
        "events.debug_images",
        metrics=[{"task": tid, "metric": "img"}],
        iters=5,
        scroll_id=images["scroll_id"],
    )
    assert all(not m["iterations"] for m in again["metrics"])
    metrics = api.ok("events.get_task_metrics", tasks=[tid], event_type="training_stats_scalar")["metrics"]
    assert metrics == [{"task": tid, "metrics": ["loss", "Summary"]}]
    assert api.ok("events.delete_for_task", task=tid)["deleted"] is True
    assert api.ok("events.get_task_events", task=tid)["total"] == 0


def test_users_and_server_info(api: Api) -> None:
    user = api.ok("users.get_current_user")["user"]
    assert user["id"] and user["company"]["id"]
    info = api.ok("server.info")
    assert info["api_version"] == "2.31"
