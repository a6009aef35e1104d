# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Redaction of secrets in exported task documents.

Private to this collection: not a public API, may change without notice.

A secret never leaves dev in a bundle. What is found is replaced by ``REDACTED`` and reported as a
``Redaction`` (object, field path, kind, rule), never with its value, so the manifest can say what was
redacted and where. Rules:

- *key names*: a hyperparameter, configuration entry, runtime key or environment variable whose name
  looks secret (``password``, ``secret``, ``token``, ``api_key``, ``access_key``, ``private_key``,
  ``credential``, ``passwd``, ``auth``), the whole value;
- *assignments in text* (container arguments, setup scripts, the uncommitted diff, configuration text):
  ``NAME=value`` / ``NAME: value`` / ``--name value`` with a secret-looking name, the value;
- *URL credentials*: ``scheme://user:password@host`` anywhere in text, the ``user:password`` part;
- *known token shapes*: AWS access key ids, GitHub/GitLab tokens, PEM private keys;
- extra user patterns (regular expressions; the first group, or the whole match, is redacted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

REDACTED = "<redacted-by-deploy2standalone>"

SECRET_NAME = re.compile(
    r"(password|passwd|passphrase|secret|credential"
    r"|(?:^|[^a-z])pass(?:$|[^a-z])"
    r"|(?:^|[^a-z])(?:auth_?|access_?|refresh_?)?token(?:$|[^a-z])"
    r"|(?:^|[^a-z])auth(?:$|[^a-z])"
    r"|(?:api|access|private|secret|session|account)[_-]?key)",
    re.IGNORECASE,
)
# NAME=value, NAME: value, --name=value, and --name value
_ASSIGNMENT = re.compile(
    r"""(?:(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<sep>\s*[=:]\s*)|(?P<flag>--[A-Za-z][A-Za-z0-9_.\-]*)(?P<fsep>\s+))"""
    r"""(?P<quote>["']?)(?P<value>[^\s"',;]+)(?P=quote)"""
)
_URL_CREDS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<creds>[^/@\s:]+:[^/@\s]+)@")
_TOKEN_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws-access-key-id", re.compile(r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b")),
    ("github-token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,})\b")),
    ("gitlab-token", re.compile(r"\b(glpat-[A-Za-z0-9_\-]{20,})\b")),
    (
        "private-key",
        re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----)", re.DOTALL),
    ),
)


@dataclass(frozen=True)
class Redaction:
    """One redacted value: where it was and which rule found it. Never the value itself."""

    object_kind: str
    object_id: str
    path: str
    rule: str

    def as_dict(self) -> dict[str, str]:
        return {
            "object_kind": self.object_kind,
            "object_id": self.object_id,
            "path": self.path,
            "rule": self.rule,
        }


@dataclass
class Redactor:
    """Finds and replaces secrets; ``extra_patterns`` are user regular expressions."""

    extra_patterns: Iterable[str] = ()
    found: list[Redaction] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._extra = [re.compile(p) for p in self.extra_patterns]

    # -- text ----------------------------------------------------------------------------------------
    def text(self, value: str, kind: str, obj: str, path: str) -> str:
        """Redact secrets inside free text (arguments, scripts, diffs, configuration text)."""
        rules: list[str] = []

        def url_sub(m: re.Match[str]) -> str:
            rules.append("url-credentials")
            return f"{m.group('scheme')}{REDACTED}@"

        out = _URL_CREDS.sub(url_sub, value)

        def assign_sub(m: re.Match[str]) -> str:
            name = m.group("name") or m.group("flag")
            sep = m.group("sep") if m.group("name") else m.group("fsep")
            val = m.group("value")
            if not SECRET_NAME.search(name) or _is_placeholder(val):
                return m.group(0)
            rules.append("secret-name")
            return f"{name}{sep}{m.group('quote')}{REDACTED}{m.group('quote')}"

        out = _ASSIGNMENT.sub(assign_sub, out)
        for rule, pattern in _TOKEN_SHAPES:
            out, n = pattern.subn(REDACTED, out)
            rules.extend([rule] * n)
        for pattern in self._extra:
            out, n = pattern.subn(_group_replacer(), out)
            rules.extend(["user-pattern"] * n)
        for rule in dict.fromkeys(rules):
            self.found.append(Redaction(kind, obj, path, rule))
        return out

    def named(self, name: str, value: Any, kind: str, obj: str, path: str) -> Any:
        """Redact a value stored under ``name`` (a hyperparameter, config entry, env var)."""
        if isinstance(value, str) and value and SECRET_NAME.search(name) and not _is_placeholder(value):
            self.found.append(Redaction(kind, obj, path, "secret-name"))
            return REDACTED
        if isinstance(value, str):
            return self.text(value, kind, obj, path)
        return value

    def args(self, argv: list[str], kind: str, obj: str, path: str) -> list[str]:
        """Redact a container argument list (``-e NAME=value``, ``--token value`` …)."""
        out: list[str] = []
        prev = ""
        for i, arg in enumerate(argv):
            where = f"{path}[{i}]"
            if (
                prev.startswith("--")
                and SECRET_NAME.search(prev)
                and "=" not in prev
                and not arg.startswith("-")
            ):
                self.found.append(Redaction(kind, obj, where, "secret-name"))
                out.append(REDACTED)
            else:
                out.append(self.text(arg, kind, obj, where))
            prev = arg
        return out


def _is_placeholder(value: str) -> bool:
    """Values that are references, not secrets (``${VAR}``, ``$VAR``, ``***``, empty)."""
    v = value.strip()
    return not v or v.startswith("$") or set(v) <= {"*", "x", "X"} or v == REDACTED


def _group_replacer():
    def sub(m: re.Match[str]) -> str:
        if m.re.groups:
            start, end = m.span(1)
            whole_start = m.start(0)
            text = m.group(0)
            return text[: start - whole_start] + REDACTED + text[end - whole_start :]
        return REDACTED

    return sub


def redact_task(task: dict[str, Any], redactor: Redactor) -> dict[str, Any]:  # noqa: PLR0912 - one branch per field
    """Return a copy of a ClearML task document with its secrets redacted (see module docstring)."""
    tid = str(task.get("id", ""))
    out = dict(task)
    # hyperparameters: {section: {name: {value, …}}}
    hp = {}
    for section, params in (task.get("hyperparams") or {}).items():
        hp[section] = {}
        for name, entry in (params or {}).items():
            entry = dict(entry)  # noqa: PLW2901 - a copy, the input is never modified
            entry["value"] = redactor.named(
                name, entry.get("value"), "task", tid, f"hyperparams.{section}.{name}.value"
            )
            hp[section][name] = entry
    if "hyperparams" in task:
        out["hyperparams"] = hp
    conf = {}
    for name, entry in (task.get("configuration") or {}).items():
        entry = dict(entry)  # noqa: PLW2901
        entry["value"] = redactor.named(name, entry.get("value"), "task", tid, f"configuration.{name}.value")
        conf[name] = entry
    if "configuration" in task:
        out["configuration"] = conf
    container = dict(task.get("container") or {})
    if isinstance(container.get("arguments"), str):
        container["arguments"] = redactor.text(container["arguments"], "task", tid, "container.arguments")
    elif isinstance(container.get("arguments"), list):
        container["arguments"] = redactor.args(container["arguments"], "task", tid, "container.arguments")
    if container.get("setup_shell_script"):
        container["setup_shell_script"] = redactor.text(
            container["setup_shell_script"], "task", tid, "container.setup_shell_script"
        )
    if "container" in task:
        out["container"] = container
    script = dict(task.get("script") or {})
    for key in ("diff", "repository"):
        if isinstance(script.get(key), str) and script[key]:
            script[key] = redactor.text(script[key], "task", tid, f"script.{key}")
    if "script" in task:
        out["script"] = script
    runtime = {}
    for name, value in (task.get("runtime") or {}).items():
        runtime[name] = redactor.named(name, value, "task", tid, f"runtime.{name}")
    if "runtime" in task:
        out["runtime"] = runtime
    return out
