# SPDX-License-Identifier: GPL-3.0-or-later
"""Dataset flow: a parent version (uploaded in several chunks, finalized, published) and a child version
that adds and removes files, also uploaded in several 1 MB chunks.

Usage: datasets.py OUT.json WORKDIR
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from _common import emit, tree_hashes
from clearml import Dataset

PROJECT = "D2S Server/Data"
NAME = "iris sample"

work = Path(sys.argv[2])
rng = random.Random(42)


def write_files(root: Path, names: list[str], size: int) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))  # random: the zip chunks cannot compress them


parent_dir, child_dir = work / "parent", work / "child"
write_files(parent_dir, ["a/file0.bin", "a/file1.bin", "b/file2.bin", "b/file 3.bin"], 700_000)
write_files(child_dir, ["c/new0.bin", "c/new1.bin", "a/file1.bin"], 600_000)  # a/file1.bin is modified

parent = Dataset.create(dataset_name=NAME, dataset_project=PROJECT, dataset_tags=["raw"])
parent.add_files(str(parent_dir))
parent.upload(chunk_size=1, show_progress=False)
parent.finalize()
parent.publish()

child = Dataset.create(
    dataset_name=NAME, dataset_project=PROJECT, parent_datasets=[parent.id], dataset_tags=["v2"]
)
child.add_files(str(child_dir))
removed = child.remove_files("a/file0.bin")
child.upload(chunk_size=1, show_progress=False)
child.finalize()

expected = tree_hashes(parent_dir)
expected.pop("a/file0.bin")
expected.update(tree_hashes(child_dir))
emit(
    {
        "project": PROJECT,
        "name": NAME,
        "parent_id": parent.id,
        "parent_version": parent.version,
        "child_id": child.id,
        "child_version": child.version,
        "removed": removed,
        "parent_files": tree_hashes(parent_dir),
        "child_files": expected,
    }
)
