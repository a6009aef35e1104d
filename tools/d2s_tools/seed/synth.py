# SPDX-License-Identifier: GPL-3.0-or-later
"""Deterministic synthetic data for the ``iris-like`` dataset and its three versions.

``write_versions(root)`` writes three folders under ``root`` that the dataset flow feeds to the SDK:

- ``v1/``: the full first version (train CSVs per class, a test CSV, labels, a README, a ~2.5 MiB binary
  that needs a chunk of its own, and a calibration file that v2 removes);
- ``v2-add/``: only the files v2 adds (one in a new nested subfolder); v2 also removes one v1 file;
- ``v3-mod/``: the file v3 changes (same relative path, new content).

It returns the plan: per version the operations and the expected complete file list with sha256 and
size. Byte-for-byte identical on every run (fixed RNG seed, fixed float formatting).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import spec

# Per-class feature means and spreads, roughly those of Fisher's iris.
_MEANS = np.array([[5.0, 3.4, 1.5, 0.25], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.5, 2.0]])
_SPREADS = np.array([[0.35, 0.38, 0.17, 0.10], [0.50, 0.31, 0.47, 0.20], [0.63, 0.32, 0.55, 0.27]])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _samples(rng: np.random.Generator, label: int, count: int) -> np.ndarray:
    values = rng.normal(_MEANS[label], _SPREADS[label], size=(count, len(spec.FEATURES)))
    return np.clip(values, 0.1, None)


def _csv(rows: list[tuple[np.ndarray, int]]) -> str:
    lines = [",".join([*spec.FEATURES, "label"])]
    for values, label in rows:
        lines.append(",".join(f"{v:.2f}" for v in values) + f",{spec.CLASSES[label]}")
    return "\n".join(lines) + "\n"


def _mixed(rng: np.random.Generator, per_class: int) -> list[tuple[np.ndarray, int]]:
    rows = [(values, label) for label in range(3) for values in _samples(rng, label, per_class)]
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def _write(root: Path, relative: str, content: str | bytes) -> None:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        target.write_text(content, encoding="utf-8")
    else:
        target.write_bytes(content)


def _tree(root: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(root).as_posix(): {"sha256": sha256_file(path), "size": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def build_contents() -> dict[str, dict[str, str | bytes]]:
    """The content of every file of every step, generated from the fixed seed."""
    rng = np.random.default_rng(spec.DATA_SEED)
    v1: dict[str, str | bytes] = {}
    for label, name in enumerate(spec.CLASSES):
        v1[f"train/{name}.csv"] = _csv([(values, label) for values in _samples(rng, label, 40)])
    v1["test/test.csv"] = _csv(_mixed(rng, 10))
    v1["meta/labels.json"] = json.dumps({"classes": spec.CLASSES, "features": spec.FEATURES}, indent=2) + "\n"
    v1["README.md"] = (
        "# iris-like\n\nSynthetic iris-like measurements (4 features, 3 classes) made by the d2s seed.\n"
    )
    v1[spec.V2_REMOVED] = "sensor gain 1.000\nsensor offset 0.000\n"
    v1[spec.BIG_FILE] = rng.bytes(spec.BIG_FILE_SIZE)

    v2_add: dict[str, str | bytes] = {
        "train/extra/batch-002.csv": _csv(_mixed(rng, 12)),
        "test/holdout.csv": _csv(_mixed(rng, 5)),
    }
    labels = {
        "classes": spec.CLASSES,
        "features": spec.FEATURES,
        "descriptions": {
            "setosa": "small petals",
            "versicolor": "medium petals",
            "virginica": "large petals",
        },
    }
    v3_mod: dict[str, str | bytes] = {spec.V3_MODIFIED: json.dumps(labels, indent=2) + "\n"}
    return {"v1": v1, "v2-add": v2_add, "v3-mod": v3_mod}


def write_versions(root: Path) -> dict[str, Any]:
    """Write the three input folders under ``root`` and return the dataset plan."""
    contents = build_contents()
    for step, files in contents.items():
        for relative, content in sorted(files.items()):
            _write(root / step, relative, content)

    v1_files = _tree(root / "v1")
    v2_added = _tree(root / "v2-add")
    v3_modified = _tree(root / "v3-mod")
    v2_files = {k: v for k, v in v1_files.items() if k != spec.V2_REMOVED} | v2_added
    v3_files = v2_files | v3_modified
    return {
        "project": spec.PROJECT,
        "name": spec.DATASET_NAME,
        "tags": spec.DATASET_TAGS,
        "chunk_size_mb": spec.CHUNK_SIZE_MB,
        "versions": [
            {
                "version": spec.DATASET_VERSIONS[0],
                "add_folder": str(root / "v1"),
                "added": sorted(v1_files),
                "removed": [],
                "modified": [],
                "files": dict(sorted(v1_files.items())),
                "publish": False,
            },
            {
                "version": spec.DATASET_VERSIONS[1],
                "add_folder": str(root / "v2-add"),
                "added": sorted(v2_added),
                "removed": [spec.V2_REMOVED],
                "modified": [],
                "files": dict(sorted(v2_files.items())),
                "publish": False,
            },
            {
                "version": spec.DATASET_VERSIONS[2],
                "add_folder": str(root / "v3-mod"),
                "added": [],
                "removed": [],
                "modified": sorted(v3_modified),
                "files": dict(sorted(v3_files.items())),
                "publish": True,
            },
        ],
    }
