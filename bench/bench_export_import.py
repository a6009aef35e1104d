# SPDX-License-Identifier: GPL-3.0-or-later
"""Export / transfer / import figures on the seeded demo deployment, against plain baselines in the same run.

    PYTHONPATH=tools:collections .venv/bin/python bench/bench_export_import.py [--workdir DIR]

Starts a dev and a site server (the project's local server), seeds dev, then measures:
- export (clearml_export core) vs the baseline `tar` of the dev server's whole data directory;
- a second export of unchanged dev (must write nothing) vs the first;
- the partial bundle a site needs after one model changed in dev vs the full bundle;
- import (clearml_import core) into an empty site, and a second import (a no-op).
Prints seconds, bytes and ratios; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "tools"), str(REPO / "tests")]

from d2s_servers import run_seed, start_local_server  # noqa: E402

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle  # noqa: E402
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._export import ExportCore  # noqa: E402
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._import import ImportCore  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=None)
    work = parser.parse_args().workdir or Path(tempfile.mkdtemp(prefix="d2s-bench-"))
    dev = start_local_server(work / "dev")
    site = start_local_server(work / "site")
    try:
        seed, t_seed = timed(lambda: run_seed(dev, work))
        params = {
            **dev.module_args(),
            "validate_certs": True,
            "ca_path": None,
            "serving_id": seed["serving"]["id"],
            "dest": str(work / "bundle"),
            "endpoints": [],
            "include_events": True,
            "include_code": True,
            "redact": True,
            "redact_patterns": [],
            "signing_key": None,
        }
        first, t_export = timed(lambda: ExportCore(params).run())
        second, t_export2 = timed(lambda: ExportCore(params).run())
        bundle_bytes = dir_bytes(work / "bundle")
        _, t_tar = timed(
            lambda: subprocess.run(["tar", "-cf", str(work / "dev.tar"), "-C", str(work), "dev"], check=True)
        )
        tar_bytes = (work / "dev.tar").stat().st_size

        iparams = {
            **site.module_args(),
            "validate_certs": True,
            "ca_path": None,
            "bundle": str(work / "bundle"),
            "site_name": "bench",
            "on_clash": "fail",
            "require_signature": False,
            "public_key": None,
            "import_info_path": str(work / "import_info.json"),
        }
        imported, t_import = timed(lambda: ImportCore(iparams).run())
        again, t_import2 = timed(lambda: ImportCore(iparams).run())

        # A site that holds every blob of this bundle, after dev retrains one model: what must cross?
        site_digests = list(json.loads((work / "bundle" / "manifest.json").read_text())["blobs"])
        control = bundle.load_bundle(work / "bundle")
        model_blob = next(iter(control.manifest.data["models"].values()))["files"][0]["blob"]
        changed_digests = [d for d in site_digests if d != model_blob]
        partial = bundle.missing_blobs(control.manifest, changed_digests)
        partial_bytes = sum(control.manifest.blobs[d]["size"] for d in partial)

        rows = [
            ("seed (SDK + CLI)", t_seed, None),
            ("export", t_export, bundle_bytes),
            ("baseline: tar of the dev data dir", t_tar, tar_bytes),
            ("export again (unchanged)", t_export2, second["bytes"].get("downloaded")),
            ("import into an empty site", t_import, None),
            ("import again (no-op)", t_import2, None),
        ]
        for name, secs, size in rows:
            print(f"{name:40} {secs:8.2f} s" + (f" {size:>12,} B" if size is not None else ""))
        print(
            f"export/tar time ratio {t_export / t_tar:.2f}, bundle/tar size ratio {bundle_bytes / tar_bytes:.2f}"
        )
        print(
            f"second export wrote blobs: {second['changed']} (digest equal: {first['digest'] == second['digest']})"
        )
        print(f"import created {imported['created']}; second import changed: {again['changed']}")
        print(
            f"one changed model: {len(partial)} blob(s), {partial_bytes:,} B cross vs {bundle_bytes:,} B full "
            f"({partial_bytes / bundle_bytes:.3f})"
        )
    finally:
        dev.stop()
        site.stop()


if __name__ == "__main__":
    main()
