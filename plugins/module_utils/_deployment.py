# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Resolve what a dev deployment consists of: the serving service, its endpoints, the models they
serve, the tasks that made them, the datasets those used (with their lineage).

Private to this collection: not a public API, may change without notice.

Only reads from the dev server (never ``ModelRequestProcessor``: it starts the service task).
The result is a ``Deployment``: plain documents as the server returns them plus the references
between them, ready to be written into a bundle by the exporter.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError

SERVING_TAG = "serving-control-plane"
SERVING_CONFIGS = ("endpoints", "canary", "model_monitoring", "metric_logging", "model_monitoring_eps")
EVENT_TYPES = ("training_stats_scalar", "plot", "log", "training_debug_image")
_ID = re.compile(r"^[0-9a-f]{32}$")


def parse_hocon(text: str | None) -> dict[str, Any]:
    """Parse a clearml-serving configuration object (HOCON, as the CLI stores it) into plain JSON data."""
    if not text or not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        from clearml.utilities.pyhocon import ConfigFactory  # noqa: PLC0415 - SDK needed only here
    except ImportError as exc:  # pragma: no cover - the export host has the SDK
        raise ClearmlModuleError("Parsing clearml-serving configuration needs the clearml SDK") from exc
    try:
        return json.loads(json.dumps(ConfigFactory.parse_string(text).as_plain_ordered_dict()))
    except Exception as exc:
        raise ClearmlModuleError(f"Cannot parse clearml-serving configuration: {exc}") from exc


def dataset_ids_used_by(task: dict[str, Any]) -> list[str]:
    """Dataset ids a task recorded using (``Dataset.get`` inside ``Task.init``): runtime ``datasets``,
    ``orig_datasets.<name>/<version>`` and ``Datasets/<alias>`` hyperparameters."""
    found: list[str] = []
    runtime = task.get("runtime") or {}
    raw = runtime.get("datasets")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw.replace("'", '"'))
        except ValueError:
            raw = re.findall(r"[0-9a-f]{32}", raw)
    if isinstance(raw, list):
        found.extend(str(x) for x in raw)
    for key, value in runtime.items():
        if key.startswith("orig_datasets.") and isinstance(value, str):
            found.append(value)
    for entry in ((task.get("hyperparams") or {}).get("Datasets") or {}).values():
        found.append(str(entry.get("value", "")))
    return [d for d in dict.fromkeys(found) if _ID.match(d)]


def _matcher(patterns: list[str] | None):
    def wanted(url: str) -> bool:
        return not patterns or any(fnmatch.fnmatchcase(url, p) for p in patterns)

    return wanted


@dataclass
class Deployment:
    """What the exporter writes: documents keyed by dev id, plus how they reference each other."""

    serving: dict[str, Any] | None = None
    serving_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    serving_config_text: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_roles: dict[str, list[str]] = field(default_factory=dict)  # model id → endpoints/roles naming it
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task → output models
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset task docs, parents first
    dataset_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)  # project id → full name
    warnings: list[str] = field(default_factory=list)


class DeploymentReader:
    """Reads a deployment from the dev server (read-only)."""

    def __init__(self, client: ClearmlClient, workdir: str) -> None:
        self.client = client
        self.workdir = workdir
        self.dep = Deployment()

    # -- generic reads ------------------------------------------------------------------------------
    def task(self, task_id: str, what: str) -> dict[str, Any]:
        tasks = self.client.call("tasks.get_all", {"id": [task_id], "search_hidden": True}).get("tasks") or []
        if not tasks:
            raise ClearmlModuleError(
                f"{what} {task_id} does not exist on the dev server {self.client.api_host}"
            )
        return tasks[0]

    def project_name(self, project_id: str | None) -> str | None:
        if not project_id:
            return None
        if project_id not in self.dep.projects:
            found = self.client.call("projects.get_all", {"id": [project_id], "search_hidden": True}).get(
                "projects"
            )
            self.dep.projects[project_id] = found[0]["name"] if found else ""
        return self.dep.projects[project_id] or None

    # -- serving ------------------------------------------------------------------------------------
    def read_serving(self, serving_id: str, endpoint_patterns: list[str] | None) -> None:
        svc = self.task(serving_id, "Serving service")
        if SERVING_TAG not in (svc.get("system_tags") or []):
            self.dep.warnings.append(
                f"Task {serving_id} ({svc.get('name')}) lacks the '{SERVING_TAG}' system tag; exported as a serving service anyway"
            )
        self.dep.serving = svc
        self.project_name(svc.get("project"))
        conf = svc.get("configuration") or {}
        for name in SERVING_CONFIGS:
            text = (conf.get(name) or {}).get("value")
            self.dep.serving_config_text[name] = text or ""
            self.dep.serving_configs[name] = parse_hocon(text)
        wanted = _matcher(endpoint_patterns)
        selected = self._select_endpoints(wanted)
        if endpoint_patterns and not selected and not self._monitoring_selected(wanted):
            raise ClearmlModuleError(
                f"No endpoint of serving service {serving_id} matches {endpoint_patterns}; "
                f"it has {sorted(self.dep.serving_configs.get('endpoints', {}))}"
            )
        self.dep.endpoints = selected
        for url, ep in selected.items():
            model_id = ep.get("model_id")
            if model_id:
                self.add_model(model_id, f"endpoint:{url}")
        for url, mon in self.dep.serving_configs.get("model_monitoring", {}).items():
            if wanted(url):
                for model_id in self._monitored_models(mon):
                    self.add_model(model_id, f"monitoring:{url}")
        # Models the running inference service derived from monitoring (if any ran in dev).
        for url, ep in self.dep.serving_configs.get("model_monitoring_eps", {}).items():
            if wanted(url) and ep.get("model_id"):
                self.add_model(ep["model_id"], f"monitoring:{url}", required=False)

    def _select_endpoints(self, wanted) -> dict[str, dict[str, Any]]:
        endpoints = self.dep.serving_configs.get("endpoints", {})
        selected = {url: ep for url, ep in endpoints.items() if wanted(url)}
        # Canary endpoints pull in the endpoints they balance.
        for url, canary in self.dep.serving_configs.get("canary", {}).items():
            if not wanted(url):
                continue
            for target in canary.get("load_endpoints") or []:
                if target in endpoints:
                    selected.setdefault(target, endpoints[target])
            prefix = canary.get("load_endpoint_prefix")
            if prefix:
                for other, ep in endpoints.items():
                    if other.startswith(prefix):
                        selected.setdefault(other, ep)
        return selected

    def _monitoring_selected(self, wanted) -> bool:
        return any(wanted(u) for u in self.dep.serving_configs.get("model_monitoring", {}))

    def _monitored_models(self, mon: dict[str, Any]) -> list[str]:
        body: dict[str, Any] = {"system_tags": ["-archived"], "order_by": ["-created"], "only_fields": ["id"]}
        if mon.get("monitor_project"):
            projects = self.client.call(
                "projects.get_all", {"name": f"^{re.escape(mon['monitor_project'])}$", "search_hidden": True}
            ).get("projects")
            if not projects:
                self.dep.warnings.append(f"Monitored project {mon['monitor_project']} does not exist in dev")
                return []
            body["project"] = [p["id"] for p in projects]
        if mon.get("monitor_name"):
            body["name"] = mon["monitor_name"]
        if mon.get("monitor_tags"):
            body["tags"] = list(mon["monitor_tags"])
        if mon.get("only_published"):
            body["ready"] = True
        models = self.client.get_all("models.get_all", "models", body)
        if mon.get("max_versions"):
            models = models[: int(mon["max_versions"])]
        return [m["id"] for m in models]

    # -- models, tasks, datasets --------------------------------------------------------------------
    def add_model(self, model_id: str, role: str, required: bool = True) -> None:
        self.dep.model_roles.setdefault(model_id, [])
        if role not in self.dep.model_roles[model_id]:
            self.dep.model_roles[model_id].append(role)
        if model_id in self.dep.models:
            return
        found = self.client.call("models.get_all", {"id": [model_id]}).get("models") or []
        if not found:
            if not required:
                self.dep.warnings.append(f"Model {model_id} ({role}) no longer exists in dev; skipped")
                return
            raise ClearmlModuleError(
                f"{role} refers to model {model_id}, which does not exist on the dev server"
            )
        model = found[0]
        if not model.get("uri"):
            raise ClearmlModuleError(f"Model {model_id} ({model.get('name')}) has no weights URI to export")
        self.dep.models[model_id] = model
        self.project_name(model.get("project"))
        task_id = model.get("task")
        if not task_id:
            self.dep.warnings.append(
                f"Model {model_id} ({model.get('name')}) has no creating task; exported as a bare model"
            )
            return
        try:
            self.add_task(task_id)
        except ClearmlModuleError:
            self.dep.warnings.append(
                f"Model {model_id} ({model.get('name')}) names task {task_id}, which is gone; exported as a bare model"
            )

    def add_task(self, task_id: str) -> None:
        if task_id in self.dep.tasks:
            return
        task = self.task(task_id, "Training task")
        self.dep.tasks[task_id] = task
        self.project_name(task.get("project"))
        outputs = self.client.get_all(
            "models.get_all",
            "models",
            {"task": [task_id], "order_by": ["created"], "system_tags": ["-archived"]},
        )
        self.dep.task_models[task_id] = outputs
        for model in outputs:
            if model["id"] not in self.dep.models and model.get("uri"):
                self.dep.models[model["id"]] = model
                self.dep.model_roles.setdefault(model["id"], []).append(f"output-of:{task_id}")
        for model_ref in (task.get("models") or {}).get("input") or []:
            if model_ref.get("model") and model_ref["model"] not in self.dep.models:
                self.add_model(model_ref["model"], f"input-of:{task_id}", required=False)
        for ds in dataset_ids_used_by(task):
            self.add_dataset(ds, f"task {task_id}")

    def add_dataset(self, dataset_id: str, used_by: str) -> None:
        if dataset_id in self.dep.datasets:
            return
        try:
            doc = self.task(dataset_id, "Dataset")
        except ClearmlModuleError as exc:
            raise ClearmlModuleError(
                f"{used_by} uses dataset {dataset_id}, which does not exist in dev"
            ) from exc
        state = self._dataset_state(doc)
        graph = state.get("dependency_graph") or {}
        for parent in graph.get(dataset_id) or []:
            if parent not in self.dep.datasets:
                try:
                    self.add_dataset(parent, f"dataset {dataset_id}")
                except ClearmlModuleError as exc:
                    raise ClearmlModuleError(
                        f"Dataset {dataset_id} ({doc.get('name')}) has parent {parent}, which is missing in dev: {exc.msg}"
                    ) from exc
        # Parents were added first: insertion order of self.dep.datasets is a topological order.
        self.dep.datasets[dataset_id] = doc
        self.dep.dataset_states[dataset_id] = state
        self.project_name(doc.get("project"))

    def _dataset_state(self, doc: dict[str, Any]) -> dict[str, Any]:
        artifacts = {a.get("key"): a for a in (doc.get("execution") or {}).get("artifacts") or []}
        state = artifacts.get("state")
        if not state or not state.get("uri"):
            raise ClearmlModuleError(
                f"Dataset {doc['id']} ({doc.get('name')}) has no state artifact; is it finalized?"
            )
        dest = f"{self.workdir}/state-{doc['id']}.json"
        self.client.download(state["uri"], dest)
        with open(dest, encoding="utf-8") as fh:
            return json.load(fh)

    # -- events ---------------------------------------------------------------------------------------
    def task_events(self, task_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every event of a task (scalars, plots, console log, debug images), oldest first."""
        out: dict[str, list[dict[str, Any]]] = {}
        for event_type in EVENT_TYPES:
            events: list[dict[str, Any]] = []
            scroll_id = None
            while True:
                body: dict[str, Any] = {
                    "task": task_id,
                    "event_type": event_type,
                    "batch_size": 1000,
                    "order": "asc",
                }
                if scroll_id:
                    body["scroll_id"] = scroll_id
                data = self.client.call("events.get_task_events", body) or {}
                batch = data.get("events") or []
                events.extend(batch)
                scroll_id = data.get("scroll_id")
                if not batch or not scroll_id or len(events) >= int(data.get("total") or 0):
                    break
            out[event_type] = events
        return out
