# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The core of ``bundle_store``: differential transfer through a site's blob store.

Private to this collection: not a public API, may change without notice.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle


def _content_digest(path: Path) -> str | None:
    try:
        return bundle.content_digest(json.loads((path / bundle.MANIFEST_NAME).read_bytes()))
    except (OSError, ValueError):
        return None


def _blob_names(path: Path) -> set[str]:
    blobs = path / "blobs" / "sha256"
    return {p.name for p in blobs.iterdir()} if blobs.is_dir() else set()


class TransferCore:
    def __init__(self, params: dict[str, Any], check_mode: bool = False) -> None:
        self.p = params
        self.check_mode = check_mode

    def run(self) -> dict[str, Any]:
        return getattr(self, "_" + self.p["state"])()

    def _digests(self) -> dict[str, Any]:
        root = Path(self.p["path"])
        if not (root / "blobs" / "sha256").is_dir():
            if self.check_mode:
                return {"changed": True, "digests": [], "count": 0}
            bundle.BlobStore(root)
            return {"changed": True, "digests": [], "count": 0}
        store = bundle.BlobStore(root, create=False)
        digests = store.digests()
        return {"changed": False, "digests": digests, "count": len(digests)}

    def _partial(self) -> dict[str, Any]:
        src, dest = Path(self.p["src"]), Path(self.p["dest"])
        control = bundle.load_bundle(src)
        wanted = set(bundle.missing_blobs(control.manifest, self.p["site_digests"]))
        digest = control.manifest.content_digest
        size = sum(control.manifest.blobs[d]["size"] for d in wanted)
        same = _content_digest(dest) == digest and _blob_names(dest) == wanted
        result = {
            "content_digest": digest,
            "blobs": len(wanted),
            "bytes": size,
            "skipped_blobs": len(control.manifest.blobs) - len(wanted),
            "path": str(dest),
        }
        if same:
            return {"changed": False, **result}
        if not self.check_mode:
            if os.path.lexists(dest):
                shutil.rmtree(dest)
            bundle.make_partial_bundle(src, self.p["site_digests"], dest)
        return {"changed": True, **result}

    def _assembled(self) -> dict[str, Any]:
        src, dest, store_root = Path(self.p["src"]), Path(self.p["dest"]), Path(self.p["path"])
        keys = self.p.get("public_key") or None
        control = bundle.load_bundle(src)
        digest = control.manifest.content_digest
        if _content_digest(dest) == digest:
            try:
                bundle.verify_bundle(dest, require_signature=self.p["require_signature"], public_key=keys)
                return {"changed": False, "content_digest": digest, "blobs": 0, "path": str(dest)}
            except bundle.BundleError:
                pass  # damaged: assemble again
        if self.check_mode:
            return {
                "changed": True,
                "content_digest": digest,
                "blobs": len(_blob_names(src)),
                "path": str(dest),
            }
        store = bundle.BlobStore(store_root)
        staging = dest.with_name(dest.name + ".assembling")
        if os.path.lexists(staging):
            shutil.rmtree(staging)
        summary = bundle.assemble_bundle(
            src, store, staging, require_signature=self.p["require_signature"], public_key=keys, ingest=True
        )
        previous = None
        if os.path.lexists(dest):
            previous = dest.with_name(dest.name + ".previous")
            if os.path.lexists(previous):
                shutil.rmtree(previous)
            os.rename(dest, previous)
        os.rename(staging, dest)
        result = {
            "changed": True,
            "content_digest": digest,
            "blobs": summary.get("from_partial", 0),
            "from_store": summary.get("from_store", 0),
            "ingested": summary.get("ingested", 0),
            "path": str(dest),
        }
        if previous:
            result["previous"] = str(previous)
        return result
