# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m d2s_tools.seed --out seed.json [--workdir DIR]``: seed a ClearML server.

The target server comes from the environment: ``CLEARML_API_HOST``, ``CLEARML_WEB_HOST``,
``CLEARML_FILES_HOST``, ``CLEARML_API_ACCESS_KEY``, ``CLEARML_API_SECRET_KEY``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .build import build
from .runner import FlowError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m d2s_tools.seed",
        description="Seed a ClearML server with the d2s demo deployment (dataset chain, training runs, "
        "models, clearml-serving service) through the real clearml SDK and clearml-serving CLI.",
        epilog="The server is taken from CLEARML_API_HOST, CLEARML_WEB_HOST, CLEARML_FILES_HOST, "
        "CLEARML_API_ACCESS_KEY and CLEARML_API_SECRET_KEY.",
    )
    parser.add_argument("--out", type=Path, default=Path("seed.json"), help="where to write seed.json")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="working directory for data, the git repository, model files and logs "
        "(default: a new temporary directory, kept)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="d2s-seed-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"seeding {workdir}", flush=True)
    try:
        seed = build(workdir, log=lambda line: print(line, flush=True))
    except FlowError as error:
        print(f"seed failed: {error}", file=sys.stderr)
        print(f"logs: {workdir / 'logs'}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(seed, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out} in {seed['timing']['total']:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
