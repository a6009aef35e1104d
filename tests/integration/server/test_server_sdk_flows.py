# SPDX-License-Identifier: GPL-3.0-or-later
"""The real clearml SDK and clearml-serving CLI against the local server, as users use them.

One server for the module; the flows run in three phases, several SDK processes at a time:

1. training (it pauses half-way), datasets, and a clearml-serving service built with its CLI;
2. SIGKILL + restart of the server while the training process waits; the training process goes on
   against the restarted server and closes; the datasets and the serving service are read back;
3. a graceful restart, then the training task is read back from a fresh cache, and a delete flow runs.

The tests below assert on what each flow wrote (values, hashes, ids).
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import pytest
from server_helpers import Background, run_cli, run_flow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TRITON_IO = [
    "--input-size",
    "[1, 4]",
    "--input-type",
    "float32",
    "--input-name",
    "INPUT__0",
    "--output-size",
    "[-1, 3]",
    "--output-type",
    "float32",
    "--output-name",
    "OUTPUT__0",
]
PRE_TRITON = "class Preprocess:\n    def preprocess(self, body, state, collect_custom_statistics_fn=None):\n        return body\n"
PRE_CUSTOM = "class Preprocess:\n    def process(self, data, state, collect_custom_statistics_fn=None):\n        return data\n"


def _serving_setup(server: Any, root: Path) -> dict[str, Any]:
    home = root / "serving"
    models = run_flow(server, "serving_models.py", home, str(home / "work"))["models"]
    (home / "pre_triton.py").write_text(PRE_TRITON, encoding="utf-8")
    (home / "pre_custom.py").write_text(PRE_CUSTOM, encoding="utf-8")
    created = run_cli(server, home, "create", "--name", "d2s serving", "--project", "D2S Server/Serving")
    match = re.search(r"New Serving Service created: id=([0-9a-f]{32})", created.stdout)
    assert match, created.stdout
    service = match.group(1)
    base = ["--yes", "--id", service, "model"]
    run_cli(
        server,
        home,
        *base,
        "add",
        "--engine",
        "triton",
        "--endpoint",
        "iris_onnx",
        "--version",
        "1",
        "--model-id",
        models["onnx"],
        "--preprocess",
        "pre_triton.py",
        *TRITON_IO,
        "--aux-config",
        'platform="onnxruntime_onnx"',
    )
    run_cli(
        server,
        home,
        *base,
        "add",
        "--engine",
        "triton",
        "--endpoint",
        "iris_onnx",
        "--version",
        "2",
        "--model-id",
        models["onnx"],
        "--preprocess",
        "pre_triton.py",
        *TRITON_IO,
    )
    run_cli(
        server,
        home,
        *base,
        "add",
        "--engine",
        "custom",
        "--endpoint",
        "iris_custom",
        "--model-id",
        models["custom"],
        "--preprocess",
        "pre_custom.py",
    )
    run_cli(
        server,
        home,
        *base,
        "canary",
        "--endpoint",
        "iris_canary",
        "--weights",
        "0.1",
        "0.9",
        "--input-endpoints",
        "iris_onnx/2",
        "iris_onnx/1",
    )
    run_cli(
        server,
        home,
        "--yes",
        "--id",
        service,
        "metrics",
        "add",
        "--endpoint",
        "iris_custom",
        "--variable-scalar",
        "x0=0,0.5,1,2",
        "--variable-enum",
        "label=a,b,c",
        "--variable-value",
        "latency",
    )
    return {"service": service, "models": models, "home": home}


@pytest.fixture(scope="module")
def flows(clearml_server_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Background:
    server = clearml_server_factory("flows")
    root = tmp_path_factory.mktemp("flows")
    work = Background()
    pause, resume = root / "train.paused", root / "train.resume"

    # phase 1
    work.start(
        "train",
        lambda: run_flow(
            server, "train.py", root / "train", str(root / "train-work"), str(pause), str(resume)
        ),
    )
    work.start(
        "datasets", lambda: run_flow(server, "datasets.py", root / "datasets", str(root / "datasets-work"))
    )
    work.start("serving", lambda: _serving_setup(server, root))
    work.join("datasets", "serving")
    deadline = time.monotonic() + 180
    while not pause.exists() and "train" not in work.errors and time.monotonic() < deadline:
        time.sleep(0.1)

    # phase 2: SIGKILL while the training process waits half-way, restart on the same ports
    killed_pid = server.pid
    server.kill()
    server.start()
    work.results["kill"] = {"killed_pid": killed_pid, "new_pid": server.pid}
    resume.write_text("go", encoding="utf-8")
    if "datasets" in work.results:
        made = root / "datasets" / "datasets.json"
        work.start(
            "datasets_read", lambda: run_flow(server, "datasets_read.py", root / "datasets-read", str(made))
        )
    if "serving" in work.results:
        service = work.results["serving"]["service"]
        work.start(
            "serving_read", lambda: run_flow(server, "serving_read.py", root / "serving-read", service)
        )
    work.join()

    # phase 3: graceful restart, then read the training back and delete things
    server.restart()
    if "train" in work.results:
        trained = root / "train" / "train.json"
        work.start(
            "readback",
            lambda: run_flow(
                server, "readback.py", root / "readback", str(trained), str(root / "readback-work")
            ),
        )
    work.start("delete", lambda: run_flow(server, "delete.py", root / "delete", str(root / "delete-work")))

    def reuse_twice() -> dict[str, Any]:
        # the SDK's default: a second Task.init with the same project/name under the same HOME reuses
        # (resets) the first task
        runs = [
            run_flow(server, "reuse.py", root / "reuse", label, env_drop=("CLEARML_TASK_NO_REUSE",))
            for label in ("first", "second-run")
        ]
        return {"runs": runs}

    work.start("reuse", reuse_twice)
    work.join()
    work.results["server"] = server
    return work


def _ok(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"error"}:
        pytest.fail(f"SDK probe failed:\n{value['error']}")
    return value


@pytest.mark.parametrize(
    "name", ["train", "datasets", "datasets_read", "serving_read", "readback", "delete", "reuse"]
)
def test_no_reply_failed_to_parse(flows: Background, name: str) -> None:
    """The SDK parses every reply into its typed classes; a mismatch only logs a warning, so look for it."""
    result = flows.get(name)
    for run in result.get("runs", [result]):
        assert run["parse_warnings"] == []


# --- training ---------------------------------------------------------------------------------------
def test_training_survives_sigkill_restart(flows: Background) -> None:
    train = flows.get("train")
    kill = flows.get("kill")
    assert train["paused"] is True
    assert kill["killed_pid"] != kill["new_pid"]
    back = flows.get("readback")
    assert back["by_id"]["status"] == "completed"
    assert back["last_iteration"] == 14


def test_scalars_read_back(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    scalars = _ok(back["scalars"])
    for title, series in train["scalars"].items():
        for name, values in series.items():
            assert scalars[title][name]["x"] == list(range(len(values)))
            assert scalars[title][name]["y"] == pytest.approx(values)
    assert set(scalars) == set(train["scalars"])


def test_last_scalar_metrics(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    last = _ok(back["last_scalars"])
    for title, series in train["scalars"].items():
        for name, values in series.items():
            assert last[title][name] == pytest.approx(
                {"last": values[-1], "min": min(values), "max": max(values)}
            )


def test_console_read_back(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    console = _ok(back["console"])
    assert train["marker"] in console
    assert f"{train['marker']}-AFTER-RESTART" in console
    assert f"ClearML Task: created new task id={train['task_id']}" in console


def test_plots_single_values_debug_samples(flows: Background) -> None:
    back = flows.get("readback")
    assert _ok(back["plots"]) == [["histogram", "counts", 0], ["scatter", "points", 2]]
    assert _ok(back["single_values"]) == {"best_acc": 0.93}
    samples = _ok(back["debug_samples"])
    assert len(samples) == 1
    assert samples[0]["iter"] == 3
    assert "/metrics/debug/img/" in samples[0]["url"]


def test_task_found_by_id_and_by_name(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    assert back["by_id"] == {
        "id": train["task_id"],
        "name": "train flow",
        "status": "completed",
        "project": train["project"],
    }
    assert back["by_name_id"] == train["task_id"]


def test_hyperparameters_and_configuration_objects(flows: Background) -> None:
    back = flows.get("readback")
    assert _ok(back["parameters"]) == {
        "Args/lr": "0.01",
        "Args/epochs": "3",
        "Args/optimizer": "adam",
        "General/seed": "1234",
    }
    assert _ok(back["configuration"]) == {"layers": [4, 8, 3], "activation": "relu"}
    assert _ok(back["notes"]) == "free text\nsecond line"


def test_artifacts_and_local_copies(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    artifacts = _ok(back["artifacts"])
    data = artifacts["data file"]
    assert data["hash"] == train["data_file_sha256"]
    assert data["local_sha256"] == train["data_file_sha256"]
    assert f"/train%20flow.{train['task_id']}/artifacts/data%20file/data%20file.bin" in data["url"]
    assert artifacts["stats"]["value"] == {"mean": 1.5, "count": 3}


def test_output_model_properties_and_weights(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    model = _ok(back["model"])
    assert model["id"] == train["model_id"]
    assert model["name"] == "train model"
    assert model["framework"] == "PyTorch"
    assert model["labels"] == {"setosa": 0, "versicolor": 1, "virginica": 2}
    assert model["config_dict"] == {"layers": [4, 8, 3]}
    assert model["task"] == train["task_id"]
    assert model["tags"] == ["d2s-test"]
    assert model["published"] is False
    assert model["local"] == train["model_sha256"]
    assert model["url"].endswith(f".{train['task_id']}/models/model.bin")


def test_weights_package(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    package = _ok(back["package_model"])
    assert package["id"] == train["package_model_id"]
    assert "package" in package["system_tags"]
    assert package["url"].endswith("/models/model_package.zip")
    assert package["local"] == train["package_files"]


def test_task_models_and_query_models(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    assert _ok(back["task_models"]) == {
        "input": [],
        "output": sorted([train["model_id"], train["package_model_id"]]),
    }
    assert _ok(back["query_models"]) == [train["model_id"]]


def test_input_model_import(flows: Background) -> None:
    train, back = flows.get("train"), flows.get("readback")
    imported = _ok(back["import_model"])
    assert imported["same_id"] == train["model_id"]  # an existing URI is reused
    assert imported["again_id"] == imported["new_id"]
    assert imported["new_id"] != train["model_id"]
    assert imported["new_name"] == "imported model"
    assert imported["new_framework"] == "ONNX"
    assert imported["new_tags"] == ["imported"]
    assert imported["new_sha256"] == imported["expected_sha256"]
    assert imported["new_url"].endswith("/D2S%20Server/imports/extra%20weights.bin")


def test_export_import_update_task(flows: Background) -> None:
    back = flows.get("readback")
    result = _ok(back["export_import"])
    assert all(result["same"].values()), result["same"]
    assert result["clone_status"] == "created"
    assert result["comment"] == "updated by update_task"


def test_task_create(flows: Background) -> None:
    created = _ok(flows.get("readback")["created"])
    assert created["type"] == "data_processing"
    assert created["params"] == {"Args/x": "5"}
    assert created["status"] == "created"


# --- datasets ---------------------------------------------------------------------------------------
def test_dataset_versions(flows: Background) -> None:
    made = flows.get("datasets")
    assert made["parent_version"] == "1.0.0"
    assert made["child_version"] == "1.0.1"
    assert made["removed"] == 1


def test_dataset_get_by_id_and_name_after_sigkill(flows: Background) -> None:
    made, read = flows.get("datasets"), flows.get("datasets_read")
    child = read["child"]
    assert child["id"] == made["child_id"]
    assert child["version"] == "1.0.1"
    assert child["name"] == made["name"]
    assert child["project"] == made["project"]
    assert child["tags"] == ["v2"]
    assert child["files"] == sorted(made["child_files"])
    assert child["graph"] == {made["parent_id"]: [], made["child_id"]: [made["parent_id"]]}
    assert _ok(read["by_version_id"]) == made["parent_id"]
    assert _ok(read["latest_id"]) == made["child_id"]
    assert _ok(read["published_id"]) == made["parent_id"]


def test_dataset_local_copies(flows: Background) -> None:
    made, read = flows.get("datasets"), flows.get("datasets_read")
    assert _ok(read["child_local"]) == made["child_files"]  # pulls the parent's chunks too
    assert _ok(read["parent_local"]) == made["parent_files"]


def test_dataset_chunks_on_the_fileserver(flows: Background) -> None:
    made = flows.get("datasets")
    server = flows.get("server")
    root = server.data_dir / "files" / "D2S Server" / "Data" / ".datasets" / made["name"]
    parent_chunks = sorted(p.parent.name for p in root.glob(f"*.{made['parent_id']}/artifacts/data*/*.zip"))
    child_chunks = sorted(p.parent.name for p in root.glob(f"*.{made['child_id']}/artifacts/data*/*.zip"))
    # 2.8 MB (parent) and 1.8 MB (child) of random data in 1 MB chunks: several zip chunks each
    assert len(parent_chunks) >= 2, parent_chunks
    assert len(child_chunks) >= 2, child_chunks


def test_list_datasets(flows: Background) -> None:
    made, read = flows.get("datasets"), flows.get("datasets_read")
    assert _ok(read["list_datasets"]) == sorted(
        [
            [made["parent_id"], made["name"], made["project"], "1.0.0"],
            [made["child_id"], made["name"], made["project"], "1.0.1"],
        ]
    )


def test_task_records_the_dataset_it_used(flows: Background) -> None:
    made, read = flows.get("datasets"), flows.get("datasets_read")
    server = flows.get("server")
    assert read["used_id"] == made["child_id"]
    reply = server.call("tasks.get_by_id", task=read["consumer_task_id"])
    task = reply["data"]["task"]
    assert task["runtime"]["datasets"] == [made["child_id"]]
    assert task["runtime"][f"orig_datasets.{made['name']}/1.0.1"] == made["child_id"]
    assert task["hyperparams"]["Datasets"]["training_data"]["value"] == made["child_id"]
    assert task["status"] == "completed"


# --- clearml-serving --------------------------------------------------------------------------------
def test_serving_service_task(flows: Background) -> None:
    read = flows.get("serving_read")
    assert read["name"] == "d2s serving"
    assert read["project"] == "D2S Server/Serving"
    assert read["type"] == "service"
    assert read["status"] == "created"
    assert read["system_tags"] == ["serving-control-plane"]


def test_serving_endpoints(flows: Background) -> None:
    setup, read = flows.get("serving"), flows.get("serving_read")
    endpoints = _ok(read["endpoints"])
    onnx, custom = setup["models"]["onnx"], setup["models"]["custom"]
    io = {
        "input_size": [[1, 4]],
        "input_type": ["float32"],
        "input_name": ["INPUT__0"],
        "output_size": [[-1, 3]],
        "output_type": ["float32"],
        "output_name": ["OUTPUT__0"],
    }
    assert endpoints["iris_onnx/1"] == {
        "engine_type": "triton",
        "serving_url": "iris_onnx",
        "model_id": onnx,
        "version": "1",
        "preprocess_artifact": "py_code_iris_onnx_1",
        **io,
        "auxiliary_cfg": {"platform": '"onnxruntime_onnx"'},
    }
    assert endpoints["iris_onnx/2"] == {
        "engine_type": "triton",
        "serving_url": "iris_onnx",
        "model_id": onnx,
        "version": "2",
        "preprocess_artifact": "py_code_iris_onnx_2",
        **io,
    }
    assert endpoints["iris_custom"] == {
        "engine_type": "custom",
        "serving_url": "iris_custom",
        "model_id": custom,
        "version": "",
        "preprocess_artifact": "py_code_iris_custom",
    }


def test_serving_canary_and_metrics(flows: Background) -> None:
    read = flows.get("serving_read")
    assert _ok(read["canary"]) == {
        "iris_canary": {
            "endpoint": "iris_canary",
            "weights": [0.1, 0.9],
            "load_endpoints": ["iris_onnx/2", "iris_onnx/1"],
        }
    }
    assert _ok(read["metric_logging"]) == {
        "iris_custom": {
            "endpoint": "iris_custom",
            "metrics": {
                "x0": {"type": "scalar", "buckets": [0.0, 0.5, 1.0, 2.0]},
                "label": {"type": "enum", "buckets": ["a", "b", "c"]},
                "latency": {"type": "value", "buckets": None},
            },
        }
    }


def test_serving_preprocess_artifacts_and_input_models(flows: Background) -> None:
    setup, read = flows.get("serving"), flows.get("serving_read")
    artifacts = _ok(read["artifacts"])
    assert set(artifacts) == {"py_code_iris_onnx_1", "py_code_iris_onnx_2", "py_code_iris_custom"}
    for key, expected in (("py_code_iris_onnx_1", PRE_TRITON), ("py_code_iris_custom", PRE_CUSTOM)):
        digest = hashlib.sha256(expected.encode()).hexdigest()
        assert artifacts[key]["hash"] == digest
        assert artifacts[key]["local_sha256"] == digest
    assert set(_ok(read["input_models"]).values()) == set(setup["models"].values())


# --- delete -----------------------------------------------------------------------------------------
def test_task_and_model_delete(flows: Background) -> None:
    deleted = flows.get("delete")
    assert deleted["before"] == {"artifact": 200, "output_model": 200, "standalone_model": 200}
    assert deleted["task_deleted"] is True
    assert deleted["model_removed"] is True
    assert deleted["after"] == {"artifact": 404, "output_model": 404, "standalone_model": 404}
    assert "could not be found" in deleted["get_task_after"]
    assert deleted["query_after"] == []
    server = flows.get("server")
    for model_id in (deleted["output_model_id"], deleted["standalone_model_id"]):
        reply = server.call("models.get_by_id", model=model_id)
        assert (reply["meta"]["result_code"], reply["meta"]["result_subcode"]) == (400, 201)


# --- task reuse -------------------------------------------------------------------------------------
def test_task_init_reuses_and_resets_the_previous_task(flows: Background) -> None:
    first, second = flows.get("reuse")["runs"]
    assert second["task_id"] == first["task_id"]
    assert "overwriting (reusing) task id=" in second["_stdout"]
    server = flows.get("server")
    task = server.call("tasks.get_by_id", task=first["task_id"])["data"]["task"]
    assert task["status"] == "completed"
    scalars = server.call("events.get_task_events", task=first["task_id"], event_type="training_stats_scalar")
    assert [(e["iter"], e["value"]) for e in scalars["data"]["events"]] == [
        (10, 10.0)
    ]  # the first run's are gone
    log = server.call("events.get_task_log", task=first["task_id"], batch_size=1000)["data"]["events"]
    text = "\n".join(e["msg"] for e in log)
    assert "REUSE-RUN-second-run" in text
    assert "REUSE-RUN-first" not in text
