# SPDX-License-Identifier: GPL-3.0-or-later
"""Orchestrate the seed: data, dataset chain, code repository, two training runs, serving service.

Timeline (independent steps overlap; each SDK flow is its own process, see :mod:`.runner`)::

    synthetic data ─┬─ dataset flow (v1 → v2 → v3, publish v3) ──┬─ train seed 0 ─┬─ serving endpoints
                    ├─ git repository (file:// remote, local edit) ├─ train seed 1 ─┘   (CLI, in order)
                    └─ clearml-serving create ──────────────────────────────────────┘
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from . import expected, gitrepo, runner, serving, spec, synth
from .synth import sha256_file

FLOW_TIMEOUT = 600.0


def _clean(workdir: Path) -> dict[str, Path]:
    dirs = {name: workdir / name for name in ("data", "homes", "logs", "runs", "repo")}
    for path in dirs.values():
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    return dirs


def _file_record(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def _model_files(path: Path) -> dict[str, dict[str, Any]]:
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): _file_record(p) for p in sorted(path.rglob("*")) if p.is_file()
        }
    return {path.name: _file_record(path)}


def _dataset_record(plan: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    versions = []
    for step, made in zip(plan["versions"], result["versions"], strict=True):
        versions.append(
            {
                "id": made["id"],
                "version": step["version"],
                "parents": made["parents"],
                "dependency_graph": made["dependency_graph"],
                "published": step["publish"],
                "added": step["added"],
                "removed": step["removed"],
                "modified": step["modified"],
                "files": step["files"],
                "file_parents": {path: e["parent_dataset_id"] for path, e in made["entries"].items()},
                "own_chunks": made["own_chunks"],
            }
        )
    return {
        "project": plan["project"],
        "name": plan["name"],
        "tags": plan["tags"],
        "chunk_size_mb": plan["chunk_size_mb"],
        "big_file": {"path": spec.BIG_FILE, "size": spec.BIG_FILE_SIZE},
        "versions": versions,
    }


def _train_argv(seed: int, runs: Path) -> list[str]:
    out = runs / f"seed-{seed}"
    return [
        spec.TRAIN_SCRIPT,
        "--seed",
        str(seed),
        "--epochs",
        str(spec.TRAIN_EPOCHS),
        "--out-dir",
        str(out),
        "--report",
        str(runs / f"seed-{seed}.json"),
    ]


def _task_record(seed: int, report: dict[str, Any], repo: dict[str, Any], dataset_id: str) -> dict[str, Any]:
    secrets = {key: item["value"] for key, item in spec.PLANTED_SECRETS.items()}
    return {
        "id": report["task_id"],
        "name": spec.TASK_NAME,
        "project": spec.PROJECT,
        "seed": seed,
        "tags": [f"seed-{seed}"],
        "script": {
            "repository": repo["repository"],
            "branch": repo["branch"],
            "commit": repo["commit"],
            "entry_point": repo["entry_point"],
            "diff_contains": repo["uncommitted_line"],
        },
        "hyperparams": {
            "Args/seed": str(seed),
            "Args/epochs": str(spec.TRAIN_EPOCHS),
            "Args/lr": gitrepo.UNCOMMITTED_LEARNING_RATE,
            f"Datasets/{spec.DATASET_ALIAS}": dataset_id,
            "storage/aws_secret_access_key": secrets["hyperparam_aws_secret"],
        },
        "container": {
            "image": spec.BASE_DOCKER_IMAGE,
            "arguments_contain": f"CLEARML_AGENT_GIT_PASS={secrets['container_git_pass']}",
        },
        "input_dataset": {"alias": spec.DATASET_ALIAS, "id": dataset_id},
        "iterations": spec.TRAIN_EPOCHS,
        "scalars": report["scalars"],
        "plots": ["confusion/test"],
        "debug_images": ["confusion/heatmap"],
        "console_contains": [f"epoch {spec.TRAIN_EPOCHS}/{spec.TRAIN_EPOCHS}", f"using dataset {dataset_id}"],
        "artifacts": {
            "training_summary": {"type": "dict", "value": report["summary"]},
            "confusion_matrix": {
                "type": "file",
                "file": Path(report["artifacts"]["confusion_matrix"]).name,
                **_file_record(Path(report["artifacts"]["confusion_matrix"])),
            },
        },
        "models": {kind: made["id"] for kind, made in report["models"].items()},
    }


def _model_records(seed: int, report: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    records = {}
    for kind, made in report["models"].items():
        path = Path(made["path"])
        records[f"{kind}_seed{seed}"] = {
            "id": made["id"],
            "name": made["name"],
            "kind": kind,
            "framework": made["framework"],
            "task": report["task_id"],
            "package": path.is_dir(),
            "files": _model_files(path),
            "labels": {name: index for index, name in enumerate(classes)},
            "tags": [*_MODEL_TAGS[kind], f"seed-{seed}"],
            "metadata": {"seed": str(seed), "input_name": "features"},
            "local_path": str(path),
        }
    return records


_MODEL_TAGS = {"onnx": ["iris", "onnx"], "package": ["iris", "numpy"], "single": ["iris", "json"]}


def _inference(models: dict[str, Any]) -> dict[str, Any]:
    request = spec.INFERENCE_REQUEST
    triton_code = spec.ASSETS_DIR / "preprocess_triton.py"
    custom_code = spec.ASSETS_DIR / "preprocess_custom.py"
    onnx_file = Path(models["onnx_seed0"]["local_path"])
    results: dict[str, Any] = {
        spec.TRITON_ENDPOINT: {
            "model": "onnx_seed0",
            **expected.triton_endpoint(onnx_file, triton_code, spec.TRITON_IO, request),
        }
    }
    for version, key in (("1", "single_seed0"), ("2", "single_seed1")):
        url = spec.serving_url(spec.CUSTOM_ENDPOINT, version)
        results[url] = {
            "model": key,
            **expected.custom_endpoint(Path(models[key]["local_path"]), custom_code, request),
        }
    routes = dict(
        zip([f"{spec.CUSTOM_ENDPOINT}/1", f"{spec.CUSTOM_ENDPOINT}/2"], spec.CANARY_WEIGHTS, strict=True)
    )
    results[spec.CANARY_ENDPOINT] = {
        "request": request,
        "routes": routes,
        "expected_one_of": [results[url]["response"] for url in routes],
    }
    return results


# Which model serves which endpoint role (see serving.endpoint_commands).
_ROLE_MODELS = {"onnx": "onnx_seed0", "custom_v1": "single_seed0", "custom_v2": "single_seed1"}


def _collect_runs(
    train_flows: dict[int, runner.Flow],
    runs: Path,
    repo: dict[str, Any],
    latest: str,
    timing: dict[str, float],
    log: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    tasks: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for seed, flow in train_flows.items():
        flow.wait(FLOW_TIMEOUT)
        timing[f"train_seed{seed}"] = flow.seconds or 0.0
        report = json.loads((runs / f"seed-{seed}.json").read_text(encoding="utf-8"))
        if report["dataset_id"] != latest:
            raise runner.FlowError(f"run seed {seed} used dataset {report['dataset_id']}, not {latest}")
        tasks[f"train_seed{seed}"] = _task_record(seed, report, repo, latest)
        models.update(_model_records(seed, report, list(spec.CLASSES)))
        log(f"task train_seed{seed} {report['task_id']}")
    return tasks, models


def build(workdir: Path, environ: dict[str, str] | None = None, log: Any = print) -> dict[str, Any]:
    """Seed the server named by the ``CLEARML_*`` variables; return the ``seed.json`` document."""
    started = time.monotonic()
    server = runner.server_env(environ)
    workdir = workdir.resolve()
    dirs = _clean(workdir)
    logs = dirs["logs"]
    timing: dict[str, float] = {}
    running: list[runner.Flow] = []

    def env(name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return runner.flow_env(server, dirs["homes"] / name, extra)

    try:
        plan = synth.write_versions(dirs["data"])
        plan_file = dirs["data"] / "plan.json"
        plan_file.write_text(json.dumps(plan, indent=2), encoding="utf-8")
        result_file = dirs["data"] / "result.json"
        dataset_flow = runner.start(
            "dataset",
            ["-m", "d2s_tools.seed.dataset_flow", str(plan_file), str(result_file)],
            cwd=workdir,
            env=env("dataset"),
            logs=logs,
        )
        running.append(dataset_flow)
        serving_env = env("serving")
        create_flow = serving.start_create(serving_env, workdir, logs)
        running.append(create_flow)
        repo = gitrepo.create_repo(dirs["repo"])
        log(f"code repository {repo['repository']} at {repo['commit'][:12]} (with an uncommitted change)")

        dataset_flow.wait(FLOW_TIMEOUT)
        timing["dataset"] = dataset_flow.seconds or 0.0
        dataset = _dataset_record(plan, json.loads(result_file.read_text(encoding="utf-8")))
        latest = dataset["versions"][-1]["id"]
        log(f"dataset {spec.DATASET_NAME}: " + " -> ".join(v["id"] for v in dataset["versions"]))

        secrets_env = {item["env"]: item["value"] for item in spec.PLANTED_SECRETS.values()}
        train_flows = {
            seed: runner.start(
                f"train-seed{seed}",
                _train_argv(seed, dirs["runs"]),
                cwd=Path(repo["working_dir"]),
                env=env(f"train-seed{seed}", secrets_env),
                logs=logs,
            )
            for seed in spec.TRAIN_SEEDS
        }
        running.extend(train_flows.values())

        create_flow.wait(FLOW_TIMEOUT)
        timing["serving_create"] = create_flow.seconds or 0.0
        service_id = serving.created_service_id(create_flow)
        log(f"serving service {service_id}")

        tasks, models = _collect_runs(train_flows, dirs["runs"], repo, latest, timing, log)
        roles = {role: models[key]["id"] for role, key in _ROLE_MODELS.items()}
        t0 = time.monotonic()
        serving.add_endpoints(service_id, roles, serving_env, workdir, logs, FLOW_TIMEOUT)
        timing["serving_endpoints"] = round(time.monotonic() - t0, 2)
        service = serving.describe(service_id, roles)
        for endpoint in service["endpoints"].values():
            endpoint["model_key"] = _ROLE_MODELS[endpoint["model_role"]]
        inference = _inference(models)
    finally:
        runner.stop_all(running)

    timing["total"] = round(time.monotonic() - started, 2)
    return {
        "format": spec.SEED_FORMAT,
        "server": {
            "api": server["CLEARML_API_HOST"],
            "web": server["CLEARML_WEB_HOST"],
            "files": server["CLEARML_FILES_HOST"],
        },
        "project": spec.PROJECT,
        "workdir": str(workdir),
        "planted_secrets": spec.PLANTED_SECRETS,
        "dataset": dataset,
        "repository": {k: v for k, v in repo.items() if k != "bare_path"},
        "tasks": tasks,
        "models": models,
        "serving": service,
        "inference": inference,
        "timing": timing,
        "host": {"python": platform.python_version()},
    }
