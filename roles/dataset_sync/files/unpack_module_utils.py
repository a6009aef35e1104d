# SPDX-License-Identifier: GPL-3.0-or-later
# Unpack {file name: source} (argv[1], JSON) into the directory argv[2]: write what differs, remove *.py
# files that are no longer listed; print one line per change (nothing when the directory is current).
from __future__ import annotations

import json
import os
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    sources = json.load(handle)
target = sys.argv[2]
os.makedirs(target, exist_ok=True)
for name, text in sorted(sources.items()):
    if os.sep in name or not name.endswith(".py"):
        raise SystemExit(f"refusing file name {name!r}")
    path = os.path.join(target, name)
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                continue
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print(f"wrote {name}")
for name in sorted(os.listdir(target)):
    if name.endswith(".py") and name not in sources:
        os.remove(os.path.join(target, name))
        print(f"removed {name}")
