# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The core of ``triton_image``: build the own Triton image (dev side), serve a bundle's endpoints (site side).

Private to this collection: not a public API, may change without notice.

States:

- ``built``: build the image FROM a tritonserver base (``_triton_image``), optionally baking the model
  repository in, and save it into a blob store plus a record file for the transport.
- ``present``: the image on the site's daemon (loaded from a record + blob store or from the bundle,
  skipped when the image ID is there) and the model repository written from the bundle's endpoints.
- ``started``: ``present`` plus the container running (``_triton_container``), every model loaded
  through the repository API and READY, and one smoke inference per model (``_triton_http``).
- ``absent``: the container removed; the image too with ``remove_image``.

A new model version on a running container: the changed model folders are copied aside (hard links),
the repository is rewritten (only those folders), and each changed model is loaded again (EXPLICIT
mode). When a load fails, Triton keeps serving the version it had; the previous folder is put back and
loaded again, so what runs and what is on disk agree, and the failure is reported. Which digest each
model was last loaded with is kept beside the repository (``.<repository>.d2s-loaded.json``), so a
repository written without a load (``present``, or an interrupted run) is reloaded by the next run.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle import load_bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import (
    atomic_write_bytes,
    blob_relpath,
    pretty_json,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton import (
    RepositoryPlan,
    compare_repository,
    plan_repository,
    repository_state,
    write_repository,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_container import (
    ContainerSpec,
    DockerCli,
    build_spec,
    container_differences,
    current_container,
    probe_address,
    remove_container,
    run_container,
    start_container,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_http import (
    SmokeError,
    TritonHttp,
    TritonUnreachable,
    check_response,
    endpoint_tensors,
    smoke_request,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_image import (
    SiteImage,
    build_image,
    read_record,
    remove_image,
    site_image,
    store_image,
)

PACKAGE_TAG = "package"  # ClearML's system tag of a model uploaded as a folder (clearml.Model._package_tag)
READY = "READY"


# --------------------------------------------------------------------------------------------- the bundle


def bundle_serving(bundle: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(manifest, endpoints, models)`` of a bundle directory, the models with the local paths of their blobs.

    The endpoints are the serving service's ``endpoints`` plus ``model_monitoring_eps`` when the bundle
    carries the monitored versions (keyed ``<url>/<version>``, as clearml-serving's inference service
    keys them).
    """
    root = Path(bundle)
    if not root.is_dir():
        raise ClearmlModuleError(f"bundle '{bundle}' is not a directory (unpack or assemble it first)")
    manifest = load_bundle(root).manifest.data
    serving = manifest.get("serving") or {}
    endpoints = {**dict(serving.get("model_monitoring_eps") or {}), **dict(serving.get("endpoints") or {})}
    models: dict[str, Any] = {}
    for model_id, entry in (manifest.get("models") or {}).items():
        models[model_id] = {
            "framework": entry.get("framework"),
            "package": PACKAGE_TAG in (entry.get("system_tags") or []),
            "files": [
                {"path": f["path"], "local": str(root / blob_relpath(f["blob"])), "blob": f["blob"]}
                for f in entry.get("files") or []
            ],
        }
    return manifest, endpoints, models


def select_endpoints(endpoints: Mapping[str, Any], patterns: list[str] | None) -> dict[str, Any]:
    """The endpoints whose url matches one of ``patterns`` (shell-style); all of them without patterns."""
    if not patterns:
        return dict(endpoints)
    triton = [
        u for u, ep in endpoints.items() if isinstance(ep, Mapping) and ep.get("engine_type") == "triton"
    ]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(u, p) for u in triton)]
    if unmatched:
        raise ClearmlModuleError(
            f"endpoints {unmatched} match no triton endpoint of the bundle (it has {sorted(triton)})"
        )
    return {u: ep for u, ep in endpoints.items() if any(fnmatch.fnmatchcase(u, p) for p in patterns)}


def make_plan(
    params: Mapping[str, Any], endpoints: Mapping[str, Any], models: Mapping[str, Any]
) -> RepositoryPlan:
    python_model: Path | str | None = params.get("python_model_content")
    if python_model is None and params.get("python_model"):
        python_model = Path(params["python_model"])
    return plan_repository(
        select_endpoints(endpoints, params.get("endpoints")),
        models,
        python_backend_for=params.get("python_backend_for") or [],
        python_model=python_model,
        instance_group=params.get("instance_group") or None,
        instance_groups=params.get("instance_groups") or None,
    )


# --------------------------------------------------------------------------------------------- core


class TritonImageCore:
    """Runs one ``triton_image`` task; raises ClearmlModuleError (with partial results) on failure."""

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        check_mode: bool = False,
        diff: bool = False,
        docker: DockerCli | None = None,
    ) -> None:
        self.params = dict(params)
        self.check_mode = check_mode
        self.diff = diff
        self.docker = docker or DockerCli(check_mode=check_mode)
        self.warnings: list[str] = []

    def run(self) -> dict[str, Any]:
        state = self.params.get("state") or "started"
        handler = {
            "built": self.built,
            "present": self.present,
            "started": self.started,
            "absent": self.absent,
        }
        if state not in handler:
            raise ClearmlModuleError(f"state {state!r} is not one of {', '.join(handler)}")
        try:
            result = handler[state]()
        except ClearmlModuleError as exc:
            exc.result["warnings"] = self.warnings + list(exc.result.get("warnings", []))
            raise
        result["state"] = state
        result["warnings"] = self.warnings + list(result.get("warnings", []))
        if not self.diff:
            result.pop("diff", None)
        return result

    # -- dev side ---------------------------------------------------------------------------------

    def built(self) -> dict[str, Any]:
        p = self.params
        plan = None
        if p.get("bake_models"):
            if not p.get("bundle"):
                raise ClearmlModuleError(
                    "bake_models needs bundle: the models baked in come from its endpoints"
                )
            _manifest, endpoints, models = bundle_serving(p["bundle"])
            plan = make_plan(p, endpoints, models)
            self.warnings.extend(plan.warnings)
        before = self.docker.inspect("image", p["image"])
        build = build_image(
            self.docker,
            image=p["image"],
            base_image=p["base_image"],
            wheelhouse_dir=p.get("wheelhouse"),
            python_packages=p.get("python_packages"),
            plan=plan,
            timeout=int(p.get("build_timeout") or 1800),
        )
        result: dict[str, Any] = {"changed": build["changed"], "image": build}
        if plan is not None:
            result["repository"] = {"digest": plan.digest, "models": {m.name: m.digest for m in plan.models}}
        if p.get("image_store"):
            stored = store_image(
                self.docker,
                image=p["image"],
                image_id=build["id"],
                store_root=p["image_store"],
                record_path=p["image_record"],
            )
            result["changed"] = result["changed"] or stored["changed"]
            result["record"] = stored["record"]
            result["record_path"] = stored["record_path"]
        verb = "would build" if self.check_mode else "built"
        if build["built"]:
            result["msg"] = f"{verb} {p['image']} FROM {p['base_image']}"
        elif build["tagged"]:
            result["msg"] = f"tagged the image these inputs built before as {p['image']}"
        else:
            result["msg"] = f"{p['image']} is up to date ({build['id']})"
        result["diff"] = {
            "before": {"image_id": (before or {}).get("Id"), "inputs_digest": _label(before, "inputs")},
            "after": {"image_id": build["id"], "inputs_digest": build["inputs_digest"]},
        }
        return result

    # -- site side ---------------------------------------------------------------------------------

    def _site_inputs(self) -> tuple[RepositoryPlan, dict[str, Any], dict[str, dict[str, Any]]]:
        """The plan, the selected endpoints by model name, and the smoke samples by model name."""
        p = self.params
        manifest, endpoints, models = bundle_serving(p["bundle"])
        self._manifest = manifest
        plan = make_plan(p, endpoints, models)
        self.warnings.extend(plan.warnings)
        if not plan.models:
            self.warnings.append("no triton endpoint selected: Triton runs without models")
        by_name = {m.name: endpoints[m.url] for m in plan.models}
        samples: dict[str, dict[str, Any]] = {}
        urls = {m.url: m.name for m in plan.models}
        for key, sample in (p.get("smoke_samples") or {}).items():
            name = urls.get(key, key)
            if name not in by_name:
                raise ClearmlModuleError(
                    f"smoke_samples: {key!r} is neither a served model nor an endpoint url"
                )
            if not isinstance(sample, Mapping):
                raise ClearmlModuleError(f"smoke_samples[{key!r}] must map input names to values")
            inputs, outputs, mbs = endpoint_tensors(by_name[name])
            try:
                smoke_request(inputs, outputs, mbs, sample, model=name)  # checked before any change
            except SmokeError as exc:
                raise ClearmlModuleError(exc.msg) from None
            samples[name] = dict(sample)
        return plan, by_name, samples

    def _image(self) -> SiteImage:
        p = self.params
        return site_image(
            self.docker,
            image=p.get("image"),
            record_path=p.get("image_record"),
            store_root=p.get("image_store"),
            bundle_path=p.get("bundle"),
            manifest_images=getattr(self, "_manifest", {}).get("images") or [],
        )

    def _repository(self, plan: RepositoryPlan, image: SiteImage) -> tuple[str | None, dict[str, Any]]:
        """Where the models come from (None: baked into the image) and what the repository needs."""
        baked = image.baked_models
        if baked is not None:
            wanted = {m.name: m.digest for m in plan.models}
            if baked != wanted:
                raise ClearmlModuleError(
                    f"image {image.ref} has models baked in that differ from the bundle's endpoints "
                    f"(image: {sorted(baked)}, bundle: {sorted(wanted)}, or other digests): build it again",
                    baked_models=baked,
                    planned_models=wanted,
                )
            return None, {"changed": False, "baked": True, "added": [], "updated": [], "removed": [],
                          "unchanged": sorted(wanted), "digest": plan.digest, "models": wanted}  # fmt: skip
        path = self.params["model_repository"]
        compared = compare_repository(plan, path)
        compared.update(baked=False, path=path)
        return path, compared

    def present(self) -> dict[str, Any]:
        plan, _eps, _samples = self._site_inputs()
        image = self._image()
        repo_path, repo = self._repository(plan, image)
        before = repository_state(repo_path) if repo_path else {}
        if repo_path and repo["changed"] and not self.check_mode:
            repo = {
                **write_repository(plan, repo_path, hardlink=self.params["hardlink"]),
                "baked": False,
                "path": repo_path,
            }
        changed = bool(image.load.get("changed")) or repo["changed"]
        return {
            "changed": changed,
            "image": image.as_dict(),
            "repository": repo,
            "endpoints": {m.url: m.name for m in plan.models},
            "skipped_endpoints": plan.skipped,
            "msg": self._summary(changed, image, repo, None),
            "diff": {"before": {"repository": before}, "after": {"repository": repo["models"]}},
        }

    def started(self) -> dict[str, Any]:  # noqa: PLR0912, PLR0915 - one readable sequence
        p = self.params
        plan, endpoints, samples = self._site_inputs()
        image = self._image()
        repo_path, repo = self._repository(plan, image)
        repo_before = repository_state(repo_path) if repo_path else dict(repo["models"])
        spec = build_spec(p, image=image.ref, repository=repo_path)
        current = current_container(self.docker, p["name"])
        differences = container_differences(current, spec, image.id)
        if current is None:
            action = "create"
        elif differences:
            action = "recreate"
        elif not current.running or current.restarting:
            action = "start"
        else:
            action = "none"
        state_file = _loaded_state_path(repo_path, p["name"])
        loaded_before = _read_loaded(state_file, current.id if current else None)
        result: dict[str, Any] = {
            "image": image.as_dict(),
            "repository": repo,
            "endpoints": {m.url: m.name for m in plan.models},
            "skipped_endpoints": plan.skipped,
            "container": {
                "name": p["name"],
                "id": current.id if current else None,
                "action": action,
                "differences": differences if current is not None else [],
                "spec": spec.as_dict(),
            },
            "models": {},
            "failed_models": [],
            "rolled_back": [],
            "smoke": {},
            "diff": {
                "before": {
                    "image_id": current.image_id if current else None,
                    "container": current.spec if current else None,
                    "repository": repo_before,
                },
                "after": {
                    "image_id": image.id,
                    "container": spec.as_dict(),
                    "repository": dict(repo["models"]),
                },
            },
        }
        changed = bool(image.load.get("changed")) or repo["changed"] or action != "none"

        if self.check_mode:
            predicted = self._predict_loads(plan, repo, action, loaded_before)
            result["models"] = predicted
            changed = changed or any(m.get("would_load") for m in predicted.values())
            result["changed"] = changed
            result["msg"] = self._summary(changed, image, repo, action)
            return result

        # Write the repository; on a container that stays, keep the folders being replaced aside first.
        backups: dict[str, Path] = {}
        backup_dir: Path | None = None
        try:
            if repo_path and repo["changed"]:
                if action == "none" and repo["updated"]:
                    backup_dir = Path(tempfile.mkdtemp(prefix=f".{Path(repo_path).name}.d2s-previous-",
                                                       dir=Path(repo_path).resolve().parent))  # fmt: skip
                    for name in repo["updated"]:
                        shutil.copytree(
                            Path(repo_path) / name, backup_dir / name, copy_function=_link_or_copy
                        )
                        backups[name] = backup_dir / name
                written = write_repository(plan, repo_path, hardlink=p["hardlink"])
                repo.update({k: written[k] for k in ("added", "updated", "unchanged", "removed", "changed")})

            if action in ("create", "recreate"):
                if current is not None:
                    remove_container(self.docker, p["name"])
                result["container"]["id"] = run_container(self.docker, spec)
            elif action == "start":
                start_container(self.docker, p["name"])
            http = self._wait_live(spec)
            container = current_container(self.docker, p["name"])
            container_id = container.id if container else result["container"]["id"]
            result["container"]["id"] = container_id

            fresh = action in ("create", "recreate", "start")
            models, loaded_now, rolled_back = self._converge_models(
                http, plan, repo, fresh=fresh, loaded_before=loaded_before, backups=backups,
                repo_path=repo_path, container_id=container_id, state_file=state_file,
            )  # fmt: skip
        finally:
            if backup_dir is not None:
                shutil.rmtree(backup_dir, ignore_errors=True)

        result["models"] = models
        result["rolled_back"] = rolled_back
        if rolled_back:
            repo["updated"] = [n for n in repo["updated"] if n not in rolled_back]
            repo["rolled_back"] = rolled_back
            repo["changed"] = bool(repo["added"] or repo["updated"] or repo["removed"])
            result["diff"]["after"]["repository"] = repository_state(repo_path) if repo_path else {}
        changed = bool(image.load.get("changed")) or repo["changed"] or action != "none" or bool(loaded_now)
        failed = [
            {"name": n, "url": m["url"], "stage": "load", "reason": m["reason"]}
            for n, m in models.items()
            if m["state"] != READY or m["rolled_back"]
        ]
        if p.get("smoke_test", True):
            for model in plan.models:
                if models[model.name]["state"] != READY:
                    continue
                outcome = self._smoke(http, model.name, endpoints[model.name], samples.get(model.name))
                result["smoke"][model.name] = outcome
                if not outcome["ok"]:
                    failed.append(
                        {"name": model.name, "url": model.url, "stage": "smoke", "reason": outcome["error"]}
                    )
        result["failed_models"] = failed
        for f in failed:
            self.warnings.append(
                f"model {f['name']} (endpoint {f['url']}) failed at {f['stage']}: {f['reason']}"
            )
        for name in rolled_back:
            self.warnings.append(f"model {name}: the new version failed to load; the previous version serves")
        result["changed"] = changed
        result["msg"] = self._summary(changed, image, repo, action, failed)
        if failed and p.get("fail_on_model_error"):
            names = ", ".join(f"{f['name']} ({f['stage']})" for f in failed)
            partial = {k: v for k, v in result.items() if k != "msg"}
            raise ClearmlModuleError(f"Triton serves, but these models failed: {names}", **partial)
        return result

    # -- models ------------------------------------------------------------------------------------

    def _wait_live(self, spec: ContainerSpec) -> TritonHttp:
        """Until Triton (this container's: its server id) answers /v2/health/live; fail early if it exits."""
        host, port = probe_address(self.params)
        timeout = float(self.params.get("ready_timeout") or 300)
        http = TritonHttp(host, port, timeout=timeout)
        server_id = next(a.split("=", 1)[1] for a in spec.command if a.startswith("--id="))
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            if http.live():
                seen = http.metadata().get("name")
                if seen == server_id:
                    return http
            container = current_container(self.docker, spec.name)
            if container is None or not container.running or container.restarting:
                status = container.status if container else "gone"
                raise ClearmlModuleError(
                    f"Triton container {spec.name!r} is {status}; its log ends with:\n"
                    + self.docker.logs_tail(spec.name),
                    container={"name": spec.name, "status": status},
                )
            if time.monotonic() > deadline:
                other = f" (the port answers as server {seen!r}, not {server_id!r})" if seen else ""
                raise ClearmlModuleError(
                    f"Triton in {spec.name!r} not live on {host}:{port} after {timeout:.0f}s{other}; its log ends "
                    "with:\n" + self.docker.logs_tail(spec.name)
                )
            time.sleep(0.5)

    def _converge_models(
        self,
        http: TritonHttp,
        plan: RepositoryPlan,
        repo: Mapping[str, Any],
        *,
        fresh: bool,
        loaded_before: dict[str, str] | None,
        backups: Mapping[str, Path],
        repo_path: str | None,
        container_id: str,
        state_file: Path | None,
    ) -> tuple[dict[str, Any], list[str], list[str]]:
        """Load what must be (re)loaded, unload what is gone, roll back failed updates; models by name.

        A container that was just (re)started loaded every model of the repository itself
        (``--load-model=*``): nothing is retried, what failed is reported. On a container that stays,
        the models whose files changed, whose last load used other files, or that are not READY are
        loaded; models Triton serves that the repository no longer has are unloaded.
        """
        wanted = {m.name: m for m in plan.models}
        index = http.index()
        to_load = [] if fresh else _models_to_load(plan, repo, index, loaded_before)
        for name in sorted(n for n, e in index.items() if n not in wanted and e["state"] == READY):
            error = http.unload(name)
            if error:
                self.warnings.append(f"unloading model {name} (no longer in the repository) failed: {error}")
        serving: dict[str, str] = {}  # name -> digest of the files Triton serves
        errors: dict[str, str] = {}
        loaded_now: list[str] = []
        rolled_back: list[str] = []
        for name in to_load:
            error = self._load(http, name)
            if error is None:
                loaded_now.append(name)
                serving[name] = wanted[name].digest
                continue
            errors[name] = error
            if name in backups and repo_path:
                rolled_back.append(name)
                restored = self._roll_back(http, name, backups[name], Path(repo_path))
                if restored is None:
                    serving[name] = repository_state(repo_path).get(name) or ""
                else:
                    errors[name] = f"{error}; reloading the previous version failed too: {restored}"
        index = http.index()
        models: dict[str, Any] = {}
        for name, model in wanted.items():
            entry = index.get(name, {})
            state = entry.get("state") or "UNAVAILABLE"
            if state == READY and name not in serving:
                serving[name] = model.digest if fresh else (loaded_before or {}).get(name, model.digest)
            models[name] = {
                "url": model.url,
                "state": state,
                "reason": errors.get(name)
                or ("" if state == READY else entry.get("reason") or f"state {state}"),
                "digest": serving.get(name) or None,
                "loaded": name in loaded_now,
                "rolled_back": name in rolled_back,
            }
        if state_file is not None:
            data = {"container": container_id, "models": {n: d for n, d in sorted(serving.items()) if d}}
            if _read_raw(state_file) != data:
                atomic_write_bytes(state_file, pretty_json(data))
        return models, loaded_now, rolled_back

    def _load(self, http: TritonHttp, name: str) -> str | None:
        return http.load(name, timeout=float(self.params.get("ready_timeout") or 300))

    def _roll_back(self, http: TritonHttp, name: str, backup: Path, repo: Path) -> str | None:
        """Put the previous folder back (Triton still serves that version) and load it; None on success."""
        os.rename(repo / name, backup.parent / f"{name}.failed")
        os.rename(backup, repo / name)
        return self._load(http, name)

    def _predict_loads(
        self, plan: RepositoryPlan, repo: Mapping[str, Any], action: str, loaded_before: dict[str, str] | None
    ) -> dict[str, Any]:
        """Check mode: which models a real run would load (read-only calls on a container that stays)."""
        models = {
            m.name: {"url": m.url, "digest": m.digest, "would_load": action != "none"} for m in plan.models
        }
        if action != "none":
            return models
        host, port = probe_address(self.params)
        try:
            index = TritonHttp(host, port).index()
        except (TritonUnreachable, ClearmlModuleError):
            index = {}
        changed_files = set(repo["added"]) | set(repo["updated"])
        for name, entry in models.items():
            state = index.get(name, {})
            stale = loaded_before is not None and loaded_before.get(name) != entry["digest"]
            entry["state"] = state.get("state") or "UNAVAILABLE"
            # A model that failed to load and did not change would fail again: not a predicted change.
            never_tried = state.get("state") in (None, "", "UNLOADED") and not state.get("reason")
            entry["would_load"] = name in changed_files or stale or never_tried
        return models

    def _smoke(
        self, http: TritonHttp, name: str, endpoint: Mapping[str, Any], sample: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        try:
            inputs, outputs, mbs = endpoint_tensors(endpoint)
            body = smoke_request(inputs, outputs, mbs, sample, model=name)
            answer = http.infer(name, body, timeout=float(self.params.get("ready_timeout") or 300))
            return {"ok": True, "sample": sample is not None, "outputs": check_response(answer, outputs, mbs)}
        except (SmokeError, TritonUnreachable) as exc:
            return {"ok": False, "sample": sample is not None, "error": exc.msg}

    # -- absent -----------------------------------------------------------------------------------

    def absent(self) -> dict[str, Any]:
        p = self.params
        current = current_container(self.docker, p["name"])
        changed = current is not None
        if current is not None and not self.check_mode:
            remove_container(self.docker, p["name"])
        removed_images: list[str] = []
        if p.get("remove_image"):
            refs: list[str] = []
            if p.get("image_record"):
                with contextlib.suppress(ClearmlModuleError):
                    refs.extend(read_record(p["image_record"]).get("repo_tags") or [])
            if p.get("image"):
                refs.append(p["image"])
            for ref in dict.fromkeys(refs):
                if remove_image(self.docker, ref):
                    removed_images.append(ref)
            changed = changed or bool(removed_images)
        state_file = _loaded_state_path(p.get("model_repository"), p["name"])
        if current is not None and state_file is not None and state_file.exists() and not self.check_mode:
            state_file.unlink()
        verb = "would remove" if self.check_mode else "removed"
        msg = f"{verb} container {p['name']}" if current is not None else f"no container {p['name']}"
        if removed_images:
            msg += f"; {verb} image(s) {', '.join(removed_images)}"
        return {
            "changed": changed,
            "container": {
                "name": p["name"],
                "id": current.id if current else None,
                "action": "remove" if current else "none",
            },
            "removed_images": removed_images,
            "msg": msg,
            "diff": {
                "before": {"container": current.spec if current else None},
                "after": {"container": None},
            },
        }

    # -- messages ---------------------------------------------------------------------------------

    def _summary(
        self,
        changed: bool,
        image: SiteImage,
        repo: Mapping[str, Any],
        action: str | None,
        failed: list[dict[str, Any]] | None = None,
    ) -> str:
        verbs = {
            "load": "loaded",
            "tag": "tagged",
            "add": "added",
            "update": "updated",
            "remove": "removed",
            "create": "created",
            "recreate": "recreated",
            "start": "started",
        }

        def say(verb: str) -> str:
            return f"would {verb}" if self.check_mode else verbs[verb]

        parts = []
        if image.load.get("loaded"):
            parts.append(f"{say('load')} image {image.ref}")
        elif image.load.get("tagged"):
            parts.append(f"{say('tag')} image {image.ref}")
        for key, verb in (("added", "add"), ("updated", "update"), ("removed", "remove")):
            if repo.get(key):
                parts.append(f"{say(verb)} model(s) {', '.join(repo[key])}")
        if action and action != "none":
            parts.append(f"{say(action)} container {self.params['name']}")
        if failed:
            parts.append(f"{len(failed)} model(s) failed: {', '.join(f['name'] for f in failed)}")
        if not parts:
            return "Triton serves every model; nothing changed" if action else "nothing changed"
        return "; ".join(parts)


# --------------------------------------------------------------------------------------------- helpers


def _models_to_load(
    plan: RepositoryPlan,
    repo: Mapping[str, Any],
    index: Mapping[str, Mapping[str, Any]],
    loaded_before: Mapping[str, str] | None,
) -> list[str]:
    """On a container that stays: models with new files, loaded from other files before, or not READY."""
    changed_files = set(repo["added"]) | set(repo["updated"])
    found = []
    for model in plan.models:
        stale = loaded_before is not None and loaded_before.get(model.name) != model.digest
        if model.name in changed_files or stale or index.get(model.name, {}).get("state") != READY:
            found.append(model.name)
    return found


def _label(doc: Mapping[str, Any] | None, key: str) -> str | None:
    labels = ((doc or {}).get("Config") or {}).get("Labels") or {}
    return labels.get(f"org.deploy2standalone.triton.{key}")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _loaded_state_path(repo_path: str | None, name: str) -> Path | None:
    if not repo_path:
        return None
    repo = Path(repo_path)
    return repo.resolve().parent / f".{repo.name}.{name}.d2s-loaded.json"


def _read_raw(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_loaded(path: Path | None, container_id: str | None) -> dict[str, str] | None:
    """What each model was last loaded with in this container; None when unknown (another container)."""
    if path is None or container_id is None:
        return None
    data = _read_raw(path)
    if not isinstance(data, dict) or data.get("container") != container_id:
        return None
    models = data.get("models")
    return {str(k): str(v) for k, v in models.items()} if isinstance(models, dict) else None


__all__ = ["TritonImageCore", "bundle_serving", "make_plan", "select_endpoints"]
