# SPDX-License-Identifier: GPL-3.0-or-later
"""Read a clearml-serving service back: its configuration objects, preprocess artifacts, input models.

Usage: serving_read.py OUT.json SERVICE_ID
"""

from __future__ import annotations

import sys

from _common import emit, probe, sha256
from clearml import Task

task = Task.get_task(task_id=sys.argv[2])
out = {
    "name": task.name,
    "project": task.get_project_name(),
    "type": str(task.task_type),
    "status": str(task.get_status()),
    "system_tags": task.get_system_tags(),
    "tags": task.get_tags(),
    "runtime": task.data.runtime,
}
for name in ("endpoints", "canary", "metric_logging", "model_monitoring"):
    out[name] = probe(lambda name=name: task.get_configuration_object_as_dict(name))
out["artifacts"] = probe(
    lambda: {
        key: {"hash": a.hash, "local_sha256": sha256(a.get_local_copy()), "type": a.type}
        for key, a in task.artifacts.items()
    }
)
out["input_models"] = probe(lambda: {m.name: m.id for m in task.models["input"]})
emit(out)
