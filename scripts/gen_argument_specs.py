# SPDX-License-Identifier: GPL-3.0-or-later
"""Write roles/<role>/meta/argument_specs.yml from the commented roles/<role>/defaults/main.yml.

Each default's description is the comment block above it; types come from the default values;
``<role>_*secret*``/``*access_key`` options get ``no_log``. Extra keys (choices, short_description)
come from the existing file, so hand edits survive. Usage: python scripts/gen_argument_specs.py ROLE...
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _comments(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            pending.append(line[1:].strip())
        elif line and not line.startswith((" ", "-")) and ":" in line:
            out[line.split(":", 1)[0]] = " ".join(pending)
            pending = []
        elif not line.strip():
            pending = []
    return out


def _kind(value: object) -> str:
    """The argument-spec type of a default value (bool before int: a bool is an int in Python)."""
    for kind, types in (("bool", bool), ("list", list), ("dict", dict), ("int", int), ("float", float)):
        if isinstance(value, types):
            return kind
    return "str"


def generate(role_dir: Path) -> None:
    text = (role_dir / "defaults" / "main.yml").read_text()
    defaults = yaml.safe_load(text) or {}
    comments = _comments(text)
    spec_path = role_dir / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(spec_path.read_text())["argument_specs"] if spec_path.exists() else {}
    old = specs.get("main") or {}
    options = {}
    for name, value in defaults.items():
        kind = (
            "bool"
            if isinstance(value, bool)
            else "list"
            if isinstance(value, list)
            else "int"
            if isinstance(value, int)
            else "dict"
            if isinstance(value, dict)
            else "str"
        )
        old_opt = old.get("options", {}).get(name) or {}
        opt = {
            "description": comments.get(name) or old_opt.get("description") or name,
            "type": kind,
            "default": value,
        }
        if kind == "list":
            opt["elements"] = "str"
        if name.endswith(("secret_key", "access_key", "password")):
            opt["no_log"] = True
        for key in ("choices", "elements"):
            if key in (old.get("options", {}).get(name) or {}):
                opt[key] = old["options"][name][key]
        options[name] = opt
    main = {
        "short_description": old.get("short_description") or f"The {role_dir.name} role",
        "description": old.get("description") or [f"See roles/{role_dir.name}/defaults/main.yml."],
        "author": old.get("author") or ["deploy2standalone contributors"],
        "options": options,
    }
    # Other entry points (tasks_from) are written by hand and kept as they are.
    specs = {"main": main, **{k: v for k, v in specs.items() if k != "main"}}
    spec_path.write_text(
        "---\n" + yaml.dump({"argument_specs": specs}, Dumper=_Dumper, sort_keys=False, width=120)
    )


if __name__ == "__main__":
    for role in sys.argv[1:]:
        generate(Path("roles") / role)
