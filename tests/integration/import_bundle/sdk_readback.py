# SPDX-License-Identifier: GPL-3.0-or-later
"""Read an imported site through the real clearml SDK, the way a site user does; print one JSON line.

argv: seed.json content, import_info content. The site comes from the CLEARML_* environment.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from clearml import Dataset, Model, Task

seed = json.loads(sys.argv[1])
info = json.loads(sys.argv[2])
m = info["map"]
out: dict = {}

versions = seed["dataset"]["versions"]
latest = versions[-1]
ds = Dataset.get(dataset_project=seed["dataset"]["project"], dataset_name=seed["dataset"]["name"])
out["dataset_get_id"] = ds.id
out["expected_latest"] = m["datasets"][latest["id"]]
local = Path(ds.get_local_copy())
files = {
    str(p.relative_to(local)): hashlib.sha256(p.read_bytes()).hexdigest()
    for p in local.rglob("*")
    if p.is_file()
}
out["files_equal"] = files == {k: v["sha256"] for k, v in latest["files"].items()}
graph = ds.get_dependency_graph()
expected = {m["datasets"][v["id"]]: [m["datasets"][p] for p in v["parents"]] for v in versions}
out["lineage_isomorphic"] = {k: list(v) for k, v in graph.items()} == expected

svc = Task.get_task(task_id=m["serving"][seed["serving"]["id"]])
eps = svc.get_configuration_object_as_dict("endpoints")
out["endpoint_models_mapped"] = all(
    eps[url]["model_id"] == m["models"][ep["model_id"]]
    for url, ep in seed["serving"]["endpoints"].items()
    if ep.get("model_id")
)

equal = True
for key, model in seed["models"].items():
    site_model = Model(m["models"][model["id"]])
    path = Path(site_model.get_local_copy())
    if path.is_file():
        ((_, meta),) = (
            model["files"].items() if len(model["files"]) == 1 else (next(iter(model["files"].items())),)
        )
        equal &= hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
    else:
        got = {
            str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in path.rglob("*")
            if p.is_file()
        }
        equal &= got == {k: v["sha256"] for k, v in model["files"].items()}
    equal &= site_model.framework == model["framework"]
    out.setdefault("frameworks", {})[key] = site_model.framework
out["models_byte_equal"] = bool(equal)

task = Task.get_task(task_id=m["tasks"][seed["tasks"]["train_seed0"]["id"]])
out["user_tags_untouched"] = not any(t.startswith("d2s-") for t in task.get_tags()) and sorted(
    task.get_tags()
) == sorted(seed["tasks"]["train_seed0"]["tags"])
out["status"] = task.get_status()
print(json.dumps(out))
