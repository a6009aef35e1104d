# SPDX-License-Identifier: GPL-3.0-or-later
"""serving_service's shell: documentation equals the argument spec; main() in-process on argument errors
and on real docker calls that need no ClearML server (state=absent, state=present of a missing image)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from d2s_testlib import docker_available

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import CLEARML_COMMON_ARGS
from ansible_collections.deploy2standalone.clearml.plugins.modules import serving_service

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from unittest import mock

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args: dict[str, Any] | None = None) -> Iterator[None]:
        with mock.patch.object(
            basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))
        ):
            yield


CONNECTION = {"api_host": "http://127.0.0.1:9", "access_key": "ak", "secret_key": "very-secret-key"}
needs_docker = pytest.mark.skipif(not docker_available(), reason="no docker daemon answers on this host")


def run_main(capsys: pytest.CaptureFixture[str], args: dict[str, Any]) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        serving_service.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_documentation_lists_every_option() -> None:
    doc = yaml.safe_load(serving_service.DOCUMENTATION)
    spec = serving_service.argument_spec()
    assert set(doc["options"]) | set(CLEARML_COMMON_ARGS) == set(spec)
    for name, option in doc["options"].items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
        assert option.get("choices") == spec[name].get("choices"), name
    returned = yaml.safe_load(serving_service.RETURN)
    assert set(returned) == {
        "serving_id",
        "dev_serving_id",
        "service",
        "image",
        "container",
        "url",
        "smoke",
        "unprobed",
    }
    for key, spec in returned.items():
        assert {"description", "returned", "type", "sample"} <= set(spec), key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "state is started but any of the following are missing: serving_id, import_info"),
        (
            {"serving_id": "a" * 32, "import_info": "/x.json"},
            "parameters are mutually exclusive: serving_id|import_info",
        ),
        (
            {"serving_id": "a" * 32, "dev_serving_id": "b" * 32},
            "missing parameter(s) required by 'dev_serving_id': import_info",
        ),
        (
            {"serving_id": "a" * 32, "image_store": "/s"},
            "missing parameter(s) required by 'image_store': image_record",
        ),
        (
            {"serving_id": "a" * 32, "state": "running"},
            "value of state must be one of: present, started, absent",
        ),
    ],
)
def test_argument_errors(capsys: pytest.CaptureFixture[str], args: dict[str, Any], message: str) -> None:
    result = run_main(capsys, {**CONNECTION, **args})
    assert result["failed"] is True
    assert message in result["msg"]
    assert "very-secret-key" not in json.dumps(result)


@needs_docker
def test_absent_without_container_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    name = "d2s-test-serving-never-created"
    result = run_main(capsys, {**CONNECTION, "state": "absent", "name": name, "_ansible_diff": True})
    assert result["changed"] is False
    assert result["container"] == {"name": name, "action": "none", "id": None}
    assert result["diff"] == {"before": {"container": None}, "after": {"container": None}}


@needs_docker
def test_present_names_a_missing_image(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_main(capsys, {**CONNECTION, "state": "present", "image": "d2s-test/never-built:0"})
    assert result["failed"] is True
    assert (
        "image 'd2s-test/never-built:0' is not on this host and nothing says how to load it" in result["msg"]
    )
    assert "very-secret-key" not in json.dumps(result)
