# SPDX-License-Identifier: GPL-3.0-or-later
"""Read the datasets back in a fresh process with an empty cache: Dataset.get by id and by
project+name(+version), local copies (the child pulls its parent's chunks), list_files, list_datasets,
the dependency graph; then a Task.init task that calls Dataset.get, which records it in its runtime.

Usage: datasets_read.py OUT.json DATASETS.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import emit, probe, tree_hashes
from clearml import Dataset, Task

made = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
project, name = made["project"], made["name"]
out: dict = {}

child = Dataset.get(dataset_id=made["child_id"])
out["child"] = {
    "id": child.id,
    "version": child.version,
    "name": child.name,
    "project": child.project,
    "tags": child.tags,
    "files": sorted(child.list_files()),
    "graph": child.get_dependency_graph(),
}
out["child_local"] = probe(lambda: tree_hashes(child.get_local_copy()))
out["parent_local"] = probe(lambda: tree_hashes(Dataset.get(dataset_id=made["parent_id"]).get_local_copy()))
out["by_version_id"] = probe(
    lambda: Dataset.get(dataset_project=project, dataset_name=name, dataset_version=made["parent_version"]).id
)
out["latest_id"] = probe(lambda: Dataset.get(dataset_project=project, dataset_name=name).id)
out["published_id"] = probe(
    lambda: Dataset.get(dataset_project=project, dataset_name=name, only_published=True).id
)
out["list_datasets"] = probe(
    lambda: sorted(
        (d["id"], d["name"], d["project"], d["version"])
        for d in Dataset.list_datasets(dataset_project=project)
    )
)

task = Task.init(
    project_name="D2S Server/Consumers",
    task_name="uses dataset",
    auto_connect_frameworks=False,
    auto_resource_monitoring=False,
)
used = Dataset.get(dataset_project=project, dataset_name=name, alias="training_data")
out["used_id"] = used.id
out["consumer_task_id"] = task.id
task.close()
emit(out)
