# SPDX-License-Identifier: GPL-3.0-or-later
"""What people do at a site (or at dev), through the real clearml SDK; run as its own process.

    python flows.py version  '{"project", "name", "parent"?, "version"?, "folder", "files": {path: text|size}}'
    python flows.py retrain  '{"source_task", "train_script", "workdir", "name"}'

``version`` creates a dataset version (``Dataset.create`` with ``parent_datasets``, ``add_files``,
``upload``, ``finalize``) from files written into ``folder`` (a text, or a size in bytes of random data);
without ``parent`` it is a new dataset. ``retrain`` clones a task (``Task.clone``) and runs the training
script on the clone as clearml-agent does (``CLEARML_TASK_ID`` set; ``Task.init`` inside attaches to the
clone and ``Dataset.get`` picks the newest version), then marks it completed as the agent does when
the script exits 0. Each prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def version(spec: dict[str, Any]) -> dict[str, Any]:
    from clearml import Dataset

    folder = Path(spec["folder"])
    for rel, content in spec["files"].items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, int):
            path.write_bytes(os.urandom(content))
        else:
            path.write_text(content)
    ds = Dataset.create(
        dataset_project=spec["project"],
        dataset_name=spec["name"],
        dataset_version=spec.get("version"),
        parent_datasets=[spec["parent"]] if spec.get("parent") else None,
        dataset_tags=spec.get("tags"),
    )
    ds.add_files(path=str(folder))
    ds.upload(show_progress=False, chunk_size=spec.get("chunk_size_mb"))
    ds.finalize()
    entries = {p: e.hash for p, e in ds.file_entries_dict.items()}
    own = sorted({e.artifact_name for e in ds.file_entries_dict.values() if e.parent_dataset_id == ds.id})
    return {"id": ds.id, "version": ds.version, "files": entries, "own_chunks": own}


def retrain(spec: dict[str, Any]) -> dict[str, Any]:
    from clearml import Task

    clone = Task.clone(source_task=spec["source_task"], name=spec["name"])
    env = {**os.environ, "CLEARML_TASK_ID": clone.id}
    report = Path(spec["workdir"]) / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            spec["train_script"],
            "--out-dir",
            str(Path(spec["workdir"]) / "out"),
            "--report",
            str(report),
        ],
        env=env,
        cwd=spec["workdir"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    task = Task.get_task(task_id=clone.id)
    task.mark_completed(force=True)  # what clearml-agent does when the script exits 0
    made = json.loads(report.read_text())
    return {
        "id": clone.id,
        "dataset_id": made["dataset_id"],
        "models": {kind: m["id"] for kind, m in made["models"].items()},
        "model_files": {kind: m["path"] for kind, m in made["models"].items()},
    }


def main() -> int:
    what, spec = sys.argv[1], json.loads(sys.argv[2])
    out = {"version": version, "retrain": retrain}[what](spec)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
