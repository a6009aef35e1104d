# SPDX-License-Identifier: GPL-3.0-or-later
"""Create the ``iris-like`` dataset chain with the clearml SDK, as a data engineer would.

Run as its own process (``python -m d2s_tools.seed.dataset_flow PLAN RESULT``) with the target server in
the environment. ``PLAN`` is the JSON written by :func:`d2s_tools.seed.synth.write_versions`; ``RESULT``
receives, per version, the dataset id, its parents, the SDK's file entries and its chunk artifacts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _entries(dataset: Any) -> dict[str, dict[str, Any]]:
    return {
        path: {
            "sha256": entry.hash,
            "size": entry.size,
            "parent_dataset_id": entry.parent_dataset_id,
            "artifact_name": entry.artifact_name,
        }
        for path, entry in sorted(dataset.file_entries_dict.items())
    }


def create_chain(plan: dict[str, Any]) -> dict[str, Any]:
    from clearml import Dataset  # noqa: PLC0415  (the SDK is only needed in this subprocess)

    results: list[dict[str, Any]] = []
    parent_id: str | None = None
    for step in plan["versions"]:
        dataset = Dataset.create(
            dataset_name=plan["name"],
            dataset_project=plan["project"],
            dataset_version=step["version"],
            dataset_tags=plan["tags"],
            parent_datasets=[parent_id] if parent_id else None,
            description=f"iris-like {step['version']}: synthetic measurements",
        )
        for relative in step["removed"]:
            if not dataset.remove_files(relative):
                raise RuntimeError(f"remove_files({relative!r}) removed nothing in {dataset.id}")
        dataset.add_files(path=step["add_folder"])
        dataset.upload(chunk_size=plan["chunk_size_mb"], show_progress=False)
        dataset.finalize()
        if step["publish"]:
            dataset.publish()

        entries = _entries(dataset)
        expected = step["files"]
        if sorted(entries) != sorted(expected):
            raise RuntimeError(f"dataset {step['version']}: files {sorted(entries)} != {sorted(expected)}")
        for path, entry in entries.items():
            if entry["sha256"] != expected[path]["sha256"]:
                raise RuntimeError(f"dataset {step['version']}: SDK hash of {path} differs from the file")
        chunks = sorted({entry["artifact_name"] for entry in entries.values() if entry["parent_dataset_id"]})
        own_chunks = sorted(
            {e["artifact_name"] for e in entries.values() if e["parent_dataset_id"] == dataset.id}
        )
        results.append(
            {
                "id": dataset.id,
                "version": step["version"],
                "parents": [parent_id] if parent_id else [],
                "dependency_graph": dataset.get_dependency_graph(),
                "published": bool(step["publish"]),
                "entries": entries,
                "chunks_referenced": chunks,
                "own_chunks": own_chunks,
            }
        )
        parent_id = dataset.id
    return {"versions": results}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m d2s_tools.seed.dataset_flow PLAN.json RESULT.json", file=sys.stderr)
        return 2
    plan = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    result = create_chain(plan)
    Path(args[1]).write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
