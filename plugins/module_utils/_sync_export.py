# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sync-back, site side: what a site made, written as a bundle (format v1) for dev.

Private to this collection: not a public API, may change without notice.

The bundle is the one ``clearml_export`` writes (``ExportCore``: downloads, redaction, checksums,
signature), filled from a different selection: the site-made dataset versions and tasks chosen by
``_sync.SourceIndex``, their output models, and whatever they depend on. Objects that came from dev
(``d2s-origin:<dev id>`` at the site) and site objects dev already has are *known*: the bundle speaks
of them by their dev id (``known`` = {site id: dev id}, applied to every document, dataset state and
event), never carries their data, and

- a known dataset version still appears in ``dataset_versions`` (the format wants every parent in the
  bundle), as a *reference entry*: ``record: null``, no files, no chunks, only its (remapped) state;
- a known task or model (a retrained task's parent, an input model) is not in the bundle at all; the
  documents that reference it carry its dev id.

So a site's new dataset version travels with its own chunks only, and its parent is the dev original.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import canonical_json
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._deployment import (
    Deployment,
    DeploymentReader,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._export import (
    ExportCore,
    _dataset_user_project,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._import import remap_ids
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._redact import redact_task


class SyncReader(DeploymentReader):
    """A ``DeploymentReader`` that does not follow known objects (dev's, or already synced): a known
    task or model is referenced, never read; a known dataset is read (document and state, no data) so
    that it can stand in the bundle as a reference entry."""

    def __init__(self, client: ClearmlClient, workdir: str, known: dict[str, str]) -> None:
        super().__init__(client, workdir)
        self.known = known

    def add_model(self, model_id: str, role: str, required: bool = True) -> None:
        if model_id in self.known:
            return
        super().add_model(model_id, role, required)

    def add_task(self, task_id: str) -> None:
        if task_id in self.known:
            return
        super().add_task(task_id)

    def task_events(self, task_id: str) -> dict[str, list[dict[str, Any]]]:
        return remap_ids(super().task_events(task_id), self.known)


def remap_deployment(dep: Deployment, known: dict[str, str]) -> set[str]:
    """Rewrite every document of ``dep`` so that known site ids become dev ids (known datasets are
    re-keyed by their dev id); return the dev ids of the known datasets (the reference entries)."""
    dep.tasks = {tid: remap_ids(doc, known) for tid, doc in dep.tasks.items()}
    dep.task_models = {tid: remap_ids(models, known) for tid, models in dep.task_models.items()}
    dep.models = {mid: remap_ids(doc, known) for mid, doc in dep.models.items()}
    datasets: dict[str, dict[str, Any]] = {}
    states: dict[str, dict[str, Any]] = {}
    for did, doc in dep.datasets.items():  # insertion order (parents first) is kept
        new_id = known.get(did, did)
        datasets[new_id] = remap_ids(doc, known)
        states[new_id] = remap_ids(dep.dataset_states[did], known)
    dep.datasets, dep.dataset_states = datasets, states
    return {known[did] for did in known if known[did] in datasets}


class SyncExportCore(ExportCore):
    """``ExportCore`` writing the sync-back selection instead of a serving deployment.

    ``params`` are ``clearml_export``'s (unprefixed source connection, ``dest``, ``include_events``,
    ``redact_patterns``, ``signing_key``); ``datasets`` and ``tasks`` are the selected site ids.
    """

    def __init__(
        self,
        params: dict[str, Any],
        datasets: list[str],
        tasks: list[str],
        known: dict[str, str],
        check_mode: bool = False,
    ) -> None:
        super().__init__({**params, "include_code": False}, check_mode=check_mode)
        self.selected_datasets = list(datasets)
        self.selected_tasks = list(tasks)
        self.known = dict(known)
        self.references: set[str] = set()
        self.read: Deployment | None = None

    def _fill_manifest(self, reader: DeploymentReader, manifest: dict[str, Any]) -> None:
        # ExportCore's own reader was given nothing to read; read the selection here, with the
        # tmpdir of this run, and write that instead.
        sync_reader = SyncReader(self.client, self.tmpdir, self.known)
        for did in self.selected_datasets:
            sync_reader.add_dataset(did, "selected")
        for tid in self.selected_tasks:
            sync_reader.add_task(tid)
        self.references = remap_deployment(sync_reader.dep, self.known)
        self._warnings_extra.extend(sync_reader.dep.warnings)
        self.read = sync_reader.dep
        super()._fill_manifest(sync_reader, manifest)

    def _dataset_entry(self, reader: DeploymentReader, did: str, doc: dict[str, Any]) -> dict[str, Any]:
        state = reader.dep.dataset_states[did]
        graph = state.get("dependency_graph") or {}
        entry: dict[str, Any] = {
            "name": doc.get("name") or "",
            "project": _dataset_user_project(reader.project_name(doc.get("project"))),
            "version": (doc.get("runtime") or {}).get("version"),
            "tags": list(doc.get("tags") or []),
            "parents": list(dict.fromkeys(graph.get(did) or [])),
            # the remapped state (parents and inherited files under their dev ids)
            "state": self.put_bytes(canonical_json(state), "dataset-state"),
            "files": [],
            "chunks": [],
            "record": None,
        }
        if did in self.references:
            return entry  # a reference to a dev dataset version: no record, no data
        arts = {a.get("key"): a for a in (doc.get("execution") or {}).get("artifacts") or []}
        for key in sorted(arts):
            if key == "data" or (key or "").startswith("data_"):
                art = arts[key]
                entry["chunks"].append(
                    {
                        "artifact": key,
                        "blob": self.fetch(art["uri"], "dataset-chunk", art.get("hash") or None),
                    }
                )
        entry["record"] = self.put_bytes(canonical_json(redact_task(doc, self.redactor)), "task-record")
        return entry
