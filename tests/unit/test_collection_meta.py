# SPDX-License-Identifier: GPL-3.0-or-later
"""Collection-wide rules: doc fragments match their argspec twins, every module's docs render,
every role documents exactly its defaults in meta/argument_specs.yml."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from d2s_testlib import REPO, VENV_BIN, project_env

from ansible_collections.deploy2standalone.clearml.plugins.doc_fragments.clearml import ModuleDocFragment
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import (
    CLEARML_COMMON_ARGS,
    generate_argspec,
)

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))
ROLES = (
    sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
    if (REPO / "roles").is_dir()
    else []
)


def test_connection_fragment_matches_argspec() -> None:
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(doc) == set(CLEARML_COMMON_ARGS)
    for name, spec in CLEARML_COMMON_ARGS.items():
        assert doc[name]["type"] == spec["type"], name
        assert doc[name].get("required", False) == spec.get("required", False), name
        assert doc[name].get("default") == spec.get("default"), name


def test_secrets_are_no_log() -> None:
    assert CLEARML_COMMON_ARGS["secret_key"]["no_log"] is True
    assert CLEARML_COMMON_ARGS["access_key"]["no_log"] is True


@pytest.mark.parametrize(
    ("prefix", "expected_key"),
    [("", "api_host"), ("source_", "source_api_host"), ("dest_", "dest_secret_key")],
)
def test_generate_argspec_prefixes(prefix: str, expected_key: str) -> None:
    spec = generate_argspec(prefix, extra={"type": "str"})
    assert expected_key in spec
    assert spec["extra"] == {"type": "str"}
    if prefix:
        assert all("fallback" not in v for k, v in spec.items() if k.startswith(prefix))
    else:
        assert "fallback" in spec["api_host"]


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders(module: str) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "-j", f"deploy2standalone.clearml.{module}"],
        cwd=REPO,
        env=project_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)[f"deploy2standalone.clearml.{module}"]
    doc = data["doc"]
    assert doc["short_description"]
    assert doc.get("version_added")
    assert data.get("examples"), f"{module} has no EXAMPLES"
    assert data.get("return") is not None, f"{module} has no RETURN"
    for opt, spec in doc.get("options", {}).items():
        assert spec.get("description"), f"{module}: option {opt} has no description"
        assert spec.get("type"), f"{module}: option {opt} has no type"


def _defaults(role: str) -> dict:
    path = REPO / "roles" / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


@pytest.mark.parametrize("role", ROLES)
def test_role_argument_specs_match_defaults(role: str) -> None:
    specs_path = REPO / "roles" / role / "meta" / "argument_specs.yml"
    assert specs_path.exists(), f"{role} has no meta/argument_specs.yml"
    specs = yaml.safe_load(specs_path.read_text())["argument_specs"]["main"].get("options", {})
    defaults = _defaults(role)
    assert set(defaults) <= set(specs), f"{role}: defaults not documented: {set(defaults) - set(specs)}"
    for name, spec in specs.items():
        assert name.startswith(f"{role}_"), f"{role}: option {name} lacks the role prefix"
        assert spec.get("description"), f"{role}: {name} has no description"
        if name in defaults:
            assert spec.get("default") == defaults[name], (
                f"{role}: {name} default differs from defaults/main.yml"
            )
        else:
            assert spec.get("required"), f"{role}: {name} is neither defaulted nor required"


def test_runtime_action_group_lists_existing_modules() -> None:
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    for mod in runtime.get("action_groups", {}).get("clearml", []):
        assert (REPO / "plugins" / "modules" / f"{mod}.py").exists() or mod not in MODULES


def test_collection_resolves_from_checkout() -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "list", "deploy2standalone.clearml"],
        cwd=REPO,
        env=project_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(Path("collections") / "ansible_collections") in proc.stdout
    assert "deploy2standalone.clearml" in proc.stdout
