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
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
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


PACK_DIR = "packs"
PACK_INDEX = "index.json"
_BLOB_MEMBER = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")


def _blob_names(path: Path) -> set[str]:
    blobs = path / "blobs" / "sha256"
    names = {p.name for p in blobs.iterdir()} if blobs.is_dir() else set()
    index = _pack_index(path)
    for digests in index.values():
        names.update(digests)
    return names


def _pack_index(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((path / PACK_DIR / PACK_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_packs(partial: Path, pack_size: int) -> dict[str, list[str]]:
    """Move the loose blobs of a partial bundle into tar packs of about ``pack_size`` bytes.

    A transfer then sends a few large files instead of one file per blob (every file sent costs a round
    trip or several over the Ansible connection, which dominated the push of image layers). Packing is
    deterministic (blobs in digest order, greedy up to ``pack_size``, a blob larger than that alone,
    tar members with mtime 0 and owner 0), so a repeated partial write makes the same packs and a resumed
    copy skips the packs that already arrived. ``packs/index.json`` lists each pack's digests.
    """
    blobs = partial / "blobs" / "sha256"
    digests = sorted(p.name for p in blobs.iterdir()) if blobs.is_dir() else []
    groups: list[list[str]] = []
    size = 0
    for digest in digests:
        blob_size = (blobs / digest).stat().st_size
        if not groups or (size + blob_size > pack_size and groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(digest)
        size += blob_size
    packs = partial / PACK_DIR
    packs.mkdir()
    index: dict[str, list[str]] = {}
    for n, group in enumerate(groups):
        name = f"pack-{n:04d}.tar"
        with tarfile.open(packs / name, "w", format=tarfile.PAX_FORMAT) as tar:
            for digest in group:
                info = tarfile.TarInfo(f"blobs/sha256/{digest}")
                info.size = (blobs / digest).stat().st_size
                info.mode = 0o644
                info.mtime = 0
                with open(blobs / digest, "rb") as f:
                    tar.addfile(info, f)
        index[name] = group
    (packs / PACK_INDEX).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    for digest in digests:
        (blobs / digest).unlink()
    return index


def unpack_packs(partial: Path) -> int:
    """Unpack ``packs/`` of a transferred partial bundle into its ``blobs/sha256`` (then drop the packs).

    Safe on untrusted input: only regular-file members named ``blobs/sha256/<hex digest>`` that the index
    lists for that pack are accepted, each is hashed while it is written and must match its name, and a
    pack must hold exactly what the index says. Anything else fails naming the pack, before assembly.
    """
    packs = partial / PACK_DIR
    if not packs.is_dir():
        return 0
    index = _pack_index(partial)
    if not index:
        raise ClearmlModuleError(f"{packs}: the pack index {PACK_INDEX} is missing or unreadable")
    on_disk = {p.name for p in packs.iterdir()} - {PACK_INDEX}
    if on_disk != set(index):
        raise ClearmlModuleError(
            f"{packs}: the packs present ({', '.join(sorted(on_disk)) or 'none'}) are not the packs the index "
            f"lists ({', '.join(sorted(index))}); the transfer is incomplete: run it again"
        )
    blobs = partial / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in sorted(index):
        expected = set(index[name])
        seen: set[str] = set()
        try:
            with tarfile.open(packs / name, "r:") as tar:
                for member in tar:
                    m = _BLOB_MEMBER.match(member.name)
                    if not m or not member.isreg() or m.group(1) not in expected or m.group(1) in seen:
                        raise ClearmlModuleError(f"{packs / name}: unexpected member '{member.name}'")
                    digest = m.group(1)
                    seen.add(digest)
                    target = blobs / digest
                    if target.exists():
                        continue
                    src = tar.extractfile(member)
                    if src is None:
                        raise ClearmlModuleError(f"{packs / name}: unreadable member '{member.name}'")
                    part = target.with_name(digest + ".part")
                    h = hashlib.sha256()
                    with open(part, "wb") as out:
                        for chunk in iter(lambda: src.read(1 << 20), b""):  # noqa: B023
                            h.update(chunk)
                            out.write(chunk)
                    if h.hexdigest() != digest:
                        part.unlink()
                        raise ClearmlModuleError(
                            f"{packs / name}: member '{member.name}' does not match its digest"
                        )
                    os.replace(part, target)
                    count += 1
        except (tarfile.TarError, OSError, io.UnsupportedOperation) as exc:
            raise ClearmlModuleError(
                f"{packs / name}: cannot read the pack ({exc}); the transfer is damaged: run it again"
            ) from None
        if seen != expected:
            raise ClearmlModuleError(
                f"{packs / name}: {len(expected - seen)} blobs the index lists are missing"
            )
    return count


def drop_packs(partial: Path) -> None:
    shutil.rmtree(partial / PACK_DIR, ignore_errors=True)


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
        pack_size = int(self.p.get("pack_size") or 0) * 1024 * 1024
        packed = (dest / PACK_DIR).is_dir()
        same = (
            _content_digest(dest) == digest
            and _blob_names(dest) == wanted
            and packed == (pack_size > 0 and bool(wanted))
        )
        result = {
            "content_digest": digest,
            "blobs": len(wanted),
            "bytes": size,
            "skipped_blobs": len(control.manifest.blobs) - len(wanted),
            "path": str(dest),
        }
        if same:
            return {"changed": False, "packs": len(_pack_index(dest)), **result}
        packs = 0
        if not self.check_mode:
            if os.path.lexists(dest):
                shutil.rmtree(dest)
            bundle.make_partial_bundle(src, self.p["site_digests"], dest)
            if pack_size > 0 and wanted:
                packs = len(write_packs(dest, pack_size))
        return {"changed": True, "packs": packs, **result}

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
        # Packs are unpacked (each member hashed against its name) and dropped before the assembly, which
        # accepts nothing the manifest does not list.
        unpack_packs(src)
        drop_packs(src)
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
