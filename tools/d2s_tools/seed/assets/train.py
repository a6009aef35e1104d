# SPDX-License-Identifier: GPL-3.0-or-later
"""Train a tiny iris-like classifier and register its models with ClearML.

This is the demo team's training script: the seed commits it into a ``file://`` git repository and runs
it from there, so ClearML records the repository, the commit and the uncommitted diff. It is
self-contained (numpy, onnx and clearml only).

It reads the ``iris-like`` dataset (``Dataset.get(..., alias="train_data")``), trains a softmax
regression with mini-batch gradient descent, logs scalars, a plot, a debug image and console lines,
uploads two artifacts and registers three output models:

- ``onnx``: ``model.onnx`` (float32 graph: standardise -> MatMul -> Add -> Softmax), framework ONNX;
- ``package``: a folder (``weights.npy``, ``bias.npy``, ``scaler.json``, ``meta/labels.json``) through
  ``update_weights_package``;
- ``single``: one ``iris_weights.json`` file through ``update_weights``.

With ``--report PATH`` it writes the ids and local file paths of what it made as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from clearml import Dataset, OutputModel, Task

LEARNING_RATE = 0.5
BATCH_SIZE = 16


def load_rows(root: Path, pattern: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    features: list[list[float]] = []
    labels: list[int] = []
    for path in sorted(root.glob(pattern)):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            label_column = header.index("label")
            for row in reader:
                features.append([float(v) for i, v in enumerate(row) if i != label_column])
                labels.append(classes.index(row[label_column]))
    return np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def evaluate(x: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> tuple[float, float]:
    probs = softmax(x @ weights + bias)
    loss = float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12)))
    accuracy = float(np.mean(probs.argmax(axis=1) == y))
    return loss, accuracy


def build_onnx(mean: np.ndarray, std: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> bytes:
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    initializers = [
        numpy_helper.from_array(mean.astype(np.float32), "mean"),
        numpy_helper.from_array(std.astype(np.float32), "std"),
        numpy_helper.from_array(weights.astype(np.float32), "weights"),
        numpy_helper.from_array(bias.astype(np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centered"]),
        helper.make_node("Div", ["centered", "std"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "weights"], ["projected"]),
        helper.make_node("Add", ["projected", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "iris_softmax",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", weights.shape[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", weights.shape[1]])],
        initializers,
    )
    model = helper.make_model(
        graph, producer_name="d2s-demo-train", opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    return model.SerializeToString()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the iris-like softmax classifier.")
    parser.add_argument("--dataset-project", default="d2s-demo")
    parser.add_argument("--dataset-name", default="iris-like")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--out-dir", default="outputs")
    parser.add_argument("--report", default="")
    return parser.parse_args()


def configure(task: Task) -> None:
    # Where the team keeps its artifacts; yes, the key sits in the task. The exporter must redact it.
    storage = {
        "bucket": "s3://d2s-demo-artifacts/iris",
        "region": "eu-west-1",
        "aws_access_key_id": "AKIAD2SDEMOPLANTED01",
        "aws_secret_access_key": os.environ.get("DEMO_AWS_SECRET_ACCESS_KEY", ""),
    }
    task.connect(storage, name="storage")
    # How the agent should run this: the git token travels in the container arguments.
    task.set_base_docker(
        docker_image="python:3.11-slim",
        docker_arguments=[
            "-e",
            "CLEARML_AGENT_GIT_USER=d2s-bot",
            "-e",
            f"CLEARML_AGENT_GIT_PASS={os.environ.get('DEMO_GIT_PASS', '')}",
            "--shm-size=1g",
        ],
        docker_setup_bash_script=["python -m pip install --no-cache-dir numpy onnx"],
    )


def train(task: Task, args: argparse.Namespace, data_root: Path) -> dict[str, Any]:
    """Fit the model, report scalars, a plot and a debug image; return the fitted state."""
    meta = json.loads((data_root / "meta" / "labels.json").read_text(encoding="utf-8"))
    classes: list[str] = meta["classes"]
    x_train, y_train = load_rows(data_root, "train/**/*.csv", classes)
    x_test, y_test = load_rows(data_root, "test/*.csv", classes)
    print(f"{len(y_train)} train rows, {len(y_test)} test rows, classes {classes}")

    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    xs_train = (x_train - mean) / std
    xs_test = (x_test - mean) / std
    rng = np.random.default_rng(args.seed)
    weights = rng.normal(0.0, 0.1, size=(x_train.shape[1], len(classes)))
    bias = np.zeros(len(classes))
    onehot = np.eye(len(classes))[y_train]

    logger = task.get_logger()
    scalars: dict[str, float] = {}
    history: dict[str, list[list[float]]] = {}
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            probs = softmax(xs_train[batch] @ weights + bias)
            grad = (probs - onehot[batch]) / len(batch)
            weights -= args.lr * xs_train[batch].T @ grad
            bias -= args.lr * grad.sum(axis=0)
        train_loss, train_acc = evaluate(xs_train, y_train, weights, bias)
        test_loss, test_acc = evaluate(xs_test, y_test, weights, bias)
        scalars = {
            "loss/train": train_loss,
            "loss/test": test_loss,
            "accuracy/train": train_acc,
            "accuracy/test": test_acc,
        }
        for key, value in scalars.items():
            title, series = key.split("/")
            logger.report_scalar(title, series, value=value, iteration=epoch)
            history.setdefault(key, []).append([epoch, value])
        print(
            f"epoch {epoch}/{args.epochs} loss={train_loss:.4f} acc={train_acc:.3f} test_acc={test_acc:.3f}"
        )

    predictions = softmax(xs_test @ weights + bias).argmax(axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for truth, guess in zip(y_test, predictions, strict=True):
        confusion[truth, guess] += 1
    logger.report_confusion_matrix(
        "confusion", "test", iteration=args.epochs, matrix=confusion, xlabels=classes, ylabels=classes
    )
    heat = (255 * (confusion / max(1, confusion.max()))).astype(np.uint8)
    image = np.kron(heat, np.ones((16, 16), dtype=np.uint8))
    logger.report_image("confusion", "heatmap", iteration=args.epochs, image=np.stack([image] * 3, axis=-1))
    return {
        "classes": classes,
        "features": meta.get("features", []),
        "mean": mean,
        "std": std,
        "weights": weights,
        "bias": bias,
        "confusion": confusion,
        "scalars": scalars,
        "history": history,
    }


def write_model_files(out: Path, fit: dict[str, Any]) -> dict[str, Path]:
    """Write the three model forms; return their paths (file or folder) by kind."""
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    (out / "package" / "meta").mkdir(parents=True, exist_ok=True)
    (out / "single").mkdir(parents=True, exist_ok=True)
    mean, std, weights, bias = fit["mean"], fit["std"], fit["weights"], fit["bias"]

    onnx_path = out / "onnx" / "model.onnx"
    onnx_path.write_bytes(build_onnx(mean, std, weights, bias))

    np.save(out / "package" / "weights.npy", weights.astype(np.float32))
    np.save(out / "package" / "bias.npy", bias.astype(np.float32))
    scaler = {"mean": mean.astype(np.float32).tolist(), "std": std.astype(np.float32).tolist()}
    (out / "package" / "scaler.json").write_text(json.dumps(scaler, indent=2) + "\n", encoding="utf-8")
    (out / "package" / "meta" / "labels.json").write_text(json.dumps(fit["classes"]) + "\n", encoding="utf-8")

    single_path = out / "single" / "iris_weights.json"
    single = {
        "format": "d2s-softmax/1",
        "features": fit["features"],
        "classes": fit["classes"],
        **scaler,
        "weights": weights.astype(np.float32).tolist(),
        "bias": bias.astype(np.float32).tolist(),
    }
    single_path.write_text(json.dumps(single, indent=2) + "\n", encoding="utf-8")
    return {"onnx": onnx_path, "package": out / "package", "single": single_path}


def register_models(
    task: Task, args: argparse.Namespace, fit: dict[str, Any], paths: dict[str, Path]
) -> dict[str, Any]:
    labels = {name: index for index, name in enumerate(fit["classes"])}
    design = {
        "input": "features[4] float32",
        "output": "probabilities[3] float32",
        "lr": args.lr,
        "epochs": args.epochs,
    }
    test_accuracy = fit["scalars"]["accuracy/test"]
    specs = [
        ("onnx", "iris classifier onnx", "ONNX", ["iris", "onnx"]),
        ("package", "iris classifier numpy package", "Custom", ["iris", "numpy"]),
        ("single", "iris classifier json weights", "Custom", ["iris", "json"]),
    ]
    made: dict[str, Any] = {}
    for kind, name, framework, tags in specs:
        path = paths[kind]
        model = OutputModel(
            task=task,
            name=f"{name} seed-{args.seed}",
            framework=framework,
            label_enumeration=labels,
            config_dict={**design, "kind": kind},
            tags=[*tags, f"seed-{args.seed}"],
            comment=f"softmax regression, seed {args.seed}",
        )
        if path.is_dir():
            model.update_weights_package(
                weights_path=str(path), auto_delete_file=False, iteration=args.epochs, async_enable=False
            )
        else:
            model.update_weights(
                weights_filename=str(path), auto_delete_file=False, iteration=args.epochs, async_enable=False
            )
        model.set_metadata("seed", str(args.seed), "int")
        model.set_metadata("test_accuracy", f"{test_accuracy:.4f}", "float")
        model.set_metadata("input_name", "features", "str")
        made[kind] = {"id": model.id, "name": model.name, "framework": framework, "path": str(path)}
        print(f"registered {kind} model {model.id}")
    return made


def main() -> None:
    task = Task.init(
        project_name="d2s-demo",
        task_name="train classifier",
        output_uri=True,
        auto_resource_monitoring=False,
    )
    args = parse_args()
    task.add_tags([f"seed-{args.seed}"])
    configure(task)

    dataset = Dataset.get(
        dataset_project=args.dataset_project, dataset_name=args.dataset_name, alias="train_data"
    )
    data_root = Path(dataset.get_local_copy())
    print(f"using dataset {dataset.id} version {dataset.version}")
    fit = train(task, args, data_root)

    out = Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "seed": args.seed,
        "epochs": args.epochs,
        "classes": fit["classes"],
        "dataset_id": dataset.id,
        "final": fit["scalars"],
    }
    confusion_csv = out / "confusion_matrix.csv"
    rows = [",".join(["truth", *fit["classes"]])]
    rows += [",".join([c, *map(str, r)]) for c, r in zip(fit["classes"], fit["confusion"], strict=True)]
    confusion_csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    task.upload_artifact("training_summary", artifact_object=summary, wait_on_upload=True)
    task.upload_artifact("confusion_matrix", artifact_object=confusion_csv, wait_on_upload=True)

    models = register_models(task, args, fit, write_model_files(out, fit))
    if args.report:
        report = {
            "task_id": task.id,
            "dataset_id": dataset.id,
            "summary": summary,
            "scalars": fit["history"],
            "artifacts": {"confusion_matrix": str(confusion_csv)},
            "models": models,
        }
        Path(args.report).write_text(json.dumps(report, indent=2), encoding="utf-8")
    task.close()


if __name__ == "__main__":
    main()
