# SPDX-License-Identifier: GPL-3.0-or-later
"""Ship a new version of one served model in the seeded dev deployment, the way an ML engineer does.

1. New weights for the endpoint's model (the seed's weights with a retuned bias, deterministic, and one
   that changes the answers) are uploaded to the dev fileserver and registered as a model with
   ``InputModel.import_model`` (the SDK);
2. the endpoint is pointed at the new model with ``clearml-serving model add`` (the real CLI), which
   replaces the endpoint's previous version.

Each step runs in its own process with its own HOME (``d2s_tools.seed.runner.flow_env``), against the
server named by the five ``CLEARML_*`` variables. Used by the e2e molecule scenario's side effect:
``python new_model_version.py --seed seed.json --endpoint iris_custom/2 --workdir W --out new_model.json``.
Prints one JSON line (also written to ``--out``): endpoint, old and new model ids, the new file's
sha256 and size, and ``inference``: the seed's request for the endpoint and the answer the new model
gives (computed as the seed computes its expected answers: the endpoint's own preprocess code with the
new weights, no server), which both sites must give after the redeploy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from d2s_tools.seed import expected, runner, serving, spec

_REGISTER = """
import json, sys
from clearml import InputModel, StorageManager
spec = json.loads(sys.argv[1])
url = StorageManager.upload_file(spec["file"], spec["remote"])
model = InputModel.import_model(
    weights_url=url, name=spec["name"], project=spec["project"], framework=spec["framework"],
    label_enumeration=spec["labels"], tags=spec["tags"],
)
print(json.dumps({"id": model.id, "url": url}))
"""


def _retuned(weights_file: Path, out: Path) -> Path:
    weights = json.loads(weights_file.read_text(encoding="utf-8"))
    # A different shift per class: a common one would leave the softmax, i.e. every answer, unchanged.
    weights["bias"] = [round(b + 0.05 * (i + 1), 6) for i, b in enumerate(weights["bias"])]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(weights, indent=2) + "\n", encoding="utf-8")
    return out


def _run(argv: list[str], env: dict[str, str], log: Path) -> str:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        raise SystemExit(
            f"{argv[0]} failed ({proc.returncode}), see {log}:\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    return proc.stdout


def new_version(seed: dict[str, Any], endpoint: str, workdir: Path) -> dict[str, Any]:
    ep = seed["serving"]["endpoints"][endpoint]
    old = seed["models"][ep["model_key"]]
    if old.get("package") or len(old["files"]) != 1:
        raise SystemExit(f"endpoint {endpoint}: only a single-file model can be retuned here")
    server = runner.server_env()
    new_file = _retuned(Path(old["local_path"]), workdir / "weights" / next(iter(old["files"])))
    request = {
        "file": str(new_file),
        "remote": f"{server['CLEARML_FILES_HOST']}/{seed['project']}/models/retuned/{new_file.name}",
        "name": f"{old['name']} (retuned)",
        "project": seed["project"],
        "framework": old["framework"],
        "labels": old["labels"],
        "tags": [*old["tags"], "retuned"],
    }
    out = _run(
        [sys.executable, "-c", _REGISTER, json.dumps(request)],
        runner.flow_env(server, workdir / "homes" / "register"),
        workdir / "register.log",
    )
    registered = json.loads(out.strip().splitlines()[-1])
    url, _, version = endpoint.partition("/")
    argv = [*serving.cli_prefix(), "--yes", "--id", seed["serving"]["id"], "model", "add"]
    argv += ["--engine", ep["engine_type"], "--endpoint", url, "--model-id", registered["id"]]
    if version:
        argv += ["--version", version]
    argv += ["--preprocess", str(spec.ASSETS_DIR / ep["preprocess_file"])]
    _run(argv, runner.flow_env(server, workdir / "homes" / "serving"), workdir / "serving.log")
    data = new_file.read_bytes()
    preprocess = spec.ASSETS_DIR / ep["preprocess_file"]
    answer = expected.custom_endpoint(new_file, preprocess, seed["inference"][endpoint]["request"])
    return {
        "endpoint": endpoint,
        "old_model": old["id"],
        "new_model": registered["id"],
        "url": registered["url"],
        "file": new_file.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "inference": {"request": answer["request"], "response": answer["response"]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, required=True, help="seed.json of the dev server")
    parser.add_argument("--endpoint", default="iris_custom/2", help="endpoint whose model gets a new version")
    parser.add_argument("--workdir", type=Path, required=True, help="new weights, HOMEs and logs")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON result is written")
    args = parser.parse_args(argv)
    seed = json.loads(args.seed.read_text(encoding="utf-8"))
    result = new_version(seed, args.endpoint, args.workdir)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
