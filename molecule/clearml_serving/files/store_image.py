# SPDX-License-Identifier: GPL-3.0-or-later
"""Prepare fixture of the clearml_serving scenario: the inference image as blobs + a record.

``docker save`` of the image split into ``STORE/blobs/sha256/<digest>`` and its record (the bundle
manifest's ``images[]`` shape) written to ``STORE/serving-image.json``, by the collection's own
``_images.export_images``: what a bundle carries, without the rest of a bundle.

    python store_image.py IMAGE STORE
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._images import export_images


def main() -> int:
    image, store = sys.argv[1], Path(sys.argv[2]).resolve()
    blobs = store / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    work = store / "tmp"
    work.mkdir(exist_ok=True)

    def put_file(path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        dest = blobs / digest.hexdigest()
        size = path.stat().st_size
        if not dest.exists():
            os.replace(path, dest)
        return digest.hexdigest(), size

    (record,) = export_images([image], put_file, work)
    work.rmdir()
    (store / "serving-image.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    print(json.dumps({"id": record["id"], "size": record["size"], "members": len(record["members"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
