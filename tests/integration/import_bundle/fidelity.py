# SPDX-License-Identifier: GPL-3.0-or-later
"""Object-by-object comparison of dev and site after an import.

Allowed differences are exactly those DESIGN.md lists: ids and references (mapped), URLs (the site's
storage), timestamps, origin system tags, and redacted secrets. Everything else must be equal; each
difference found is reported with its path.
"""

from __future__ import annotations

import json
import re
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._import import remap_ids
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._redact import Redactor, redact_task

TIMESTAMPS = {
    "created",
    "started",
    "completed",
    "published",
    "last_update",
    "last_change",
    "status_changed",
    "updated",
    "timestamp",
    "@timestamp",
    "last_changed_by",
    "user",
    "company",
}
_URL = re.compile(r"https?://[^\s\"']+")


def _norm_url(url: str, files_host: str) -> str:
    """A fileserver URL without its host, unquoted: the object path, which must match after id mapping."""
    if url.startswith(files_host):
        return "FILES:" + urllib.parse.unquote(url[len(files_host) :])
    return url


def normalise(doc: Any, files_host: str, path: str = "") -> Any:
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key in TIMESTAMPS or key == "id":
                continue
            if key == "system_tags":
                value = sorted(t for t in value if not t.startswith("d2s-"))  # noqa: PLW2901
            out[key] = normalise(value, files_host, f"{path}.{key}")
        return out
    if isinstance(doc, list):
        return [normalise(v, files_host, path) for v in doc]
    if isinstance(doc, str):
        return _URL.sub(lambda m: _norm_url(m.group(0), files_host), doc)
    return doc


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a:
                out.append(f"{path}.{key}: only at the site")
            elif key not in b:
                out.append(f"{path}.{key}: missing at the site")
            else:
                out.extend(diff(a[key], b[key], f"{path}.{key}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(diff(x, y, f"{path}[{i}]"))
        return out
    return [] if a == b else [f"{path}: dev {str(a)[:200]!r} != site {str(b)[:200]!r}"]


def compare_task(
    dev: ClearmlClient, site: ClearmlClient, dev_id: str, site_id: str, id_map: dict[str, str]
) -> list[str]:
    d = dev.call("tasks.get_by_id", {"task": dev_id})["task"]
    s = site.call("tasks.get_by_id", {"task": site_id})["task"]
    problems = _compare_artifacts(dev, site, d, s, id_map)
    d = redact_task(d, Redactor())  # what left dev
    d = remap_ids(d, id_map)
    projects = {}
    for client, doc in ((dev, d), (site, s)):
        pid = doc.pop("project", None)
        if pid:
            found = client.call("projects.get_all", {"id": [pid], "search_hidden": True})["projects"]
            projects[client.api_host] = found[0]["name"] if found else None
    problems += diff(normalise(d, dev.files_host or ""), normalise(s, site.files_host or ""))
    if len(set(projects.values())) > 1:
        problems.append(f".project: dev {projects[dev.api_host]!r} != site {projects[site.api_host]!r}")
    return [f"task {dev_id}{p}" for p in problems]


def _compare_artifacts(
    dev: ClearmlClient, site: ClearmlClient, d: dict, s: dict, id_map: dict[str, str]
) -> list[str]:
    """Artifacts by key; their content (hash, size, preview) travels byte-identical, only the URI is mapped."""
    arts = []
    raw_state_uris = []
    for client, doc in ((dev, d), (site, s)):
        listed = (doc.get("execution") or {}).pop("artifacts", None) or []
        raw_state_uris.extend(a.get("uri") for a in listed if a.get("key") == "state")
        arts.append({a["key"]: normalise(a, client.files_host or "") for a in listed})
    for art in arts[0].values():
        if "uri" in art:
            art["uri"] = remap_ids(art["uri"], id_map)
    if list(arts[0]) != list(arts[1]):
        return [f".execution.artifacts: keys (in order) dev {list(arts[0])} != site {list(arts[1])}"]
    problems = []
    if "state" in arts[0] and "dataset" in (d.get("system_tags") or []):
        # A dataset's state.json names dataset ids: its content is mapped, so compare it mapped.
        states = [_fetch_json(dev, raw_state_uris[0]), _fetch_json(site, raw_state_uris[1])]
        if remap_ids(states[0], id_map) != states[1]:
            problems.append(".execution.artifacts.state: site state.json is not dev's with ids mapped")
        for art in (arts[0]["state"], arts[1]["state"]):
            art.pop("hash", None)
            art.pop("content_size", None)
    return problems + [f".execution.artifacts{p}" for p in diff(arts[0], arts[1])]


def _fetch_json(client: ClearmlClient, url: str) -> object:
    path = Path(tempfile.mkdtemp()) / "f.json"
    client.download(url, path)
    return json.loads(path.read_text())


def compare_model(
    dev: ClearmlClient, site: ClearmlClient, dev_id: str, site_id: str, id_map: dict[str, str]
) -> list[str]:
    d = dev.call("models.get_by_id", {"model": dev_id})["model"]
    s = site.call("models.get_by_id", {"model": site_id})["model"]
    d = remap_ids(d, id_map)
    for doc in (d, s):
        doc.pop("project", None)
    problems = diff(normalise(d, dev.files_host or ""), normalise(s, site.files_host or ""))
    return [f"model {dev_id}{p}" for p in problems]


def compare_events(
    dev: ClearmlClient, site: ClearmlClient, dev_id: str, site_id: str, id_map: dict[str, str]
) -> list[str]:
    problems = []
    for event_type in ("training_stats_scalar", "plot", "log", "training_debug_image"):
        evs = []
        for client, tid in ((dev, dev_id), (site, site_id)):
            data = client.call(
                "events.get_task_events",
                {"task": tid, "event_type": event_type, "batch_size": 10000, "order": "asc"},
            )
            evs.append(
                sorted(
                    (
                        normalise(
                            {
                                k: v
                                for k, v in e.items()
                                if k not in ("task", "worker", "_id", "allow_locked", "method")
                            },
                            client.files_host or "",
                        )
                        for e in data.get("events") or []
                    ),
                    key=lambda e: (
                        e.get("iter", 0),
                        e.get("metric", ""),
                        e.get("variant", ""),
                        str(e.get("msg", "")),
                    ),
                )
            )
        if len(evs[0]) != len(evs[1]):
            problems.append(
                f"events {event_type} of {dev_id}: {len(evs[0])} in dev, {len(evs[1])} at the site"
            )
            continue
        for x, y in zip(evs[0], evs[1], strict=True):
            problems.extend(f"events {event_type} of {dev_id}{p}" for p in diff(remap_ids(x, id_map), y))
    return problems
