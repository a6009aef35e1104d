# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The clearml-serving inference service at a site: its container, image, configuration and readiness.

Private to this collection: not a public API, may change without notice.

``ServingCore(params, check_mode, diff).run()`` is the whole of the ``serving_service`` module:

1. the site serving service id: ``serving_id``, or looked up in ``import_info.json`` (dev id → site id);
2. the service read from the site's ClearML server (a ``service`` task tagged ``serving-control-plane``;
   its endpoints, canaries, and the ``General/triton_grpc_server`` that would override ours);
3. the image: loaded from ``image_record`` + ``image_store`` or from the bundle's images, unless the
   daemon already has its ID (``_images.load_image``);
4. the container spec (image ID, environment, limits, and the fingerprint of the serving service's
   configuration) and its digest, stored in a label: a container with the same digest and image ID that
   runs is left alone (``changed: false``); otherwise it is started, or replaced. The fingerprint makes a
   changed serving configuration (a redeploy or rollback imported other endpoints, models or preprocess
   code) replace the container at once, instead of waiting for the service's next poll;
5. readiness: HTTP up, then every smoke request answered 200 (and as expected, when given).

The docker CLI is driven directly (as ``_images`` does); the secret key reaches ``docker run`` through
an ``--env-file`` readable only by its owner, never on a command line.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _serving_probe as probe
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._images import load_image

try:
    from clearml.utilities.pyhocon import ConfigFactory  # the SDK's vendored HOCON parser
except ImportError:  # pragma: no cover - site hosts may run the module without the SDK
    ConfigFactory = None  # type: ignore[assignment,misc]

LABEL_PREFIX = "org.deploy2standalone.serving"
MANAGED_LABEL = f"{LABEL_PREFIX}.managed"
SPEC_LABEL = f"{LABEL_PREFIX}.spec"
DIGEST_LABEL = f"{LABEL_PREFIX}.spec-digest"
SERVICE_LABEL = f"{LABEL_PREFIX}.service-id"
CONFIG_LABEL = f"{LABEL_PREFIX}.service-config"
# What clearml-serving's inference service reloads on its poll (ModelRequestProcessor.deserialize hashes
# the same): the configuration objects, the General hyperparameters and the preprocess artifacts' hashes.
# model_monitoring_eps is left out: the running service itself writes it.
CONFIG_OBJECTS = ("endpoints", "canary", "model_monitoring", "metric_logging")
CONTAINER_CA = "/etc/deploy2standalone/clearml-ca.pem"
SERVING_TAG = "serving-control-plane"
SECRET_ENV = ("CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY")
DOCKER_TIMEOUT = 120
BLOCK_PROXY = "http://127.0.0.1:9"  # a closed port: outside traffic fails at once
_DAEMON_DOWN = (
    "cannot connect to the docker daemon",
    "error during connect",
    "is the docker daemon running",
    "permission denied while trying to connect",
)


class ServingError(ClearmlModuleError):
    """Raised for every failure of the serving service; the message names the operation."""


# ------------------------------------------------------------------------------------------ docker
class Docker:
    """The docker CLI; refuses mutating calls in check mode (a safety net under the core's logic)."""

    def __init__(self, docker: str = "docker", *, check_mode: bool = False) -> None:
        found = shutil.which(docker)
        if not found:
            raise ServingError(
                f"docker CLI {docker!r} not found on PATH: install the docker client on this host"
            )
        self.docker = found
        self.check_mode = check_mode
        self.calls: list[tuple[bool, list[str]]] = []

    def run(
        self,
        *args: str,
        action: str,
        mutating: bool = False,
        timeout: float = DOCKER_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        if mutating and self.check_mode:
            raise ServingError(f"internal error: tried to {action} in check mode")
        self.calls.append((mutating, list(args)))
        try:
            proc = subprocess.run(
                [self.docker, *args], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise ServingError(f"cannot {action}: docker did not answer within {timeout:.0f} s") from None
        if check and proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip()
            if any(s in said.lower() for s in _DAEMON_DOWN):
                raise ServingError(f"cannot {action}: no docker daemon answers on this host ({said})")
            raise ServingError(f"cannot {action}: docker said: {said}", docker_output=said)
        return proc

    def inspect(self, kind: str, ref: str) -> dict[str, Any] | None:
        proc = self.run(kind, "inspect", ref, action=f"inspect {kind} {ref!r}", check=False)
        if proc.returncode != 0:
            said = (proc.stderr or "").lower()
            if any(s in said for s in _DAEMON_DOWN):
                raise ServingError(
                    f"cannot inspect {kind} {ref!r}: no docker daemon answers ({proc.stderr.strip()})"
                )
            return None
        docs = json.loads(proc.stdout or "[]")
        return docs[0] if docs else None

    def logs_tail(self, name: str, lines: int = 40) -> str:
        proc = self.run("logs", "--tail", str(lines), name, action=f"read the logs of {name!r}", check=False)
        return (proc.stdout + proc.stderr).strip()


# ------------------------------------------------------------------------------------- service id
def site_serving_id(params: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """``(site serving id, dev serving id or None)`` from ``serving_id`` or ``import_info``."""
    if params.get("serving_id"):
        return str(params["serving_id"]), None
    path = params.get("import_info")
    if not path:
        raise ServingError(
            "give serving_id (the site's serving service id) or import_info (clearml_import's record)"
        )
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ServingError(f"cannot read import_info '{path}': {exc}") from None
    mapping = (info.get("map") or {}).get("serving") or {}
    dev_id = params.get("dev_serving_id") or ((manifest or {}).get("serving") or {}).get("id")
    if dev_id:
        if dev_id not in mapping:
            raise ServingError(
                f"import_info '{path}' maps no serving service with dev id {dev_id}: the bundle was not imported "
                f"at this site (it maps {sorted(mapping) or 'none'})",
                known=sorted(mapping),
            )
        return str(mapping[dev_id]), str(dev_id)
    if len(mapping) != 1:
        raise ServingError(
            f"import_info '{path}' maps {len(mapping)} serving services: give bundle or dev_serving_id to pick one",
            known=sorted(mapping),
        )
    ((dev, site),) = mapping.items()
    return str(site), str(dev)


def read_manifest(bundle: str | None) -> dict[str, Any] | None:
    if not bundle:
        return None
    path = Path(bundle) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ServingError(f"cannot read the bundle manifest '{path}': {exc}") from None


_TOKEN_RE = re.compile(r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|[{}\[\]=:,\n]|#[^\n]*|//[^\n]*|[^\s{}\[\]=:,"#]+')


def _scalar(token: str) -> str:
    if token.startswith('"""'):
        return token[3:-3]
    if token.startswith('"'):
        try:
            return str(json.loads(token))
        except ValueError:
            return token[1:-1]
    return token


def hocon_outline(text: str) -> dict[str, dict[str, str]]:
    """The top-level keys of a HOCON object and the scalar fields directly inside each.

    Enough to list clearml-serving's endpoints and their ``engine_type`` on a host without the SDK's
    HOCON parser; nested objects and lists are skipped.
    """
    tokens = [t for t in _TOKEN_RE.findall(text) if t != "\n" and not t.startswith(("#", "//"))]
    out: dict[str, dict[str, str]] = {}
    depth, current, i = 0, None, 0
    while i < len(tokens):
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in ("{", "["):
            depth += 1
        elif token in ("}", "]"):
            depth -= 1
        elif token not in ("=", ":", ","):
            if depth == 0 and nxt in ("{", "=", ":"):
                current = _scalar(token)
                out[current] = {}
            elif depth == 1 and current is not None and nxt in ("=", ":") and i + 2 < len(tokens):
                value = tokens[i + 2]
                if value not in ("{", "[", "}", "]", ",", "=", ":"):
                    out[current][_scalar(token)] = _scalar(value)
                    i += 2
        i += 1
    return out


def _hocon(text: str | None, what: str) -> dict[str, Any]:
    """A configuration object: parsed by the SDK's HOCON parser, else outlined (top-level fields only)."""
    if not text or not text.strip():
        return {}
    if ConfigFactory is None:
        return hocon_outline(text)
    try:
        return json.loads(json.dumps(ConfigFactory.parse_string(text).as_plain_ordered_dict()))
    except Exception as exc:  # pyhocon raises many types; the message names the object
        raise ServingError(f"cannot parse the serving service's '{what}' configuration: {exc}") from None


@dataclass
class Service:
    """The serving service as the site's server holds it."""

    id: str
    name: str
    status: str
    endpoints: dict[str, Any]
    canary: dict[str, Any]
    triton_param: str | None
    fingerprint: str = ""

    def urls(self) -> list[str]:
        return sorted(set(self.endpoints) | set(self.canary))

    def needs_triton(self) -> bool:
        return any(str((ep or {}).get("engine_type")) == "triton" for ep in self.endpoints.values())


def config_fingerprint(doc: Mapping[str, Any]) -> str:
    """SHA-256 of what the inference service loads from its serving task, as the server holds it.

    The raw text of the ``endpoints``, ``canary``, ``model_monitoring`` and ``metric_logging``
    configuration objects (read as stored, so the value is the same with or without the SDK), the
    ``General`` hyperparameters, and each artifact's key and hash (the preprocess code; the URI of one
    without a hash). Endpoints, model ids, canary weights and preprocess code all change it; a status
    change or a ping does not.
    """
    config = doc.get("configuration") or {}
    general = (doc.get("hyperparams") or {}).get("General") or {}
    artifacts = (doc.get("execution") or {}).get("artifacts") or []
    whole = {
        "configuration": {name: str((config.get(name) or {}).get("value") or "") for name in CONFIG_OBJECTS},
        "general": {
            str(k): str((v or {}).get("value") if isinstance(v, Mapping) else v) for k, v in general.items()
        },
        # An artifact without a hash (not a file) counts by its URI.
        "artifacts": sorted(
            [str(a.get("key")), str(a.get("hash") or a.get("uri") or "")]
            for a in artifacts
            if isinstance(a, Mapping)
        ),
    }
    return hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()


def read_service(client: Any, serving_id: str) -> Service:
    """The site's serving task, checked: a ``service`` task tagged ``serving-control-plane``."""
    try:
        doc = client.call("tasks.get_by_id", {"task": serving_id})["task"]
    except ClearmlModuleError as exc:
        raise ServingError(
            f"serving service {serving_id} not found on the site server {client.api_host}: {exc.msg}"
        ) from None
    if doc.get("type") != "service" or SERVING_TAG not in (doc.get("system_tags") or []):
        raise ServingError(
            f"task {serving_id} on {client.api_host} is not a clearml-serving service (type "
            f"{doc.get('type')!r}, system tags {doc.get('system_tags')}); pass the serving service id"
        )
    config = doc.get("configuration") or {}
    endpoints = _hocon((config.get("endpoints") or {}).get("value"), "endpoints")
    canary = _hocon((config.get("canary") or {}).get("value"), "canary")
    monitoring = _hocon((config.get("model_monitoring") or {}).get("value"), "model_monitoring")
    if monitoring:
        # monitored models become endpoints <base url>/<version> at run time; their engine counts.
        for url, mon in monitoring.items():
            endpoints.setdefault(f"{url}/*", {"engine_type": (mon or {}).get("engine_type")})
    general = ((doc.get("hyperparams") or {}).get("General") or {}).get("triton_grpc_server") or {}
    return Service(
        id=serving_id,
        name=str(doc.get("name")),
        status=str(doc.get("status")),
        endpoints=endpoints,
        canary=canary,
        triton_param=(general.get("value") or None) if isinstance(general, Mapping) else None,
        fingerprint=config_fingerprint(doc),
    )


def unknown_endpoints(smoke: Mapping[str, Any], urls: list[str] | None) -> list[str]:
    """Smoke endpoints the service does not route (``None``: the service's endpoints are unknown)."""
    if urls is None:
        return []
    return sorted(
        e for e in smoke if e not in urls and not any(fnmatch.fnmatchcase(e, u) for u in urls if "*" in u)
    )


def tcp_reachable(address: str, timeout: float = 3.0) -> str | None:
    """None when ``host:port`` accepts a TCP connection, else why not."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except ValueError:
        return f"'{address}' is not host:port"
    except OSError as exc:
        return str(exc)


# ------------------------------------------------------------------------------------------- image
def _manifest_record(manifest: Mapping[str, Any] | None, image: str) -> dict[str, Any] | None:
    for record in (manifest or {}).get("images") or []:
        if image == record.get("name") or image in (record.get("repo_tags") or []):
            return dict(record)
    return None


def ensure_image(
    docker: Docker, params: Mapping[str, Any], manifest: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The daemon holds the image (loaded from a record + store, or the bundle, when it lacks it)."""
    image = params["image"]
    record, root, source = None, None, "local"
    if params.get("image_record"):
        try:
            record = json.loads(Path(params["image_record"]).read_text())
        except (OSError, ValueError) as exc:
            raise ServingError(f"cannot read image_record '{params['image_record']}': {exc}") from None
        root = params.get("image_store") or params.get("bundle")
        if not root:
            raise ServingError("image_record needs image_store (or bundle) to load the image from")
        source = "record"
    elif params.get("bundle"):
        record = _manifest_record(manifest, image)
        root, source = (params["bundle"], "bundle") if record else (None, "local")
    if record is not None and root is not None:
        blobs = Path(root) / "blobs" / "sha256"
        try:
            loaded = load_image(
                record, lambda digest: blobs / digest, check_mode=docker.check_mode, docker=docker.docker
            )
        except ClearmlModuleError as exc:
            raise ServingError(f"cannot load the serving image {image!r}: {exc.msg}", **exc.result) from None
        tags = [t for t in record.get("repo_tags") or [] if t]
        ref = image if image in tags or not tags else tags[0]
        return {
            "name": ref,
            "id": loaded["id"],
            "source": source,
            "loaded": loaded["loaded"],
            "changed": loaded["changed"],
        }
    doc = docker.inspect("image", image)
    if doc is None:
        raise ServingError(
            f"image {image!r} is not on this host and nothing says how to load it: give a bundle whose images include "
            "it, or image_record and image_store"
        )
    return {"name": image, "id": str(doc["Id"]), "source": "local", "loaded": False, "changed": False}


# ----------------------------------------------------------------------------------------- spec
def _host(url: str | None) -> str | None:
    if not url:
        return None
    return urllib.parse.urlsplit(url if "//" in url else f"//{url}").hostname


def container_env(params: Mapping[str, Any], serving_id: str) -> dict[str, str]:
    env = {
        "CLEARML_API_HOST": params["api_host"],
        "CLEARML_API_ACCESS_KEY": params["access_key"],
        "CLEARML_API_SECRET_KEY": params["secret_key"],
        "CLEARML_SERVING_TASK_ID": serving_id,
        "CLEARML_SERVING_PORT": str(params["port"]),
        "D2S_SERVING_HOST": params["listen_address"],
        "CLEARML_DEFAULT_TRITON_GRPC_ADDR": params["triton_grpc_address"],
        "CLEARML_SERVING_POLL_FREQ": f"{params['poll_frequency']:g}",
        "CLEARML_EXTRA_PYTHON_PACKAGES": "",
        "CLEARML_BKG_THREAD_REPORT": "1",
    }
    for key, name in (("web_host", "CLEARML_WEB_HOST"), ("files_host", "CLEARML_FILES_HOST")):
        if params.get(key):
            env[name] = params[key]
    if not params.get("validate_certs", True):
        env["CLEARML_API_HOST_VERIFY_CERT"] = "0"
    elif params.get("ca_path"):
        env["CLEARML_API_HOST_VERIFY_CERT"] = CONTAINER_CA
        env["REQUESTS_CA_BUNDLE"] = CONTAINER_CA
    if (params.get("workers") or 1) > 1:
        env["CLEARML_SERVING_NUM_PROCESS"] = str(params["workers"])
    if params.get("block_outside_traffic", True):
        hosts = ["127.0.0.1", "localhost", "::1"]
        for url in (
            params["api_host"],
            params.get("web_host"),
            params.get("files_host"),
            params["triton_grpc_address"],
        ):
            host = _host(url)
            if host and host not in hosts:
                hosts.append(host)
        no_proxy = ",".join(hosts)
        env.update(HTTP_PROXY=BLOCK_PROXY, HTTPS_PROXY=BLOCK_PROXY, NO_PROXY=no_proxy)
        env.update(http_proxy=BLOCK_PROXY, https_proxy=BLOCK_PROXY, no_proxy=no_proxy)
    env.update({str(k): str(v) for k, v in (params.get("env") or {}).items()})
    return env


def masked(env: Mapping[str, str]) -> dict[str, str]:
    return {k: ("********" if k in SECRET_ENV and v else v) for k, v in sorted(env.items())}


@dataclass
class Spec:
    name: str
    image: str
    image_id: str
    env: dict[str, str]
    restart_policy: str
    memory: str | None
    cpus: float | None
    ca_path: str | None
    serving_id: str
    service_config: str = ""

    def public(self) -> dict[str, Any]:
        """What the diff and the label show (secrets masked)."""
        return {
            "image": self.image,
            "image_id": self.image_id,
            "env": masked(self.env),
            "network": "host",
            "restart_policy": self.restart_policy,
            "memory": self.memory,
            "cpus": self.cpus,
            "ca_path": self.ca_path,
            "service_config": self.service_config,
        }

    def digest(self) -> str:
        whole = {**self.public(), "env": dict(sorted(self.env.items()))}  # secrets count, unseen
        return hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()

    def run_args(self, env_file: str) -> list[str]:
        args = ["run", "--detach", "--name", self.name, "--network", "host", "--restart", self.restart_policy]
        args += ["--env-file", env_file]
        args += ["--label", f"{MANAGED_LABEL}=true", "--label", f"{DIGEST_LABEL}={self.digest()}"]
        args += ["--label", f"{SPEC_LABEL}={json.dumps(self.public(), sort_keys=True)}"]
        args += ["--label", f"{SERVICE_LABEL}={self.serving_id}"]
        args += ["--label", f"{CONFIG_LABEL}={self.service_config}"]
        if self.memory:
            args += ["--memory", self.memory]
        if self.cpus:
            args += ["--cpus", f"{self.cpus:g}"]
        if self.ca_path:
            args += ["--volume", f"{self.ca_path}:{CONTAINER_CA}:ro"]
        return [*args, self.image]


def build_spec(
    params: Mapping[str, Any], image: Mapping[str, Any], serving_id: str, service_config: str = ""
) -> Spec:
    ca_path = params.get("ca_path") if params.get("validate_certs", True) else None
    if ca_path and not Path(ca_path).is_file():
        raise ServingError(f"ca_path '{ca_path}' is not a file on this host")
    return Spec(
        name=params["name"],
        image=image["name"],
        image_id=image["id"],
        env=container_env(params, serving_id),
        restart_policy=params["restart_policy"],
        memory=params.get("memory"),
        cpus=params.get("cpus"),
        ca_path=str(Path(ca_path).resolve()) if ca_path else None,
        serving_id=serving_id,
        service_config=service_config,
    )


def current_state(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    labels = (doc.get("Config") or {}).get("Labels") or {}
    state = doc.get("State") or {}
    try:
        spec = json.loads(labels.get(SPEC_LABEL) or "null")
    except ValueError:
        spec = None
    return {
        "id": doc.get("Id"),
        "image_id": doc.get("Image"),
        "running": bool(state.get("Running")) and not state.get("Restarting"),
        "status": state.get("Status"),
        "managed": labels.get(MANAGED_LABEL) == "true",
        "digest": labels.get(DIGEST_LABEL),
        "service_config": labels.get(CONFIG_LABEL),
        "spec": spec,
    }


def plan_action(current: Mapping[str, Any] | None, spec: Spec) -> tuple[str, list[str]]:
    """``(action, reasons)``: ``none``, ``create``, ``start`` or ``recreate``."""
    if current is None:
        return "create", ["no container"]
    reasons = []
    if not current["managed"]:
        reasons.append("the container was not made by this module")
    if current["image_id"] != spec.image_id:
        reasons.append(f"image {current['image_id']} -> {spec.image_id}")
    if current["digest"] != spec.digest():
        before = (current.get("spec") or {}).get("env") or {}
        after = spec.public()["env"]
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        other = sorted(
            k
            for k, v in spec.public().items()
            if k not in ("env", "service_config") and (current.get("spec") or {}).get(k) != v
        )
        if changed or other:
            reasons.append(f"configuration changed ({', '.join([*(f'env {k}' for k in changed), *other])})")
        old_config = current.get("service_config") or (current.get("spec") or {}).get("service_config")
        if old_config != spec.service_config:
            reasons.append(
                "the serving service's configuration changed (endpoints, models or preprocess code: "
                f"{(old_config or 'unknown')[:12]} -> {spec.service_config[:12]}); the service reloads it "
                "at once instead of at its next poll"
            )
        elif not (changed or other):
            reasons.append("configuration changed (secrets)")
    if reasons:
        return "recreate", reasons
    if not current["running"]:
        return "start", [f"container is {current['status']}"]
    return "none", []


# ------------------------------------------------------------------------------------------- core
class ServingCore:
    """One run of the ``serving_service`` module."""

    def __init__(
        self, params: Mapping[str, Any], *, check_mode: bool = False, diff: bool = False, client: Any = None
    ):
        self.params = params
        self.check_mode = check_mode
        self.want_diff = diff
        self.client = client
        self.warnings: list[str] = []
        self.docker = Docker(params.get("docker_cli") or "docker", check_mode=check_mode)

    # -- helpers ------------------------------------------------------------------------------------
    def _client(self) -> Any:
        if self.client is None:
            from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import (  # noqa: PLC0415
                ClearmlClient,
            )

            p = self.params
            self.client = ClearmlClient(
                p["api_host"],
                p["access_key"],
                p["secret_key"],
                p.get("web_host"),
                p.get("files_host"),
                validate_certs=p.get("validate_certs", True),
                ca_path=p.get("ca_path"),
            )
        return self.client

    def _url(self) -> str:
        return probe.base_url(self.params["listen_address"], self.params["port"])

    def _remove(self, name: str) -> None:
        self.docker.run("rm", "--force", name, action=f"remove container {name!r}", mutating=True)

    def _run_container(self, spec: Spec) -> str:
        fd, env_file = tempfile.mkstemp(prefix="d2s-serving-", suffix=".env")
        try:
            with os.fdopen(fd, "w") as fh:
                for key, value in sorted(spec.env.items()):
                    if "\n" in value:
                        raise ServingError(
                            f"environment variable {key} holds a newline: docker cannot pass it"
                        )
                    fh.write(f"{key}={value}\n")
            proc = self.docker.run(
                *spec.run_args(env_file), action=f"run container {spec.name!r}", mutating=True
            )
        finally:
            os.unlink(env_file)
        return proc.stdout.strip()

    def _alive(self, name: str) -> Any:
        def check() -> str | None:
            doc = self.docker.inspect("container", name)
            state = (doc or {}).get("State") or {}
            if doc is None:
                return "the container is gone"
            if state.get("Status") in ("exited", "dead") or (
                state.get("Restarting") and state.get("ExitCode")
            ):
                return f"the container stopped (exit code {state.get('ExitCode')})"
            return None

        return check

    def _fail(self, msg: str, name: str, **result: Any) -> ServingError:
        return ServingError(f"{msg}; last lines of its log:\n{self.docker.logs_tail(name)}", **result)

    # -- readiness ----------------------------------------------------------------------------------
    def _readiness(self, name: str, smoke: dict[str, dict[str, Any]], service: Service) -> dict[str, Any]:
        timeout = float(self.params["ready_timeout"])
        deadline = time.monotonic() + timeout
        url = self._url()
        up = probe.wait_http_up(url + "/openapi.json", deadline, alive=self._alive(name))
        if up.status != 200:
            why = up.error or f"HTTP {up.status}"
            raise self._fail(
                f"the inference service did not come up on {url} within {timeout:.0f} s ({why})", name
            )
        atol, rtol = float(self.params["atol"]), float(self.params["rtol"])
        results: dict[str, Any] = {}
        failed: list[str] = []
        for endpoint, spec in smoke.items():
            while True:
                reply = probe.http(
                    "POST", url + probe.serve_path(endpoint), spec["request"], timeout=max(5.0, timeout)
                )
                if reply.status == 200 or time.monotonic() >= deadline or self._alive(name)():
                    break
                time.sleep(1.0)
            entry: dict[str, Any] = {"status": reply.status, "seconds": round(reply.seconds, 3)}
            if reply.status != 200:
                entry["error"] = reply.error or reply.text[:500]
                failed.append(f"{endpoint}: HTTP {reply.status} {entry['error']}")
            else:
                ok, diffs, index = probe.check_answer(reply.body, spec, atol=atol, rtol=rtol)
                entry["as_expected"] = ok if ("response" in spec or "expected_one_of" in spec) else None
                if index is not None:
                    entry["matched"] = index
                if not ok:
                    entry["differences"] = diffs[:20]
                    failed.append(f"{endpoint}: answer differs ({'; '.join(diffs[:3])})")
            results[endpoint] = entry
        if failed:
            raise self._fail("smoke requests failed: " + " | ".join(failed), name, smoke=results)
        urls = service.urls()
        return {
            "smoke": results,
            "unprobed": [u for u in (urls or []) if u not in smoke and not u.endswith("/*")],
        }

    # -- run ----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        current = current_state(self.docker.inspect("container", self.params["name"]))
        if self.params["state"] == "absent":
            return self._absent(current)
        if self.params["state"] == "present":
            return self._present()
        return self._started(current)

    def _present(self) -> dict[str, Any]:
        """The image only: loaded from the bundle (or a record) when the daemon lacks it."""
        image = ensure_image(self.docker, self.params, read_manifest(self.params.get("bundle")))
        result: dict[str, Any] = {
            "changed": image["changed"],
            "image": {k: image[k] for k in ("name", "id", "source", "loaded")},
        }
        if self.want_diff:
            result["diff"] = {
                "before": {"image_present": not image["loaded"]},
                "after": {"image_present": True},
            }
        return result

    def _absent(self, current: dict[str, Any] | None) -> dict[str, Any]:
        name = self.params["name"]
        changed = current is not None
        if changed and not self.check_mode:
            self._remove(name)
        result: dict[str, Any] = {
            "changed": changed,
            "container": {
                "name": name,
                "action": "remove" if changed else "none",
                "id": (current or {}).get("id"),
            },
        }
        if self.want_diff:
            result["diff"] = {
                "before": {"container": (current or {}).get("spec")},
                "after": {"container": None},
            }
        return result

    def _preflight(
        self, smoke: dict[str, Any], manifest: dict[str, Any] | None
    ) -> tuple[Service, str | None]:
        """The site's serving service, checked against Triton and the smoke requests."""
        p = self.params
        serving_id, dev_id = site_serving_id(p, manifest)
        service = read_service(self._client(), serving_id)
        if service.triton_param and service.triton_param != p["triton_grpc_address"]:
            self.warnings.append(
                f"the serving service sets General/triton_grpc_server={service.triton_param}, which overrides "
                f"triton_grpc_address={p['triton_grpc_address']} inside the container"
            )
        triton = service.triton_param or p["triton_grpc_address"]
        unreachable = tcp_reachable(triton) if service.needs_triton() else None
        if unreachable:
            raise ServingError(
                f"Triton's gRPC port {triton} does not answer ({unreachable}); the service has triton endpoints: start "
                "Triton first (deploy2standalone.clearml.triton_image)"
            )
        unknown = unknown_endpoints(smoke, service.urls())
        if unknown:
            raise ServingError(
                f"smoke_requests name endpoints the serving service {serving_id} does not have: {', '.join(unknown)}",
                endpoints=service.urls(),
            )
        return service, dev_id

    def _apply(self, action: str, spec: Spec) -> None:
        if self.check_mode:
            return
        if action == "recreate":
            self._remove(spec.name)
        if action in ("create", "recreate"):
            self._run_container(spec)
        elif action == "start":
            self.docker.run("start", spec.name, action=f"start container {spec.name!r}", mutating=True)

    def _started(self, current: dict[str, Any] | None) -> dict[str, Any]:
        p = self.params
        name = p["name"]
        smoke = probe.normalize_smoke(p.get("smoke_requests"))
        manifest = read_manifest(p.get("bundle"))
        service, dev_id = self._preflight(smoke, manifest)
        image = ensure_image(self.docker, p, manifest)
        spec = build_spec(p, image, service.id, service.fingerprint)
        action, reasons = plan_action(current, spec)
        self._apply(action, spec)
        result: dict[str, Any] = {
            "changed": action != "none" or image["changed"],
            "serving_id": service.id,
            "dev_serving_id": dev_id,
            "service": {
                "name": service.name,
                "status": service.status,
                "endpoints": service.urls(),
                "fingerprint": service.fingerprint,
            },
            "image": {k: image[k] for k in ("name", "id", "source", "loaded")},
            "container": {"name": name, "action": action, "reasons": reasons, "image_id": spec.image_id},
            "url": self._url() + "/serve/",
            "smoke": {},
            "unprobed": [],
        }
        if self.want_diff:
            result["diff"] = {
                "before": {
                    "container": (current or {}).get("spec"),
                    "running": bool((current or {}).get("running")),
                },
                "after": {"container": spec.public(), "running": True},
            }
        if self.check_mode:
            result["container"]["id"] = (current or {}).get("id")
        else:
            try:
                result.update(self._readiness(name, smoke, service))
            except ServingError as exc:
                exc.result.update({k: v for k, v in result.items() if k not in exc.result})
                raise
            result["container"]["id"] = (self.docker.inspect("container", name) or {}).get("Id")
        if result["unprobed"]:
            self.warnings.append(
                "no smoke request for " + ", ".join(result["unprobed"]) + ": only HTTP readiness was checked"
            )
        result["warnings_extra"] = self.warnings
        return result
