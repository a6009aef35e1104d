# SPDX-License-Identifier: GPL-3.0-or-later
"""Read back, with the clearml SDK only, everything ``seed.json`` says the seed made; dump it as JSON.

Run in a fresh process (own HOME/cache): ``python readback.py SEED_JSON OUT_JSON``. Each probe is
recorded separately (value or error text) so that one failing probe does not hide the others.
"""

from __future__ import annotations

import hashlib
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree(root: Path) -> dict[str, dict[str, Any]]:
    if root.is_file():
        return {root.name: {"sha256": sha256_file(root), "size": root.stat().st_size, "path": str(root)}}
    return {
        p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size, "path": str(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def probe(out: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    try:
        out[name] = fn()
    except Exception:
        out[name] = {"error": traceback.format_exc()}


def plain(value: Any) -> Any:
    """Make SDK values JSON-friendly."""
    return json.loads(json.dumps(value, default=str))


def read_dataset(seed: dict[str, Any]) -> dict[str, Any]:
    from clearml import Dataset, Task

    out: dict[str, Any] = {}
    ds_seed = seed["dataset"]
    probe(
        out,
        "listed",
        lambda: plain(
            Dataset.list_datasets(
                dataset_project=ds_seed["project"], partial_name=ds_seed["name"], only_completed=False
            )
        ),
    )
    versions = {}
    for record in ds_seed["versions"]:
        info: dict[str, Any] = {}
        dataset = Dataset.get(dataset_id=record["id"])
        probe(info, "version", lambda d=dataset: d.version)
        probe(info, "name", lambda d=dataset: d.name)
        probe(info, "project", lambda d=dataset: d.project)
        probe(info, "is_final", lambda d=dataset: d.is_final())
        probe(info, "status", lambda r=record: Task.get_task(task_id=r["id"]).get_status())
        probe(info, "dependency_graph", lambda d=dataset: d.get_dependency_graph())
        probe(info, "files", lambda d=dataset: sorted(d.list_files()))
        probe(
            info,
            "entries",
            lambda d=dataset: {
                path: {"sha256": e.hash, "size": e.size, "parent_dataset_id": e.parent_dataset_id}
                for path, e in d.file_entries_dict.items()
            },
        )
        probe(
            info,
            "chunk_artifacts",
            lambda r=record: sorted(
                k for k in Task.get_task(task_id=r["id"]).artifacts if k.startswith("data")
            ),
        )
        versions[record["id"]] = info
    out["versions"] = versions
    latest = ds_seed["versions"][-1]["id"]
    probe(
        out,
        "latest_by_name",
        lambda: Dataset.get(dataset_project=ds_seed["project"], dataset_name=ds_seed["name"]).id,
    )
    probe(out, "local_copy", lambda: tree(Path(Dataset.get(dataset_id=latest).get_local_copy())))
    return out


def read_task(record: dict[str, Any]) -> dict[str, Any]:
    from clearml import StorageManager, Task

    task = Task.get_task(task_id=record["id"])
    out: dict[str, Any] = {}
    probe(out, "name", lambda: task.name)
    probe(out, "project", task.get_project_name)
    probe(out, "status", task.get_status)
    probe(out, "tags", lambda: list(task.get_tags() or []))
    probe(out, "script", lambda: plain(task.data.script.to_dict()))
    probe(out, "parameters", lambda: plain(task.get_parameters()))
    probe(out, "container", lambda: plain(task.data.container))
    probe(out, "runtime", lambda: plain(task.data.runtime))
    probe(out, "scalars", lambda: plain(task.get_reported_scalars()))
    probe(out, "console", lambda: list(task.get_reported_console_output(number_of_reports=200)))
    probe(out, "plots", lambda: [(p.get("metric"), p.get("variant")) for p in task.get_reported_plots()])
    probe(
        out,
        "debug_images",
        lambda: [
            {**s, "sha256": sha256_file(Path(StorageManager.get_local_copy(s["url"])))}
            for s in task.get_debug_samples("confusion", "heatmap")
        ],
    )
    probe(
        out,
        "artifacts",
        lambda: {
            key: {"type": a.type, "hash": a.hash, "url": a.url, "size": a.size}
            for key, a in task.artifacts.items()
        },
    )
    probe(out, "artifact_dict", lambda: plain(task.artifacts["training_summary"].get()))
    probe(
        out,
        "artifact_file",
        lambda: sha256_file(Path(task.artifacts["confusion_matrix"].get_local_copy())),
    )
    probe(out, "output_models", lambda: sorted(m.id for m in task.models["output"]))
    return out


def read_model(model_id: str) -> dict[str, Any]:
    from clearml import Model

    model = Model(model_id=model_id)
    out: dict[str, Any] = {}
    probe(out, "name", lambda: model.name)
    probe(out, "framework", lambda: model.framework)
    probe(out, "task", lambda: model.task)
    probe(out, "labels", lambda: plain(model.labels))
    probe(out, "tags", lambda: list(model.tags or []))
    probe(out, "system_tags", lambda: list(model.system_tags or []))
    probe(out, "config", lambda: plain(model.config_dict))
    probe(out, "metadata", lambda: plain(model.get_all_metadata()))
    probe(out, "url", lambda: model.url)
    probe(out, "files", lambda: model_files(model))
    return out


def model_files(model: Any) -> dict[str, dict[str, Any]]:
    """Files of a model's local copy; a single file is keyed by the name in its URL (the cache
    prefixes the local file name with a hash)."""
    local = Path(model.get_local_copy())
    if local.is_dir():
        return tree(local)
    name = unquote(urlsplit(model.url).path.rsplit("/", 1)[-1])
    return {name: tree(local)[local.name]}


def read_service(service: dict[str, Any]) -> dict[str, Any]:
    from clearml import Task

    task = Task.get_task(task_id=service["id"])
    out: dict[str, Any] = {}
    probe(out, "name", lambda: task.name)
    probe(out, "project", task.get_project_name)
    probe(out, "type", lambda: str(task.task_type))
    probe(out, "system_tags", lambda: list(task.get_system_tags() or []))
    for name in ("endpoints", "canary", "metric_logging", "model_monitoring"):
        probe(out, name, lambda n=name: plain(task.get_configuration_object_as_dict(n)))
    probe(
        out,
        "artifacts",
        lambda: {
            key: {"hash": a.hash, "sha256": sha256_file(Path(a.get_local_copy(extract_archive=False)))}
            for key, a in task.artifacts.items()
        },
    )
    probe(out, "input_models", lambda: {m.name: m.id for m in task.models["input"]})
    return out


def main() -> int:
    seed = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    result = {
        "dataset": read_dataset(seed),
        "tasks": {key: read_task(record) for key, record in seed["tasks"].items()},
        "models": {key: read_model(record["id"]) for key, record in seed["models"].items()},
        "serving": read_service(seed["serving"]),
    }
    Path(sys.argv[2]).write_text(json.dumps(result, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
