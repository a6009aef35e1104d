# SPDX-License-Identifier: GPL-3.0-or-later
"""Read a server the way its users do, with the real clearml SDK in a fresh process; print one JSON line.

    python readback.py '{"latest": [[project, name], ...], "datasets": [id, ...], "tasks": [id, ...],
                         "models": [id, ...]}'

- ``latest``: what ``Dataset.get(dataset_project=, dataset_name=)`` returns (id and version);
- ``datasets``: per id its version, tags, dependency graph and the sha256 of every file of
  ``get_local_copy()`` (the whole lineage, fetched through each ancestor's own chunks);
- ``tasks``: name, parent, status, user tags, system tags, hyperparameters, output model ids, scalars;
- ``models``: name, tags, framework, task and the sha256 of ``get_local_copy()`` (files of a package).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from clearml import Dataset, Model, Task


def _hashes(path: Path) -> dict[str, str]:
    if path.is_file():  # the name is the cache's (prefixed); the content is what counts
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def main() -> int:
    spec = json.loads(sys.argv[1])
    out: dict[str, Any] = {"latest": {}, "datasets": {}, "tasks": {}, "models": {}}
    for project, name in spec.get("latest", []):
        ds = Dataset.get(dataset_project=project, dataset_name=name)
        out["latest"][f"{project}/{name}"] = {"id": ds.id, "version": ds.version}
    for did in spec.get("datasets", []):
        ds = Dataset.get(dataset_id=did)
        out["datasets"][did] = {
            "version": ds.version,
            "name": ds.name,
            "project": ds.project,
            "tags": ds.tags,
            "graph": {k: list(v) for k, v in ds.get_dependency_graph().items()},
            "files": _hashes(Path(ds.get_local_copy())),
        }
    for tid in spec.get("tasks", []):
        task = Task.get_task(task_id=tid)
        scalars = task.get_reported_scalars()
        out["tasks"][tid] = {
            "name": task.name,
            "parent": task.parent,
            "status": task.get_status(),
            "tags": task.get_tags(),
            "system_tags": task.get_system_tags(),
            "params": task.get_parameters(),
            "output_models": [m.id for m in task.models["output"]],
            "scalars": {f"{m}/{v}": len(d["x"]) for m, vs in scalars.items() for v, d in vs.items()},
            "runtime_datasets": (task.data.runtime or {}).get("datasets"),
        }
    for mid in spec.get("models", []):
        model = Model(mid)
        out["models"][mid] = {
            "name": model.name,
            "tags": model.tags,
            "system_tags": model.system_tags,
            "framework": model.framework,
            "task": model.task,
            "files": _hashes(Path(model.get_local_copy())),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
