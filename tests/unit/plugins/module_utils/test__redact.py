# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json

import pytest

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._redact import (
    REDACTED,
    SECRET_NAME,
    Redactor,
    redact_task,
)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("db_passwd", True),
        ("CLEARML_AGENT_GIT_PASS", True),
        ("aws_secret_access_key", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("api_key", True),
        ("hf_token", True),
        ("GIT_TOKEN", True),
        ("basic_auth", True),
        ("credentials", True),
        ("max_tokens", False),
        ("tokenizer", False),
        ("num_passes", False),
        ("author", False),
        ("learning_rate", False),
        ("batch_size", False),
        ("keypoints", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert bool(SECRET_NAME.search(name)) is secret


@pytest.mark.parametrize(
    ("text", "kept", "gone", "rule"),
    [
        (
            "-e CLEARML_AGENT_GIT_PASS=planted-git-secret-1 -e FOO=bar",
            "FOO=bar",
            "planted-git-secret-1",
            "secret-name",
        ),
        (
            "git clone https://bob:hunter2@git.example.com/x.git",
            "git.example.com/x.git",
            "hunter2",
            "url-credentials",
        ),
        ("the id AKIAABCDEFGHIJKLMNOP leaked", "the id", "AKIAABCDEFGHIJKLMNOP", "aws-access-key-id"),
        ('password: "s3cr3t-value"', "password", "s3cr3t-value", "secret-name"),
        ("token = ghp_" + "a" * 36, "token", "ghp_" + "a" * 36, "secret-name"),
        ("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----", "", "abc", "private-key"),
    ],
)
def test_text_redaction(text: str, kept: str, gone: str, rule: str) -> None:
    r = Redactor()
    out = r.text(text, "task", "t1", "container.arguments")
    assert gone not in out
    assert kept in out
    assert REDACTED in out
    assert rule in {f.rule for f in r.found}
    assert all(gone not in json.dumps(f.as_dict()) for f in r.found)


@pytest.mark.parametrize(
    "text", ["--lr 0.1 --epochs 3", "PASSWORD=$DB_PASSWORD", "token=${GIT_TOKEN}", "plain text"]
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    r = Redactor()
    assert r.text(text, "task", "t", "p") == text
    assert r.found == []


def test_container_argument_list() -> None:
    r = Redactor()
    out = r.args(
        ["-e", "GIT_TOKEN=abc123", "--api-key", "zzz", "--lr", "0.1"], "task", "t", "container.arguments"
    )
    assert out == ["-e", f"GIT_TOKEN={REDACTED}", "--api-key", REDACTED, "--lr", "0.1"]
    assert {f.path for f in r.found} == {"container.arguments[1]", "container.arguments[3]"}


def test_user_pattern() -> None:
    r = Redactor(extra_patterns=[r"internal-id-(\d+)"])
    assert r.text("see internal-id-4242 now", "task", "t", "comment") == f"see internal-id-{REDACTED} now"
    assert [f.rule for f in r.found] == ["user-pattern"]


def test_redact_task_document_does_not_modify_input() -> None:
    task = {
        "id": "abc",
        "hyperparams": {
            "Args": {
                "aws_secret_access_key": {
                    "section": "Args",
                    "name": "aws_secret_access_key",
                    "value": "planted-hp",
                },
                "lr": {"section": "Args", "name": "lr", "value": "0.1"},
            }
        },
        "configuration": {"cfg": {"name": "cfg", "value": "db_url: postgres://u:planted-cfg@db/x"}},
        "container": {
            "image": "python:3.11",
            "arguments": "-e CLEARML_AGENT_GIT_PASS=planted-arg",
            "setup_shell_script": "",
        },
        "script": {"diff": "+API_KEY = 'planted-diff'\n", "repository": "https://me:planted-repo@git/x"},
        "runtime": {"hf_token": "planted-rt", "progress": "100"},
    }
    before = json.dumps(task, sort_keys=True)
    r = Redactor()
    out = redact_task(task, r)
    assert json.dumps(task, sort_keys=True) == before
    dumped = json.dumps(out)
    assert "planted" not in dumped
    assert out["hyperparams"]["Args"]["lr"]["value"] == "0.1"
    assert out["runtime"]["progress"] == "100"
    assert out["container"]["image"] == "python:3.11"
    assert {f.path for f in r.found} == {
        "hyperparams.Args.aws_secret_access_key.value",
        "configuration.cfg.value",
        "container.arguments",
        "script.diff",
        "script.repository",
        "runtime.hf_token",
    }
