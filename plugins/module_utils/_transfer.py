# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The core of ``bundle_store``: differential transfer through a site's blob store, and rollback.

Private to this collection: not a public API, may change without notice.

Rollback: ``assembled`` keeps the bundle it replaces at ``<dest>.previous``. ``rolled_back`` verifies
that previous bundle, then swaps the two directories (one ``renameat2(RENAME_EXCHANGE)`` where the
kernel offers it, else three renames that the next run completes after a crash), so the site never
lacks a verified current bundle. A swap undoes itself when repeated, so the intent is recorded first in
``<dest>.rollback.json`` (``{"from": <digest rolled back from>, "to": <digest rolled back to>}``): a
second ``rolled_back`` finds the site already rolled back and changes nothing; ``rolled_forward`` swaps
back only from that recorded state; a new ``assembled`` bundle drops the record.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import fsync_dir
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _content_digest(path: Path) -> str | None:
    try:
        return bundle.content_digest(json.loads((path / bundle.MANIFEST_NAME).read_bytes()))
    except (OSError, ValueError):
        return None


def previous_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".previous")


def record_of(dest: Path) -> Path:
    """The rollback record beside ``dest``: which digest was rolled back from, and to."""
    return dest.with_name(dest.name + ".rollback.json")


def _swap_name(dest: Path) -> Path:
    return dest.with_name(dest.name + ".swapping")


def _read_record(dest: Path) -> dict[str, Any]:
    try:
        data = json.loads(record_of(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(dest: Path, data: dict[str, Any]) -> None:
    path = record_of(dest)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2``); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap_dirs(dest: Path, previous: Path) -> None:
    """``dest`` ⇄ ``previous``. Without an atomic exchange: dest → .swapping, previous → dest,
    .swapping → previous; ``recover_swap`` finishes an interrupted sequence."""
    if _exchange(dest, previous):
        fsync_dir(dest.parent)
        return
    tmp = _swap_name(dest)
    os.rename(dest, tmp)
    os.rename(previous, dest)
    os.rename(tmp, previous)
    fsync_dir(dest.parent)


def recover_swap(dest: Path) -> None:
    """Finish a swap cut between its renames (only the non-atomic path leaves ``.swapping``)."""
    tmp, previous = _swap_name(dest), previous_of(dest)
    if not os.path.lexists(tmp):
        return
    if not os.path.lexists(dest):  # cut after the first rename: nothing swapped yet
        os.rename(tmp, dest)
    elif not os.path.lexists(previous):  # cut after the second: finish it
        os.rename(tmp, previous)


def _blob_names(path: Path) -> set[str]:
    blobs = path / "blobs" / "sha256"
    return {p.name for p in blobs.iterdir()} if blobs.is_dir() else set()


class TransferCore:
    def __init__(self, params: dict[str, Any], check_mode: bool = False, diff: bool = False) -> None:
        self.p = params
        self.check_mode = check_mode
        self.diff = diff

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
        recover_swap(dest)
        previous = None
        if os.path.lexists(dest):
            previous = previous_of(dest)
            if os.path.lexists(previous):
                shutil.rmtree(previous)
            os.rename(dest, previous)
        os.rename(staging, dest)
        # A new bundle ends any rollback: the record only describes the pair it swapped.
        record_of(dest).unlink(missing_ok=True)
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

    # -- rollback ------------------------------------------------------------------------------------
    def _rolled_back(self) -> dict[str, Any]:
        return self._swap(forward=False)

    def _rolled_forward(self) -> dict[str, Any]:
        return self._swap(forward=True)

    def _swap(self, forward: bool) -> dict[str, Any]:
        dest = Path(self.p["dest"])
        previous = previous_of(dest)
        if not self.check_mode:
            recover_swap(dest)
        current, before = _content_digest(dest), _content_digest(previous)
        record = _read_record(dest)
        rolled_back = bool(record) and record.get("to") == current and record.get("from") == before
        result: dict[str, Any] = {
            "path": str(dest),
            "previous": str(previous),
            "record": str(record_of(dest)),
        }
        if (not forward and rolled_back) or (forward and not rolled_back):
            result.update(content_digest=current, previous_digest=before, rolled_back=rolled_back)
            result["msg"] = (
                f"already rolled back from {before} to {current}"
                if rolled_back
                else "not rolled back: nothing to roll forward (the current bundle is the newest one assembled)"
            )
            return {"changed": False, **result, **self._diff(current, before, current, before)}
        if before is None:
            raise ClearmlModuleError(
                f"No previous bundle to roll back to: '{previous}' does not exist or holds no readable "
                "manifest (a site keeps one only once a second bundle was assembled there).",
                **result,
                content_digest=current,
            )
        keys = self.p.get("public_key") or None
        try:
            bundle.verify_bundle(previous, require_signature=self.p["require_signature"], public_key=keys)
        except bundle.BundleError as exc:
            raise ClearmlModuleError(
                f"The previous bundle '{previous}' failed verification, so the current one stays: {exc}",
                **result,
                content_digest=current,
            ) from None
        result.update(
            content_digest=before,
            previous_digest=current,
            rolled_back=not forward,
            **self._diff(current, before, before, current),
        )
        if not self.check_mode:
            if forward:
                record_of(dest).unlink(missing_ok=True)
            else:
                # The intent first: a run cut after the swap then finds the site already rolled back.
                _write_record(
                    dest,
                    {"from": current, "to": before, "on": datetime.now(UTC).isoformat(timespec="seconds")},
                )
            try:
                if os.path.lexists(dest):
                    swap_dirs(dest, previous)
                else:  # no current bundle at all: the verified previous one becomes it
                    os.rename(previous, dest)
            except OSError as exc:
                raise ClearmlModuleError(
                    f"Cannot swap '{dest}' and '{previous}': {exc.strerror or exc}", **result
                ) from None
        return {"changed": True, **result}

    def _diff(
        self, cur: str | None, prev: str | None, new_cur: str | None, new_prev: str | None
    ) -> dict[str, Any]:
        if not self.diff:
            return {}
        return {
            "diff": {
                "before": {"current": cur, "previous": prev},
                "after": {"current": new_cur, "previous": new_prev},
            }
        }
