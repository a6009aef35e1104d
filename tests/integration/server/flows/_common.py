# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the SDK flow scripts: result file, hashes, and a watch on the SDK's parse warnings.

Every flow runs in its own interpreter (the SDK keeps process-global state) and writes one JSON
document to the path given as its first argument. ``parse_warnings`` collects the SDK's
"Failed parsing response" warnings: the SDK logs them when a reply does not match its typed schema and
then carries on with ``None``, so a flow that "works" may still hide a wrong reply type.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _Watch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Failed parsing" in message or "Response data mismatch" in message:
            self.messages.append(message)


WATCH = _Watch()
for _name in ("", "clearml"):
    logging.getLogger(_name).addHandler(WATCH)


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_hashes(root: str | Path) -> dict[str, str]:
    root = Path(root)
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def probe(func: Callable[[], Any]) -> Any:
    """Run one read-back probe; an exception becomes {"error": traceback} instead of ending the flow."""
    try:
        return func()
    except Exception:
        return {"error": traceback.format_exc()}


def emit(result: dict[str, Any]) -> None:
    result["parse_warnings"] = list(WATCH.messages)
    out = Path(sys.argv[1])
    out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
