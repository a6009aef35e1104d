# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Triton model repository from clearml-serving endpoints: plan, check, write.

Private to this collection: not a public API, may change without notice.

``plan_repository(endpoints, models, ...)`` checks every ``triton`` endpoint and returns what the
repository must hold: per model its folder name (the name clearml-serving's inference service asks
Triton for), its files (version folder ``1/``, the file names Triton's backends expect), its
``config.pbtxt`` text and a digest of all of it. Every problem of every endpoint is collected first and
raised at once (``TritonConfigError``, ``.problems``), before anything is written.

``write_repository(plan, dest)`` writes only the models whose content differs from what ``dest``
holds: each one is built in a fresh folder beside ``dest`` and renamed into place, so a running Triton
(EXPLICIT model control) never sees half a model, and the caller loads exactly the models reported
``added``/``updated``. ``compare_repository`` answers the same question without writing (check mode).

Inputs::

    endpoints = {"<url>": {engine_type, serving_url, version, model_id, input_size, input_type,
                           input_name, output_size, output_type, output_name, auxiliary_cfg}, ...}
        (the ``endpoints`` configuration object as clearml-serving stores it, plus the entries of
        ``model_monitoring_eps``: monitored versions are endpoints keyed ``<base url>/<version>``)
    models = {"<model id>": {"framework": "ONNX", "package": False,
                             "files": [{"path": "model.onnx", "local": "/bundle/blobs/sha256/…",
                                        "sha256": "<optional, else 'blob', else computed>"}]}}

A package model (ClearML system tag ``package``) is either one ``.zip`` (as ClearML stores it; its
members are the package's files) or several files (already a folder). Everything else has one file.

See docs/triton.md for naming, layouts, config generation and the validation rules.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_config import (
    ONNX,
    PYTHON,
    PYTORCH,
    TENSORRT,
    TF_GRAPHDEF,
    TF_SAVEDMODEL,
    VERSION_DIR,
    framework_family,
    instance_group_messages,
    model_name,
    parameter,
    parse_aux,
    render_config,
    resolve_serving,
    tensor_specs,
)

__all__ = [
    "ModelPlan",
    "PlannedFile",
    "RepositoryPlan",
    "TritonConfigError",
    "compare_repository",
    "plan_repository",
    "repository_state",
    "tree_digest",
    "write_repository",
]

CHUNK = 1 << 20
CONFIG_FILE = "config.pbtxt"
PYTHON_MODEL_FILE = "model.py"
ONNX_PARAMETER = "onnx_model_filename"  # read by tools/d2s_tools/seed/assets/model.py
GENERIC_PARAMETER = "model_filename"

# Weights kind -> (file name in the version folder, suffixes that identify the main file in a package)
_MAIN_FILE = {
    ONNX: ("model.onnx", (".onnx",)),
    PYTORCH: ("model.pt", (".pt", ".pth")),
    TENSORRT: ("model.plan", (".plan", ".engine")),
    PYTHON: ("model.py", ()),
}


class TritonConfigError(ClearmlModuleError):
    """Endpoints that cannot become a working model repository; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        msg = f"Triton model repository: {count} problem{'s' if count != 1 else ''}:\n- " + "\n- ".join(
            self.problems
        )
        super().__init__(msg, problems=self.problems)


@dataclass(frozen=True)
class _Source:
    """Where a planned file's bytes come from: a local file, a zip member, or generated text."""

    local: str | None = None
    member: str | None = None
    data: bytes | None = None

    def describe(self) -> str:
        if self.data is not None:
            return "generated"
        if self.member is not None:
            return f"{self.local}!{self.member}"
        return str(self.local)


@dataclass(frozen=True)
class PlannedFile:
    """One file of a model folder: its path inside the folder, content digest and size."""

    path: str
    sha256: str
    size: int
    source: _Source

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "source": self.source.describe()}


@dataclass
class ModelPlan:
    """One model folder of the repository."""

    name: str
    url: str
    model_id: str
    framework: str | None
    declaration: dict[str, str]
    config: str
    files: list[PlannedFile]
    digest: str
    python_backend: bool = False

    @property
    def dir(self) -> str:
        return self.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dir": self.dir,
            "url": self.url,
            "model_id": self.model_id,
            "framework": self.framework,
            **self.declaration,
            "python_backend": self.python_backend,
            "config": self.config,
            "files": [f.as_dict() for f in self.files],
            "digest": self.digest,
        }


@dataclass
class RepositoryPlan:
    """Every model folder, the endpoints left out (not Triton) and warnings worth showing."""

    models: list[ModelPlan]
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return _digest_lines(f"{m.name}\0{m.digest}" for m in self.models)

    def by_name(self) -> dict[str, ModelPlan]:
        return {m.name: m for m in self.models}

    def as_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "models": [m.as_dict() for m in self.models],
            "skipped": list(self.skipped),
            "warnings": list(self.warnings),
        }


def _digest_lines(lines: Any) -> str:
    h = hashlib.sha256()
    for line in sorted(lines):
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def tree_digest(files: Mapping[str, str]) -> str:
    """Digest of a model folder from ``{relative path: sha256}``: what ``ModelPlan.digest`` is."""
    return _digest_lines(f"{path}\0{sha}" for path, sha in files.items())


def _sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sha256_member(zf: zipfile.ZipFile, member: str) -> str:
    h = hashlib.sha256()
    with zf.open(member) as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _safe_relpath(path: Any) -> str | None:
    """A relative POSIX path without ``..``, empty or absolute parts; ``None`` if unsafe."""
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        return None
    if path.startswith("/"):
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


# --- model sources -------------------------------------------------------------------------------


@dataclass
class _Entry:
    """A file of a model as given: relative path in the model (folder), source, digest, size."""

    path: str
    source: _Source
    sha256: str
    size: int


def _known_digest(spec: Mapping[str, Any]) -> str | None:
    for key in ("sha256", "blob"):
        value = spec.get(key)
        if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            return value
    return None


def _model_entries(model: Mapping[str, Any]) -> tuple[list[_Entry], bool, list[str]]:
    """The files of a model (zip packages opened), whether it is a folder, and problems."""
    files = model.get("files")
    package = bool(model.get("package"))
    if not isinstance(files, (list, tuple)) or not files:
        return [], package, ["the model has no files"]
    problems: list[str] = []
    checked: list[tuple[str, str, Mapping[str, Any]]] = []
    for spec in files:
        if not isinstance(spec, Mapping):
            problems.append(f"model file entry {spec!r} is not a mapping")
            continue
        rel = _safe_relpath(spec.get("path"))
        local = spec.get("local")
        if rel is None:
            problems.append(f"model file path {spec.get('path')!r} is not a safe relative path")
            continue
        if not isinstance(local, (str, os.PathLike)) or not os.path.isfile(local):
            problems.append(f"model file {rel!r} is missing (local copy {local!r} not found)")
            continue
        checked.append((rel, os.fspath(local), spec))
    if problems:
        return [], package, problems
    if not package:
        if len(checked) != 1:
            return [], package, [f"a model that is not a package must have one file, not {len(checked)}"]
        rel, local, spec = checked[0]
        sha = _known_digest(spec) or _sha256_file(local)
        return [_Entry(rel, _Source(local=local), sha, os.path.getsize(local))], False, []
    if len(checked) == 1 and checked[0][0].lower().endswith(".zip"):
        return _zip_entries(checked[0][1], checked[0][0])
    entries = []
    seen: set[str] = set()
    for rel, local, spec in checked:
        if rel in seen:
            problems.append(f"model file {rel!r} is listed twice")
        seen.add(rel)
        sha = _known_digest(spec) or _sha256_file(local)
        entries.append(_Entry(rel, _Source(local=local), sha, os.path.getsize(local)))
    return entries, True, problems


def _zip_entries(local: str, rel: str) -> tuple[list[_Entry], bool, list[str]]:
    problems: list[str] = []
    entries: list[_Entry] = []
    try:
        with zipfile.ZipFile(local) as zf:
            seen: set[str] = set()
            for info in zf.infolist():
                if info.is_dir():
                    continue
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (a file)
                if kind and kind != stat.S_IFREG:
                    problems.append(f"package {rel}: member {info.filename!r} is not a regular file")
                    continue
                name = _safe_relpath(info.filename)
                if name is None:
                    problems.append(
                        f"package {rel}: member name {info.filename!r} is not a safe relative path"
                    )
                    continue
                if name in seen:
                    problems.append(f"package {rel}: member {name!r} appears twice")
                    continue
                seen.add(name)
                entries.append(
                    _Entry(
                        name,
                        _Source(local=local, member=info.filename),
                        _sha256_member(zf, info.filename),
                        info.file_size,
                    )
                )
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        return [], True, [f"package {rel} cannot be read as a zip: {exc}"]
    if not entries and not problems:
        problems.append(f"package {rel} is empty")
    return entries, True, problems


# --- layouts -------------------------------------------------------------------------------------


def _strip_common_folder(entries: list[_Entry], marker: str) -> list[_Entry]:
    """A package whose files all sit in one folder that holds ``marker``: use that folder as the root."""
    if any(e.path == marker for e in entries):
        return entries
    tops = {e.path.split("/", 1)[0] for e in entries}
    if len(tops) == 1 and all("/" in e.path for e in entries):
        top = tops.pop()
        if any(e.path == f"{top}/{marker}" for e in entries):
            return [_Entry(e.path.split("/", 1)[1], e.source, e.sha256, e.size) for e in entries]
    return entries


def _place_folder(
    entries: list[_Entry], weights: str
) -> tuple[list[tuple[str, _Entry]], str | None, list[str]]:
    """Package contents into the version folder; the main file renamed to the name Triton loads."""
    target, suffixes = _MAIN_FILE[weights]
    entries = _strip_common_folder(entries, target)
    top_level = [e for e in entries if "/" not in e.path]
    if any(e.path == target for e in top_level):
        return [(e.path, e) for e in entries], target, []
    candidates = [e for e in top_level if suffixes and e.path.lower().endswith(suffixes)]
    if len(candidates) == 1:
        main = candidates[0]
        return [(target if e is main else e.path, e) for e in entries], target, []
    names = sorted(e.path for e in entries)
    if candidates:
        why = f"several candidates {sorted(e.path for e in candidates)}"
    else:
        why = f"no {target}" + (f" or {'/'.join('*' + s for s in suffixes)} file" if suffixes else "")
    return (
        [],
        None,
        [f"the package has {why} at its top level (files: {names}); Triton loads {VERSION_DIR}/{target}"],
    )


def _layout(  # noqa: PLR0911 - one early answer per layout
    weights: str, entries: list[_Entry], package: bool
) -> tuple[list[tuple[str, _Entry]], str | None, list[str]]:
    """``[(path in the version folder, entry)]``, the main file's name there, problems."""
    if weights == TF_SAVEDMODEL:
        if not package:
            return [], None, ["a TensorFlow SavedModel must be a package (a folder), not a single file"]
        entries = _strip_common_folder(entries, "saved_model.pb")
        if not any(e.path in ("saved_model.pb", "saved_model.pbtxt") for e in entries):
            names = sorted(e.path for e in entries)
            return [], None, [f"the package holds no saved_model.pb at its top level (files: {names})"]
        return [(f"model.savedmodel/{e.path}", e) for e in entries], "model.savedmodel", []
    if weights == TF_GRAPHDEF:
        if package:
            return [], None, ["a TensorFlow GraphDef is a single file, not a package"]
        return [("model.graphdef", entries[0])], "model.graphdef", []
    if weights == "":  # python backend, framework without a known layout: files as given
        if not package:
            name = posixpath.basename(entries[0].path)
            return [(name, entries[0])], name, []
        return [(e.path, e) for e in entries], None, []
    if not package:
        entry = entries[0]
        if weights == PYTHON and not entry.path.endswith(".py"):
            return [], None, [f"backend python needs a model.py; the model's single file is {entry.path!r}"]
        return [(_MAIN_FILE[weights][0], entry)], _MAIN_FILE[weights][0], []
    return _place_folder(entries, weights)


# --- plan ----------------------------------------------------------------------------------------


def _python_model_bytes(python_model: Any) -> bytes | None:
    if python_model is None:
        return None
    if isinstance(python_model, bytes):
        return python_model
    if isinstance(python_model, str):
        return python_model.encode("utf-8")
    if isinstance(python_model, os.PathLike):
        try:
            return Path(python_model).read_bytes()
        except OSError as exc:
            raise TritonConfigError(
                [f"python_model {os.fspath(python_model)!r} cannot be read: {exc}"]
            ) from exc
    raise TritonConfigError(
        [f"python_model must be text, bytes or a path, not {type(python_model).__name__}"]
    )


@dataclass
class _Options:
    families: tuple[str, ...]
    python_model: bytes | None
    default_groups: list[Any]
    group_overrides: dict[str, list[Any]]


def _python_files(
    serving: Any, files: list[PlannedFile], main: str | None, options: _Options
) -> tuple[list[Any], list[str]]:
    """The generic model.py beside the weights (python_backend_for) and its file-name parameter."""
    if not serving.python_generic:
        return [], []
    problems = []
    if options.python_model is None:
        problems.append(
            "python_backend_for serves this model through the python backend, but no python_model was given"
        )
    elif any(f.path == f"{VERSION_DIR}/{PYTHON_MODEL_FILE}" for f in files):
        problems.append(
            f"the model's own files include {PYTHON_MODEL_FILE}, which the python backend's model.py would replace"
        )
    else:
        data = options.python_model
        files.append(
            PlannedFile(
                f"{VERSION_DIR}/{PYTHON_MODEL_FILE}",
                hashlib.sha256(data).hexdigest(),
                len(data),
                _Source(data=data),
            )
        )
    if main is None:
        return [], problems
    key = ONNX_PARAMETER if serving.weights == ONNX else GENERIC_PARAMETER
    return [parameter(key, main)], problems


def _plan_endpoint(
    url: str, endpoint: Mapping[str, Any], name: str, models: Mapping[str, Any], options: _Options
) -> tuple[ModelPlan | None, list[str], list[str]]:
    """One triton endpoint: its model plan, or the problems that prevent it; and warnings."""
    found: list[str] = []
    inputs, outputs, io_problems = tensor_specs(endpoint)
    found.extend(io_problems)
    aux, aux_problems = parse_aux(endpoint.get("auxiliary_cfg"))
    found.extend(aux_problems)
    if aux.name is not None and aux.name != name:
        found.append(f"auxiliary_cfg name {aux.name!r} differs from the model's folder name {name!r}")

    model_id = endpoint.get("model_id")
    model = models.get(model_id) if isinstance(model_id, str) else None
    entries: list[_Entry] = []
    package = False
    if not isinstance(model_id, str) or not model_id:
        found.append("model_id is missing")
    elif not isinstance(model, Mapping):
        found.append(f"model {model_id} is not among the models given (missing from the bundle?)")
    else:
        entries, package, file_problems = _model_entries(model)
        found.extend(file_problems)

    framework = model.get("framework") if isinstance(model, Mapping) else None
    serving = None
    if isinstance(model, Mapping):  # without the model, its backend is anyone's guess
        serving, serving_problems = resolve_serving(
            framework, aux, package=package, python_backend_for=options.families
        )
        found.extend(serving_problems)
    placed: list[tuple[str, _Entry]] = []
    main = None
    if serving is not None and entries:
        placed, main, layout_problems = _layout(serving.weights, entries, package)
        found.extend(layout_problems)
    files = [PlannedFile(f"{VERSION_DIR}/{rel}", e.sha256, e.size, e.source) for rel, e in placed]
    extra_parameters: list[Any] = []
    if serving is not None:
        extra_parameters, python_problems = _python_files(serving, files, main, options)
        found.extend(python_problems)
    paths = [f.path for f in files]
    found.extend(f"two model files land on {p}" for p in sorted({p for p in paths if paths.count(p) > 1}))
    if found or serving is None or not isinstance(model_id, str):
        return None, found, []

    warnings = []
    if aux.max_batch_size > 0 and any(t.dims and t.dims[0] == -1 for t in inputs):
        warnings.append(
            f"endpoint {url!r}: max_batch_size is {aux.max_batch_size}, so dims exclude the batch dimension "
            "and a leading -1 is a variable dimension after it (written as given, as clearml-serving does)"
        )
    config = render_config(
        name=name,
        url=url,
        serving=serving,
        aux=aux,
        inputs=inputs,
        outputs=outputs,
        instance_group=options.group_overrides.get(
            name, options.group_overrides.get(url, options.default_groups)
        ),
        parameters=extra_parameters,
    )
    data = config.encode("utf-8")
    files.append(PlannedFile(CONFIG_FILE, hashlib.sha256(data).hexdigest(), len(data), _Source(data=data)))
    files.sort(key=lambda f: f.path)
    plan = ModelPlan(
        name=name,
        url=url,
        model_id=model_id,
        framework=framework,
        declaration=dict(serving.declaration),
        config=config,
        files=files,
        digest=tree_digest({f.path: f.sha256 for f in files}),
        python_backend=serving.python_generic,
    )
    return plan, [], warnings


def plan_repository(
    endpoints: Mapping[str, Mapping[str, Any]],
    models: Mapping[str, Mapping[str, Any]],
    *,
    python_backend_for: Sequence[str] = (),
    python_model: str | bytes | os.PathLike[str] | None = None,
    instance_group: Any = None,
    instance_groups: Mapping[str, Any] | None = None,
) -> RepositoryPlan:
    """Check every Triton endpoint and plan the repository; raise ``TritonConfigError`` with all problems.

    - ``python_backend_for``: frameworks (``onnx``, ``pytorch``, ...) served through Triton's python
      backend with ``python_model`` (the generic ``model.py``: text, bytes, or a path) beside the
      weights, for Tritons without the framework's own backend.
    - ``instance_group``: the instance groups of every model (a dict or a list of dicts: ``kind``,
      ``count``, ``gpus``); ``instance_groups``: per model name or endpoint url, overriding it.
      Unset: the endpoint's auxiliary config decides, else Triton's default.
    """
    problems: list[str] = []
    default_groups, group_problems = instance_group_messages(instance_group, "instance_group")
    problems.extend(group_problems)
    overrides: dict[str, list[Any]] = {}
    for key, spec in sorted((instance_groups or {}).items()):
        overrides[key], group_problems = instance_group_messages(spec, f"instance_groups[{key!r}]")
        problems.extend(group_problems)
    options = _Options(
        families=tuple(sorted({f for f in (framework_family(x) for x in python_backend_for) if f})),
        python_model=_python_model_bytes(python_model),
        default_groups=default_groups,
        group_overrides=overrides,
    )

    plan = RepositoryPlan(models=[])
    names: dict[str, list[str]] = {}
    for url in sorted(endpoints):
        endpoint = endpoints[url]
        if not isinstance(endpoint, Mapping):
            problems.append(f"endpoint {url!r}: not a mapping")
            continue
        engine = endpoint.get("engine_type")
        if engine != "triton":
            plan.skipped.append({"url": url, "reason": f"engine_type {engine!r} is not served by Triton"})
            continue
        name, found = model_name(url, endpoint)
        names.setdefault(name, []).append(url)
        model, more, warnings = _plan_endpoint(url, endpoint, name, models, options)
        found.extend(more)
        problems.extend(f"endpoint {url!r}: {p}" for p in found)
        plan.warnings.extend(warnings)
        if model is not None and not found:
            plan.models.append(model)

    for name, urls in sorted(names.items()):
        if len(urls) > 1:
            problems.append(
                f"endpoints {', '.join(repr(u) for u in urls)} all map to the model folder {name!r}"
            )
    unknown = sorted(set(overrides) - set(names) - set(endpoints))
    problems.extend(f"instance_groups[{k!r}]: no triton endpoint or model of that name" for k in unknown)
    if problems:
        raise TritonConfigError(problems)
    plan.models.sort(key=lambda m: m.name)
    return plan


# --- on disk -------------------------------------------------------------------------------------


# Triton's python backend imports model.py from the version folder, and Python caches the bytecode
# beside it (1/__pycache__/) unless PYTHONDONTWRITEBYTECODE is set or the repository is read-only.
# A cache is not content: it is left out of a folder's digest.
BYTECODE_CACHE = "__pycache__"


def _folder_digest(folder: Path) -> str | None:
    """Digest of a model folder as ``tree_digest`` computes it (``__pycache__`` folders left out);
    ``None`` if it holds anything but regular files and folders (a symlink, a device): such a folder
    is always rewritten."""
    files: dict[str, str] = {}
    for root, dirs, names in os.walk(folder):
        base = Path(root)
        for d in dirs:
            if (base / d).is_symlink():
                return None
        dirs[:] = sorted(d for d in dirs if d != BYTECODE_CACHE)
        for n in names:
            path = base / n
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                return None
            files[path.relative_to(folder).as_posix()] = _sha256_file(path)
    return tree_digest(files)


def repository_state(dest: str | os.PathLike[str]) -> dict[str, str | None]:
    """``{model folder: digest}`` of what ``dest`` holds (hidden entries and plain files ignored)."""
    root = Path(dest)
    if not root.is_dir():
        return {}
    state: dict[str, str | None] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink() or not entry.is_dir():
            if entry.is_symlink():
                state[entry.name] = None
            continue
        state[entry.name] = _folder_digest(entry)
    return state


def compare_repository(
    plan: RepositoryPlan, dest: str | os.PathLike[str], *, prune: bool = True
) -> dict[str, Any]:
    """What ``write_repository`` would do, without writing: added/updated/unchanged/removed names."""
    state = repository_state(dest)
    wanted = plan.by_name()
    added = [n for n in wanted if n not in state]
    updated = [n for n in wanted if n in state and state[n] != wanted[n].digest]
    unchanged = [n for n in wanted if n in state and state[n] == wanted[n].digest]
    removed = sorted(n for n in state if n not in wanted) if prune else []
    return {
        "changed": bool(added or updated or removed),
        "added": sorted(added),
        "updated": sorted(updated),
        "unchanged": sorted(unchanged),
        "removed": removed,
        "digest": plan.digest,
        "models": {m.name: m.digest for m in plan.models},
    }


def _stream_copy(fin: Any, dst: Path) -> str:
    h = hashlib.sha256()
    with open(dst, "wb") as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            fout.write(chunk)
    return h.hexdigest()


def _copy_verified(src: _Source, dst: Path, expected: str, hardlink: bool) -> None:
    """Write one planned file and check its sha256 (a hard link is checked, never chmod-ed)."""
    linked = False
    if src.data is not None:
        dst.write_bytes(src.data)
        actual = hashlib.sha256(src.data).hexdigest()
    elif src.local is None:
        raise ClearmlModuleError(f"Planned file {dst.name} has no source")
    elif src.member is not None:
        with zipfile.ZipFile(src.local) as zf, zf.open(src.member) as fin:
            actual = _stream_copy(fin, dst)
    else:
        if hardlink:
            try:
                os.link(src.local, dst)
                linked = True
            except OSError:  # another file system, or links not allowed: copy
                linked = False
        if linked:
            actual = _sha256_file(dst)
        else:
            with open(src.local, "rb") as fin:
                actual = _stream_copy(fin, dst)
    if actual != expected:
        raise ClearmlModuleError(
            f"Model file {src.describe()} has sha256 {actual}, expected {expected}", path=str(dst)
        )
    if not linked:
        dst.chmod(0o644)


def _build_model(model: ModelPlan, folder: Path, hardlink: bool) -> None:
    folder.mkdir(mode=0o755)
    for f in model.files:
        dst = folder / f.path
        dst.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        _copy_verified(f.source, dst, f.sha256, hardlink)
    for root, dirs, _ in os.walk(folder):
        for d in dirs:
            (Path(root) / d).chmod(0o755)
    folder.chmod(0o755)


def write_repository(
    plan: RepositoryPlan,
    dest: str | os.PathLike[str],
    *,
    prune: bool = True,
    hardlink: bool = False,
) -> dict[str, Any]:
    """Make ``dest`` hold exactly the planned models; touch only the folders that differ.

    Every changed model is first built completely in a fresh folder beside ``dest`` (same file system),
    each file's sha256 checked against the plan; only then are the folders renamed into place, one
    rename per model. ``prune`` removes model folders the plan does not list (hidden entries are never
    touched). ``hardlink`` links local model files instead of copying them where the file system allows
    (they then share the blob's permissions; never edit files in the repository).

    Returns ``compare_repository``'s answer: ``changed``, ``added``, ``updated``, ``unchanged``,
    ``removed``, ``digest`` and ``models`` (name -> digest). Load ``added`` + ``updated`` and unload
    ``removed`` in EXPLICIT model control mode.
    """
    root = Path(dest)
    result = compare_repository(plan, root, prune=prune)
    if not result["changed"]:
        return result
    root.mkdir(parents=True, exist_ok=True)
    wanted = plan.by_name()
    real = root.resolve()  # a symlinked dest: stage beside its target, on the same file system
    stage = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent))
    try:
        build = stage / "new"
        old = stage / "old"
        build.mkdir()
        old.mkdir()
        for name in [*result["added"], *result["updated"]]:
            try:
                _build_model(wanted[name], build / name, hardlink)
            except OSError as exc:
                raise ClearmlModuleError(f"Cannot write Triton model {name!r} beside {root}: {exc}") from exc
        for name in [*result["updated"], *result["removed"]]:
            os.rename(root / name, old / name)
        for name in result["added"]:  # a plain file or dangling link of that name is in the way
            if os.path.lexists(root / name):
                os.rename(root / name, old / name)
        for name in [*result["added"], *result["updated"]]:
            os.rename(build / name, root / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return result
