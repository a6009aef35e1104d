# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Triton model configuration from clearml-serving endpoints: names, data types, backends, config.pbtxt.

Private to this collection: not a public API, may change without notice.

Pure functions, no file access: ``_triton`` lays out the files and writes the repository. Every
check returns problems (strings) instead of raising, so that a caller can report all of them at once.
See docs/triton.md for the rules and why they are what they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_pbtxt import (
    Ident,
    Message,
    PbList,
    PbtxtError,
    format_message,
    from_python,
    get_all,
    get_one,
    parse_pbtxt,
    strip_stray_quotes,
)

VERSION_DIR = "1"  # clearml-serving always serves version folder 1 ("request.model_version = '1'")
IO_FIELDS = ("input_size", "input_type", "input_name", "output_size", "output_type", "output_name")
FORBIDDEN_AUX = ("input", "output", "default_model_filename")  # as clearml-serving's _validate_model

# numpy dtype names (and the aliases numpy accepts for them) -> Triton model-config data type.
# clearml-serving validates endpoint types with np.dtype() (so only names numpy knows can be stored);
# its Triton helper maps them with a copy of tritonclient's np_to_triton_dtype. One difference:
# object/bytes give TYPE_STRING here, where clearml-serving writes TYPE_BYTES, which Triton's model
# config does not know (the model fails to load). Triton's TYPE_BF16 has no numpy dtype.
DTYPES: dict[str, str] = {
    "bool": "TYPE_BOOL",
    "bool_": "TYPE_BOOL",
    "bool8": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "ubyte": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "ushort": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uintc": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "ulonglong": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "byte": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "short": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "intc": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "int": "TYPE_INT64",
    "int_": "TYPE_INT64",
    "longlong": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "half": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "single": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "float": "TYPE_FP64",
    "float_": "TYPE_FP64",
    "double": "TYPE_FP64",
    "str": "TYPE_STRING",
    "str_": "TYPE_STRING",
    "unicode": "TYPE_STRING",
    "bytes": "TYPE_STRING",
    "bytes_": "TYPE_STRING",
    "object": "TYPE_STRING",
    "object_": "TYPE_STRING",
}

INSTANCE_KINDS = ("KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL")

# Model kinds: how Triton runs the model, hence the files it expects.
ONNX = "onnx"
PYTORCH = "pytorch"
TF_SAVEDMODEL = "tf_savedmodel"
TF_GRAPHDEF = "tf_graphdef"
TENSORRT = "tensorrt"
PYTHON = "python"

# The config.pbtxt declaration written for each kind when the auxiliary config names none. PyTorch
# gets clearml-serving's `backend: "pytorch"` (Triton's platform name for it is "pytorch_libtorch").
DEFAULT_DECLARATION: dict[str, tuple[str, str]] = {
    ONNX: ("platform", "onnxruntime_onnx"),
    PYTORCH: ("backend", "pytorch"),
    TF_SAVEDMODEL: ("platform", "tensorflow_savedmodel"),
    TF_GRAPHDEF: ("platform", "tensorflow_graphdef"),
    TENSORRT: ("platform", "tensorrt_plan"),
    PYTHON: ("backend", "python"),
}
PLATFORM_KINDS = {
    "onnxruntime_onnx": ONNX,
    "pytorch_libtorch": PYTORCH,
    "tensorflow_savedmodel": TF_SAVEDMODEL,
    "tensorflow_graphdef": TF_GRAPHDEF,
    "tensorrt_plan": TENSORRT,
}
# "tensorflow" serves both TF layouts: the model's files decide (a package is a SavedModel).
BACKEND_KINDS = {
    "onnxruntime": ONNX,
    "pytorch": PYTORCH,
    "tensorflow": "tf",
    "tensorrt": TENSORRT,
    "python": PYTHON,
}
# Framework family -> kinds that can serve it (the python backend serves anything: model.py decides).
FAMILY_KINDS = {
    "onnx": (ONNX,),
    "pytorch": (PYTORCH,),
    "tensorflow": (TF_SAVEDMODEL, TF_GRAPHDEF),
    "tensorrt": (TENSORRT,),
}
KNOWN_FAMILIES = tuple(FAMILY_KINDS)


def framework_family(framework: str | None) -> str | None:  # noqa: PLR0911 - one per family
    """ClearML's framework string -> ``onnx``/``pytorch``/``tensorflow``/``tensorrt``, else lowercased.

    The substring tests are clearml-serving's own (``"torch" in framework`` and so on), so ``Keras`` is
    tensorflow and ``TorchScript`` pytorch. ``None``/empty -> ``None``.
    """
    if not framework:
        return None
    low = str(framework).strip().lower()
    if not low or low == "none":
        return None
    if "onnx" in low:
        return "onnx"
    if "tensorrt" in low:
        return "tensorrt"
    if "torch" in low:
        return "pytorch"
    if "tensorflow" in low or "keras" in low:
        return "tensorflow"
    return low


def triton_dtype(name: Any) -> str | None:
    """numpy dtype name (``float32``, ``np.float32``, ``int``) -> ``TYPE_FP32`` ...; ``None`` if unknown."""
    if not isinstance(name, str):
        return None
    key = name.strip()
    for prefix in ("numpy.", "np."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return DTYPES.get(key)


def request_model_name(serving_url: str, version: Any) -> str:
    """The model name clearml-serving's inference service asks Triton for (TritonPreprocessRequest)."""
    if version:  # clearml-serving tests truthiness: version 0 or "" means none
        return f"{serving_url}_{version}".strip("/")
    return str(serving_url).strip("/")


def endpoint_key(serving_url: str, version: Any) -> str:
    """The endpoint's key in clearml-serving's configuration objects (_normalize_endpoint_url)."""
    return "{}/{}".format(str(serving_url).rstrip("/"), version or "").rstrip("/")


def model_dir_name(url: str) -> str:
    """The folder clearml-serving's Triton helper creates for an endpoint key: ``/`` -> ``_``."""
    return url.replace("/", "_")


_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")


def model_name(url: str, endpoint: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Directory/model name of an endpoint and the problems that stop Triton from serving it by that name.

    The helper names the folder after the key (``url``); the inference service asks for
    ``<serving_url>_<version>``. Both are the same unless the serving url holds a ``/`` (or the key does
    not match serving_url/version), in which case clearml-serving itself cannot serve the endpoint.
    """
    problems: list[str] = []
    serving_url = endpoint.get("serving_url")
    version = endpoint.get("version")
    if not isinstance(serving_url, str) or not serving_url.strip("/"):
        return model_dir_name(url), ["serving_url is missing or empty"]
    if version is not None and not isinstance(version, (str, int)):
        problems.append(f"version {version!r} is neither a string nor an integer")
    expected_key = endpoint_key(serving_url, version)
    name = request_model_name(serving_url, version)
    if url != expected_key:
        problems.append(
            f"the endpoint key does not match serving_url {serving_url!r} and version {version!r} "
            f"(clearml-serving keys it {expected_key!r})"
        )
    elif model_dir_name(url) != name:
        problems.append(
            f"clearml-serving's inference service asks Triton for model {name!r}, but a model repository "
            f"folder cannot be named so (its Triton helper writes {model_dir_name(url)!r}); "
            "use a serving url without '/'"
        )
    if not problems and not _SAFE_NAME.match(name):
        problems.append(f"model name {name!r} is not a usable folder name (letters, digits, '_', '.', '-')")
    return name, problems


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model configuration."""

    name: str
    data_type: str
    dims: tuple[int, ...]

    def message(self) -> Message:
        return Message(
            [("name", self.name), ("data_type", Ident(self.data_type)), ("dims", PbList(self.dims))]
        )


def _listify(value: Any) -> Any:
    """clearml-serving's _list_type_convertor: a scalar becomes a one-item list."""
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _nested(value: Any) -> Any:
    """clearml-serving's _nested_list_type_convertor: a flat list of dims is one input's dims."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (list, tuple)) for v in value):
        return [list(value)]
    return [list(v) if isinstance(v, (list, tuple)) else v for v in _listify(value)]


def tensor_specs(endpoint: Mapping[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec], list[str]]:
    """Inputs, outputs and the problems of an endpoint's six input/output fields."""
    problems: list[str] = []
    missing = [f for f in IO_FIELDS if not endpoint.get(f)]
    if missing:
        return (
            [],
            [],
            [f"a triton endpoint needs all of {', '.join(IO_FIELDS)}; missing: {', '.join(missing)}"],
        )
    result: dict[str, list[TensorSpec]] = {}
    for side in ("input", "output"):
        sizes = _nested(endpoint[f"{side}_size"])
        types = _listify(endpoint[f"{side}_type"])
        names = _listify(endpoint[f"{side}_name"])
        if not len(sizes) == len(types) == len(names):
            problems.append(
                f"{side}_name, {side}_type and {side}_size differ in length "
                f"({len(names)}, {len(types)}, {len(sizes)})"
            )
            result[side] = []
            continue
        specs = []
        seen: set[str] = set()
        for i, (raw_name, dtype, raw_dims) in enumerate(zip(names, types, sizes, strict=True)):
            where = f"{side} {i}"
            name = str(raw_name)
            if not isinstance(raw_name, str) or not raw_name:
                problems.append(f"{where}: name {raw_name!r} is not a non-empty string")
            elif name in seen:
                problems.append(f"{where}: name {name!r} appears twice")
            seen.add(name)
            data_type = triton_dtype(dtype)
            if data_type is None:
                problems.append(
                    f"{where} ({name}): unknown data type {dtype!r} (numpy names: float32, int64 ...)"
                )
            dims = raw_dims if isinstance(raw_dims, list) else []
            if not dims:
                problems.append(f"{where} ({name}): dims {raw_dims!r} are not a non-empty list of integers")
            bad = [d for d in dims if isinstance(d, bool) or not isinstance(d, int) or d < -1]
            if bad:
                problems.append(f"{where} ({name}): dims {dims!r}: every dim must be an integer >= -1")
            specs.append(
                TensorSpec(name, data_type or "TYPE_INVALID", tuple(d for d in dims if d not in bad))
            )
        result[side] = specs
    return result["input"], result["output"], problems


@dataclass
class AuxConfig:
    """An endpoint's auxiliary config, parsed: the declaration and the rest, ready to merge."""

    form: str  # "none", "dict" or "text"
    platform: str | None = None
    backend: str | None = None
    name: str | None = None
    max_batch_size: int = 0
    instance_group: list[Message] = field(default_factory=list)
    parameters: list[Message] = field(default_factory=list)
    rest: Message = field(default_factory=Message)


def parse_aux(aux: Any) -> tuple[AuxConfig, list[str]]:  # noqa: PLR0912 - one branch per field
    """Read ``auxiliary_cfg`` (dict or raw pbtxt string) into an ``AuxConfig``; problems as strings."""
    problems: list[str] = []
    if aux is None or aux in ("", {}):
        return AuxConfig(form="none"), problems
    try:
        if isinstance(aux, Mapping):
            msg, form = from_python(aux), "dict"
        elif isinstance(aux, str):
            msg, form = parse_pbtxt(aux), "text"
        else:
            return AuxConfig(form="none"), [
                f"auxiliary_cfg is a {type(aux).__name__}, not a dict or a string"
            ]
    except PbtxtError as exc:
        return AuxConfig(form="none"), [f"auxiliary_cfg cannot be read as a Triton model config: {exc}"]
    present = sorted({key for key, _ in msg if key in FORBIDDEN_AUX})
    if present:
        problems.append(
            f"auxiliary_cfg must not set {', '.join(present)} (inputs and outputs come from the endpoint, "
            "file names from the layout; clearml-serving refuses them too)"
        )
    cfg = AuxConfig(form=form)
    for key in ("platform", "backend", "name"):
        value = get_one(msg, key)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(f"auxiliary_cfg {key} {value!r} is not a string")
            continue
        setattr(cfg, key, strip_stray_quotes(value))
    mbs = get_one(msg, "max_batch_size", 0)
    if isinstance(mbs, str) and not isinstance(mbs, Ident):
        mbs = strip_stray_quotes(mbs)
        mbs = int(mbs) if mbs.isdigit() else mbs
    if isinstance(mbs, bool) or not isinstance(mbs, int) or mbs < 0:
        problems.append(f"auxiliary_cfg max_batch_size {mbs!r} is not an integer >= 0")
    else:
        cfg.max_batch_size = mbs
    for key in ("instance_group", "parameters"):
        values = get_all(msg, key)
        if any(not isinstance(v, Message) for v in values):
            problems.append(f"auxiliary_cfg {key} must be messages ({key} {{ ... }})")
            values = [v for v in values if isinstance(v, Message)]
        setattr(cfg, key, values)
    if form == "dict":
        cfg.parameters = _parameters_from_dict(aux.get("parameters"), problems) if "parameters" in aux else []
    skip = {"platform", "backend", "name", "max_batch_size", "instance_group", "parameters", *FORBIDDEN_AUX}
    cfg.rest = Message((k, v) for k, v in msg if k not in skip)
    return cfg, problems


def _parameters_from_dict(value: Any, problems: list[str]) -> list[Message]:
    """``parameters`` of a dict aux config: ``{key, value}`` entries, a list of them, or a plain map."""
    entries: list[tuple[str, Any]] = []
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, Mapping) and set(item) <= {"key", "value"} and "key" in item:
            entries.append((str(strip_stray_quotes(str(item["key"]))), item.get("value")))
        elif isinstance(item, Mapping):
            entries.extend((str(k), v) for k, v in item.items())
        else:
            problems.append(f"auxiliary_cfg parameters entry {item!r} is not a mapping")
    out = []
    for key, entry in entries:
        val = entry.get("string_value") if isinstance(entry, Mapping) else entry
        if val is None or isinstance(val, (Mapping, list, tuple)):
            problems.append(f"auxiliary_cfg parameter {key!r} has no string value")
            continue
        text = strip_stray_quotes(str(val).lower() if isinstance(val, bool) else str(val))
        out.append(Message([("key", key), ("value", Message([("string_value", text)]))]))
    return out


def parameter(key: str, value: str) -> Message:
    """A ``parameters { key: ... value { string_value: ... } }`` entry."""
    return Message([("key", key), ("value", Message([("string_value", value)]))])


def instance_group_messages(spec: Any, where: str = "instance_group") -> tuple[list[Message], list[str]]:
    """The site's instance_group option (a dict or a list of dicts) as messages, checked.

    Each group: ``kind`` (``KIND_GPU``, ``KIND_CPU``, ``KIND_AUTO``, ``KIND_MODEL``; ``gpu``/``cpu``
    accepted), ``count`` (>= 1), ``gpus`` (device ids, ``KIND_GPU`` only), optional ``name``.
    """
    if spec is None:
        return [], []
    groups = spec if isinstance(spec, (list, tuple)) else [spec]
    problems: list[str] = []
    out: list[Message] = []
    for i, group in enumerate(groups):
        label = f"{where}[{i}]"
        if not isinstance(group, Mapping):
            problems.append(f"{label}: {group!r} is not a mapping")
            continue
        unknown = sorted(set(group) - {"kind", "count", "gpus", "name"})
        if unknown:
            problems.append(f"{label}: unknown keys {unknown} (kind, count, gpus, name)")
        msg = Message()
        if group.get("name") is not None:
            msg.append(("name", str(group["name"])))
        kind = str(group.get("kind", "KIND_AUTO")).upper()
        kind = kind if kind.startswith("KIND_") else f"KIND_{kind}"
        if kind not in INSTANCE_KINDS:
            problems.append(f"{label}: kind {group.get('kind')!r} is not one of {', '.join(INSTANCE_KINDS)}")
        msg.append(("kind", Ident(kind)))
        count = group.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"{label}: count {count!r} is not an integer >= 1")
        else:
            msg.append(("count", count))
        gpus = group.get("gpus")
        if gpus is not None:
            if kind != "KIND_GPU":
                problems.append(f"{label}: gpus are only meaningful with kind KIND_GPU")
            elif not isinstance(gpus, (list, tuple)) or any(
                isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus
            ):
                problems.append(f"{label}: gpus {gpus!r} is not a list of device ids (integers >= 0)")
            else:
                msg.append(("gpus", PbList(gpus)))
        out.append(msg)
    return out, problems


@dataclass(frozen=True)
class Serving:
    """How Triton runs one model: the kind of files (``weights``) and the config declaration."""

    weights: str  # ONNX, PYTORCH, TF_SAVEDMODEL, TF_GRAPHDEF, TENSORRT, PYTHON or "" (python: as given)
    declaration: tuple[tuple[str, str], ...]  # (("platform", "onnxruntime_onnx"),) ...
    python_generic: bool = False  # served by the site's generic model.py (python_backend_for)


def resolve_serving(  # noqa: PLR0911, PLR0912 - each rule answers at once
    framework: str | None,
    aux: AuxConfig,
    *,
    package: bool,
    python_backend_for: Sequence[str],
) -> tuple[Serving | None, list[str]]:
    """Pick the backend and file layout of a model; a mismatch with its framework is a problem."""
    family = framework_family(framework)
    declared: list[tuple[str, str, str]] = []  # (key, value, kind)
    for key, table in (("platform", PLATFORM_KINDS), ("backend", BACKEND_KINDS)):
        value = getattr(aux, key)
        if value is None:
            continue
        kind = table.get(value)
        if kind is None:
            known = ", ".join(sorted(table))
            return None, [f"auxiliary_cfg {key} {value!r} is not one this collection lays out ({known})"]
        declared.append((key, value, kind))
    tf_kind = TF_SAVEDMODEL if package else TF_GRAPHDEF
    kinds = {tf_kind if k == "tf" else k for _, _, k in declared}
    if len(kinds) > 1:
        text = " and ".join(f"{k} {v!r}" for k, v, _ in declared)
        return None, [f"auxiliary_cfg {text} name different backends"]
    declared_kind = kinds.pop() if kinds else None
    label = f"model of framework {framework!r}"

    if family is not None and family in python_backend_for:
        native = declared_kind if declared_kind not in (None, PYTHON) else None
        if native is None:
            native = {"onnx": ONNX, "pytorch": PYTORCH, "tensorflow": tf_kind, "tensorrt": TENSORRT}.get(
                family, ""
            )
        if native and native not in FAMILY_KINDS.get(family, (native,)):
            return None, [f"auxiliary_cfg names a {native} backend for a {label}"]
        return Serving(native, (("backend", "python"),), python_generic=True), []

    if declared_kind is not None:
        if (
            declared_kind != PYTHON
            and family is not None
            and declared_kind not in FAMILY_KINDS.get(family, ())
        ):
            text = " and ".join(f"{k} {v!r}" for k, v, _ in declared)
            return None, [f"auxiliary_cfg {text} cannot serve a {label}"]
        if declared_kind == TF_SAVEDMODEL and not package:
            return None, [
                "tensorflow_savedmodel needs a SavedModel folder (a package model), not a single file"
            ]
        if declared_kind == TF_GRAPHDEF and package:
            return None, ["tensorflow_graphdef needs a single GraphDef file, not a package"]
        return Serving(declared_kind, tuple((k, v) for k, v, _ in declared)), []

    if family is None:
        return None, ["the model has no framework and auxiliary_cfg names no platform or backend"]
    default = {"onnx": ONNX, "pytorch": PYTORCH, "tensorflow": tf_kind, "tensorrt": TENSORRT}.get(family)
    if default is None:
        return None, [
            f"framework {family!r} has no Triton backend here: name a platform/backend in the endpoint's "
            "auxiliary_cfg (python with a model.py in the package), or list it in python_backend_for"
        ]
    return Serving(default, (DEFAULT_DECLARATION[default],)), []


def render_config(
    *,
    name: str,
    url: str,
    serving: Serving,
    aux: AuxConfig,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    instance_group: Sequence[Message] | None,
    parameters: Sequence[Message] = (),
) -> str:
    """config.pbtxt text: generated fields first, then the rest of the auxiliary config.

    Order: name, platform/backend, max_batch_size, input, output, instance_group (the site option, else
    the auxiliary config's), parameters (the auxiliary config's plus ours, ours winning, sorted by key),
    then every other auxiliary field as given (dict form: sorted by key).
    """
    msg = Message([("name", name)])
    msg.extend(serving.declaration)
    msg.append(("max_batch_size", aux.max_batch_size))
    if inputs:
        msg.append(("input", PbList(t.message() for t in inputs)))
    if outputs:
        msg.append(("output", PbList(t.message() for t in outputs)))
    groups = list(instance_group) if instance_group else list(aux.instance_group)
    if groups:
        msg.append(("instance_group", PbList(groups)))
    merged: dict[str, Message] = {}
    for entry in [*aux.parameters, *parameters]:
        merged[str(get_one(entry, "key", ""))] = entry
    if merged:
        msg.append(("parameters", PbList(merged[k] for k in sorted(merged))))
    msg.extend(aux.rest)
    header = f"# Generated by deploy2standalone.clearml from clearml-serving endpoint {url!r}.\n"
    return header + format_message(msg)
