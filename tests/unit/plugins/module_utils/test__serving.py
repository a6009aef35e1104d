# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils._serving and _serving_probe: ids, smoke specs, answer comparison, container spec and plan.

Pure logic with tables; the parts that talk to ClearML run against the project's local server (real
REST, started here), the parts that talk to docker against this host's daemon when it answers. The
end-to-end behaviour (container, readiness, idempotence, site host) is in tests/integration/serving/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from d2s_servers import LocalServer, start_local_server
from d2s_testlib import docker_available

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _serving as serving
from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _serving_probe as probe
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient

DEV, SITE = "d" * 32, "5" * 32
ANSWER = {"probabilities": [[0.25, 0.75]], "labels": ["b"]}


def params(**over: Any) -> dict[str, Any]:
    base = {
        "state": "started",
        "api_host": "http://api.site.example:8008",
        "web_host": "http://api.site.example:8080",
        "files_host": "http://files.site.example:8081",
        "access_key": "AK",
        "secret_key": "SK-secret",
        "validate_certs": True,
        "ca_path": None,
        "serving_id": None,
        "import_info": None,
        "dev_serving_id": None,
        "bundle": None,
        "image": "d2s/serving-inference:1.3.5",
        "image_record": None,
        "image_store": None,
        "name": "d2s-serving-inference",
        "listen_address": "0.0.0.0",  # noqa: S104 - the module default, not a bind
        "port": 8080,
        "triton_grpc_address": "127.0.0.1:8001",
        "poll_frequency": 5.0,
        "workers": 1,
        "block_outside_traffic": True,
        "env": {},
        "restart_policy": "unless-stopped",
        "memory": None,
        "cpus": None,
        "smoke_requests": {},
        "atol": 0.0,
        "rtol": 0.0,
        "ready_timeout": 30,
    }
    base.update(over)
    return base


# ------------------------------------------------------------------------------------- answers
@pytest.mark.parametrize(
    ("actual", "expected", "atol", "rtol", "same"),
    [
        (ANSWER, ANSWER, 0.0, 0.0, True),
        ({"a": 1}, {"a": 1.0}, 0.0, 0.0, True),  # JSON numbers: 1 and 1.0 are one value
        ({"a": 0.7434940934181213}, {"a": 0.7434940338134766}, 0.0, 0.0, False),
        ({"a": 0.7434940934181213}, {"a": 0.7434940338134766}, 1e-6, 0.0, True),
        ({"a": 100.0}, {"a": 100.5}, 0.0, 0.01, True),
        ({"a": 100.0}, {"a": 102.0}, 0.0, 0.01, False),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, 0.0, 0.0, False),
        ({"a": 1, "b": 2}, {"a": 1}, 0.0, 0.0, False),
        ({"a": "1"}, {"a": 1}, 1.0, 1.0, False),  # a string is never a number
        ({"a": True}, {"a": 1}, 0.0, 0.0, False),  # nor a bool
        ({"a": float("nan")}, {"a": float("nan")}, 0.0, 0.0, True),
        ({"a": float("inf")}, {"a": 1e308}, 1e308, 0.0, False),
        ([{"x": None}], [{"x": None}], 0.0, 0.0, True),
    ],
)
def test_differences(actual: Any, expected: Any, atol: float, rtol: float, same: bool) -> None:
    assert (probe.differences(actual, expected, atol=atol, rtol=rtol) == []) is same


def test_differences_name_the_place() -> None:
    diffs = probe.differences({"p": [[0.1, 0.2]], "l": ["a"]}, {"p": [[0.1, 0.3]], "l": ["a"], "m": 1})
    assert diffs == ["$.m: missing", "$.p[0][1]: 0.2 != 0.3"]


def test_check_answer_one_of_reports_the_match_and_the_closest() -> None:
    other = {"probabilities": [[0.5, 0.5]], "labels": ["a"]}
    spec = {"request": {}, "expected_one_of": [other, ANSWER]}
    assert probe.check_answer(ANSWER, spec, atol=0, rtol=0) == (True, [], 1)
    ok, diffs, index = probe.check_answer(
        {"probabilities": [[0.25, 0.75]], "labels": ["c"]}, spec, atol=0, rtol=0
    )
    assert (ok, index) == (False, None)
    assert diffs[0].startswith("none of 2 expected answers") and "$.labels[0]: 'c' != 'b'" in diffs
    assert probe.check_answer({"anything": 1}, {"request": {}}, atol=0, rtol=0) == (True, [], None)


def test_normalize_smoke_takes_the_seed_inference_section_as_is() -> None:
    seed_like = {
        "iris_onnx": {
            "model": "onnx_seed0",
            "request": {"f": [1]},
            "response": ANSWER,
            "model_output": [[1]],
        },
        "/iris_canary/": {"request": {"f": [1]}, "routes": {"a/1": 0.75}, "expected_one_of": [ANSWER]},
        "plain": {"request": {"f": [2]}, "response": None},
    }
    assert probe.normalize_smoke(seed_like) == {
        "iris_onnx": {"request": {"f": [1]}, "response": ANSWER},
        "iris_canary": {"request": {"f": [1]}, "expected_one_of": [ANSWER]},
        "plain": {"request": {"f": [2]}},
    }


@pytest.mark.parametrize(
    ("smoke", "message"),
    [
        ({"a": {"response": {}}}, "endpoint 'a': give a mapping with a 'request'"),
        ({"a": [1]}, "endpoint 'a': give a mapping with a 'request'"),
        ({"/": {"request": {}}}, "an endpoint name is empty"),
        ({"a": {"request": {}, "expected_one_of": []}}, "expected_one_of must be a non-empty list"),
        ({"a": {"request": {}, "response": 1, "expected_one_of": [1]}}, "not both"),
    ],
)
def test_normalize_smoke_refuses(smoke: dict[str, Any], message: str) -> None:
    with pytest.raises(probe.SmokeSpecError, match="invalid smoke_requests") as err:
        probe.normalize_smoke(smoke)
    assert message in err.value.msg


@pytest.mark.parametrize(
    ("listen", "port", "url"),
    [
        ("0.0.0.0", 8080, "http://127.0.0.1:8080"),  # noqa: S104 - a value, not a bind
        ("::", 9000, "http://127.0.0.1:9000"),
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("::1", 8080, "http://[::1]:8080"),
    ],
)
def test_base_url(listen: str, port: int, url: str) -> None:
    assert probe.base_url(listen, port) == url


def test_serve_path_keeps_the_version_slash() -> None:
    assert probe.serve_path("iris_custom/2") == "/serve/iris_custom/2"
    assert probe.serve_path("/a b/") == "/serve/a%20b"


def test_http_reports_a_closed_port_without_raising() -> None:
    reply = probe.http("GET", "http://127.0.0.1:9/openapi.json", timeout=2)
    assert reply.status == 0 and reply.error


# ------------------------------------------------------------------------------------ service id
def write_info(tmp_path: Path, serving: dict[str, str]) -> str:
    path = tmp_path / "import_info.json"
    path.write_text(json.dumps({"map": {"serving": serving, "models": {}}}))
    return str(path)


def test_site_serving_id_sources(tmp_path: Path) -> None:
    assert serving.site_serving_id(params(serving_id=SITE), None) == (SITE, None)
    info = write_info(tmp_path, {DEV: SITE})
    assert serving.site_serving_id(params(import_info=info), None) == (SITE, DEV)
    manifest = {"serving": {"id": DEV}}
    two = write_info(tmp_path, {DEV: SITE, "e" * 32: "6" * 32})
    assert serving.site_serving_id(params(import_info=two), manifest) == (SITE, DEV)
    assert serving.site_serving_id(params(import_info=two, dev_serving_id="e" * 32), manifest) == (
        "6" * 32,
        "e" * 32,
    )


@pytest.mark.parametrize(
    ("mapping", "over", "manifest", "message"),
    [
        (None, {}, None, "give serving_id (the site's serving service id) or import_info"),
        ({DEV: SITE, "e" * 32: "6" * 32}, {}, None, "maps 2 serving services: give bundle or dev_serving_id"),
        ({}, {}, None, "maps 0 serving services"),
        ({"e" * 32: SITE}, {}, {"serving": {"id": DEV}}, f"maps no serving service with dev id {DEV}"),
    ],
)
def test_site_serving_id_failures(
    tmp_path: Path, mapping: dict[str, str] | None, over: dict[str, Any], manifest: Any, message: str
) -> None:
    if mapping is not None:
        over = {**over, "import_info": write_info(tmp_path, mapping)}
    with pytest.raises(serving.ServingError) as err:
        serving.site_serving_id(params(**over), manifest)
    assert message in err.value.msg


def test_site_serving_id_unreadable_record(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(serving.ServingError, match="cannot read import_info"):
        serving.site_serving_id(params(import_info=str(tmp_path / "bad.json")), None)


# ----------------------------------------------------------------------------------------- spec
def test_container_env() -> None:
    env = serving.container_env(params(workers=3, env={"UVICORN_LOG_LEVEL": "info", "NO_PROXY": "x"}), SITE)
    assert env["CLEARML_SERVING_TASK_ID"] == SITE
    assert env["CLEARML_EXTRA_PYTHON_PACKAGES"] == ""
    assert env["CLEARML_DEFAULT_TRITON_GRPC_ADDR"] == "127.0.0.1:8001"
    assert env["CLEARML_SERVING_POLL_FREQ"] == "5"
    assert env["CLEARML_SERVING_NUM_PROCESS"] == "3"
    assert env["HTTPS_PROXY"] == serving.BLOCK_PROXY
    assert env["no_proxy"] == "127.0.0.1,localhost,::1,api.site.example,files.site.example"
    assert env["NO_PROXY"] == "x"  # the user's env wins
    assert env["UVICORN_LOG_LEVEL"] == "info"
    assert "CLEARML_API_HOST_VERIFY_CERT" not in env


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"validate_certs": False}, {"CLEARML_API_HOST_VERIFY_CERT": "0"}),
        ({"ca_path": "/etc/ca.pem"}, {"CLEARML_API_HOST_VERIFY_CERT": serving.CONTAINER_CA}),
        ({"block_outside_traffic": False, "web_host": None}, {"CLEARML_WEB_HOST": None, "HTTPS_PROXY": None}),
        ({"workers": 1}, {"CLEARML_SERVING_NUM_PROCESS": None}),
    ],
)
def test_container_env_options(over: dict[str, Any], expected: dict[str, str | None]) -> None:
    env = serving.container_env(params(**over), SITE)
    assert {k: env.get(k) for k in expected} == expected


def spec(**over: Any) -> serving.Spec:
    image = {"name": "d2s/serving-inference:1.3.5", "id": "sha256:" + "a" * 64}
    return serving.build_spec(params(**over), image, SITE)


def test_spec_masks_secrets_but_counts_them() -> None:
    one, two = spec(), spec(secret_key="rotated")
    assert one.public() == two.public()
    assert one.public()["env"]["CLEARML_API_SECRET_KEY"] == "********"
    assert one.digest() != two.digest()
    assert "SK-secret" not in json.dumps(one.public())
    args = one.run_args("/tmp/x.env")
    assert "SK-secret" not in " ".join(args)
    assert args[:8] == [
        "run",
        "--detach",
        "--name",
        "d2s-serving-inference",
        "--network",
        "host",
        "--restart",
        "unless-stopped",
    ]
    assert args[-1] == "d2s/serving-inference:1.3.5"
    assert f"{serving.DIGEST_LABEL}={one.digest()}" in args


def test_spec_ca_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(serving.ServingError, match="is not a file on this host"):
        spec(ca_path=str(tmp_path / "missing.pem"))
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    assert f"{ca}:{serving.CONTAINER_CA}:ro" in spec(ca_path=str(ca)).run_args("/e")


def inspected(
    s: serving.Spec, *, running: bool = True, image: str | None = None, managed: bool = True
) -> dict:
    labels = {serving.DIGEST_LABEL: s.digest(), serving.SPEC_LABEL: json.dumps(s.public())}
    if managed:
        labels[serving.MANAGED_LABEL] = "true"
    return {
        "Id": "c" * 64,
        "Image": image or s.image_id,
        "Config": {"Labels": labels},
        "State": {"Running": running, "Status": "running" if running else "exited"},
    }


def test_plan_action() -> None:
    s = spec()
    assert serving.plan_action(None, s) == ("create", ["no container"])
    assert serving.plan_action(serving.current_state(inspected(s)), s) == ("none", [])
    assert serving.plan_action(serving.current_state(inspected(s, running=False)), s) == (
        "start",
        ["container is exited"],
    )
    action, reasons = serving.plan_action(serving.current_state(inspected(s, image="sha256:" + "b" * 64)), s)
    assert action == "recreate" and reasons[0].startswith("image sha256:bbbb")
    action, reasons = serving.plan_action(serving.current_state(inspected(spec(port=9090))), s)
    assert action == "recreate" and reasons == ["configuration changed (env CLEARML_SERVING_PORT)"]
    action, reasons = serving.plan_action(serving.current_state(inspected(spec(secret_key="old"))), s)
    assert reasons == ["configuration changed (secrets)"]
    action, reasons = serving.plan_action(serving.current_state(inspected(spec(memory="2g"))), s)
    assert reasons == ["configuration changed (memory)"]
    action, reasons = serving.plan_action(serving.current_state(inspected(s, managed=False)), s)
    assert action == "recreate" and reasons == ["the container was not made by this module"]


@pytest.mark.parametrize(
    ("smoke", "urls", "unknown"),
    [
        ({"a": {}, "b/1": {}}, ["a", "b/1"], []),
        ({"a": {}, "c": {}}, ["a", "b/1"], ["c"]),
        ({"det/3": {}}, ["det/*"], []),  # a monitored model's version
        ({"x": {}}, None, []),  # endpoints unknown: nothing to check against
    ],
)
def test_unknown_endpoints(smoke: dict[str, Any], urls: list[str] | None, unknown: list[str]) -> None:
    assert serving.unknown_endpoints(smoke, urls) == unknown


def test_tcp_reachable() -> None:
    assert serving.tcp_reachable("127.0.0.1:9", timeout=1)
    assert serving.tcp_reachable("no-port") == "'no-port' is not host:port"


# ------------------------------------------------------------------------------ the site server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    srv = start_local_server(tmp_path_factory.mktemp("serving") / "server")
    try:
        yield srv
    finally:
        srv.stop()


def client(server: LocalServer) -> ClearmlClient:
    a = server.module_args()
    return ClearmlClient(a["api_host"], a["access_key"], a["secret_key"], a["web_host"], a["files_host"])


ENDPOINTS_HOCON = """
iris_onnx {
  engine_type = "triton"
  serving_url = "iris_onnx"
  model_id = "7ae0b8b0208e423b8dfdb69bd5dfa515"
  input_name = ["features"]
}
iris_custom/1 {
  engine_type = "custom"
  serving_url = "iris_custom"
  version = "1"
}
"""
CANARY_HOCON = (
    'iris_canary {\n  endpoint = "iris_canary"\n  weights = [1.0]\n  load_endpoints = ["iris_custom/1"]\n}'
)


AUX_TEXT = '''
detector/2 {
  engine_type = "triton"
  serving_url = "detector"
  version = "2"
  auxiliary_cfg = """
    dynamic_batching { max_queue_delay_microseconds: 100 }
    input [ { name: "x" } ]
  """
  input_size = [[3, 224, 224]]
}
"odd.key/1" {
  # a comment with { braces }
  engine_type: "custom_async"
  note = "a } in a string, and a \\"quote\\""
  nested { engine_type = "not me" }
}
'''


@pytest.mark.parametrize("text", [ENDPOINTS_HOCON, CANARY_HOCON, AUX_TEXT])
def test_hocon_outline_agrees_with_the_sdk_parser(text: str) -> None:
    """The SDK-free reader finds the same top-level keys and scalar fields as pyhocon."""
    from clearml.utilities.pyhocon import ConfigFactory

    full = json.loads(json.dumps(ConfigFactory.parse_string(text).as_plain_ordered_dict()))
    outline = serving.hocon_outline(text)
    assert list(outline) == list(full)
    for key, fields in outline.items():
        scalars = {k: str(v) for k, v in full[key].items() if isinstance(v, (str, int, float))}
        assert fields == scalars, key


def make_task(c: ClearmlClient, **fields: Any) -> str:
    project = c.call("projects.create", {"name": f"serving-unit-{fields['name']}"})["id"]
    return c.call("tasks.create", {"project": project, **fields})["id"]


def test_read_service(server: LocalServer) -> None:
    c = client(server)
    task = make_task(c, name="iris serving", type="service", system_tags=["serving-control-plane"])
    c.call(
        "tasks.edit",
        {
            "task": task,
            "configuration": {
                "endpoints": {"name": "endpoints", "value": ENDPOINTS_HOCON},
                "canary": {"name": "canary", "value": CANARY_HOCON},
            },
            "hyperparams": {
                "General": {
                    "triton_grpc_server": {"section": "General", "name": "triton_grpc_server", "value": "t:1"}
                }
            },
        },
    )
    service = serving.read_service(c, task)
    assert service.name == "iris serving" and service.status == "created"
    assert service.urls() == ["iris_canary", "iris_custom/1", "iris_onnx"]
    assert service.needs_triton() is True
    assert service.endpoints["iris_onnx"]["input_name"] == ["features"]
    assert service.triton_param == "t:1"


def test_read_service_refuses_other_tasks(server: LocalServer) -> None:
    c = client(server)
    task = make_task(c, name="training", type="training")
    with pytest.raises(serving.ServingError, match=f"task {task} on .* is not a clearml-serving service"):
        serving.read_service(c, task)
    with pytest.raises(
        serving.ServingError, match=f"serving service {'0' * 32} not found on the site server"
    ):
        serving.read_service(c, "0" * 32)


# ------------------------------------------------------------------------------------------ image
@pytest.mark.skipif(not docker_available(), reason="no docker daemon answers on this host")
def test_missing_image_is_named() -> None:
    docker = serving.Docker()
    with pytest.raises(serving.ServingError, match="image 'd2s-test/none:0' is not on this host"):
        serving.ensure_image(docker, params(image="d2s-test/none:0"), None)


def test_image_record_needs_a_store(tmp_path: Path) -> None:
    record = tmp_path / "r.json"
    record.write_text("{}")
    with pytest.raises(serving.ServingError, match="image_record needs image_store"):
        serving.ensure_image(serving.Docker(), params(image_record=str(record)), None)


def test_check_mode_refuses_mutating_docker_calls() -> None:
    docker = serving.Docker(check_mode=True)
    with pytest.raises(serving.ServingError, match="internal error: tried to remove"):
        docker.run("rm", "-f", "x", action="remove x", mutating=True)
    assert docker.calls == []
