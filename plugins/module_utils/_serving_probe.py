# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Talking to clearml-serving's inference service over HTTP: readiness, smoke requests, answer checks.

Private to this collection: not a public API, may change without notice.

Standard library only (``urllib``), with proxies switched off: the probes go to the service on this
host, whatever ``HTTP(S)_PROXY`` the controller or the site host has. ``same_answer`` compares two JSON
answers: equal types and keys, numbers equal or within a tolerance (``abs(a - b) <= atol + rtol *
abs(b)``), which is what "the same answer" means between dev and a site.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError

SMOKE_KEYS = ("request", "response", "expected_one_of")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SmokeSpecError(ClearmlModuleError):
    """A smoke request is malformed."""


@dataclass
class Reply:
    """One HTTP answer: status (0 when nothing answered), the body (JSON when it parses) and the time taken."""

    status: int
    body: Any
    seconds: float
    error: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.body, str):
            return self.body
        return json.dumps(self.body, sort_keys=True)


def probe_host(listen_address: str) -> str:
    """Where to reach a service that listens on ``listen_address`` (any-address → loopback)."""
    if listen_address in ("", "0.0.0.0", "::", "[::]"):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    return listen_address


def base_url(listen_address: str, port: int) -> str:
    host = probe_host(listen_address)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def serve_path(endpoint: str) -> str:
    """``/serve/<endpoint>``: the url as clearml-serving routes it (``name`` or ``name/version``)."""
    return "/serve/" + urllib.parse.quote(endpoint.strip("/"), safe="/")


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Reply:
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http only
    start = time.monotonic()
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw = exc.read() or b""
        status = exc.code
    except (OSError, ValueError) as exc:
        return Reply(0, None, time.monotonic() - start, error=str(getattr(exc, "reason", exc)))
    seconds = time.monotonic() - start
    text = raw.decode("utf-8", errors="replace")
    try:
        return Reply(status, json.loads(text) if text else None, seconds)
    except ValueError:
        return Reply(status, text, seconds)


def normalize_smoke(smoke: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{endpoint: {request, response?, expected_one_of?}}``, checked; other keys are dropped.

    The shape is the seed's ``inference`` section, so it can be given as it is (its ``model``,
    ``routes`` … keys are ignored).
    """
    result: dict[str, dict[str, Any]] = {}
    problems = []
    for endpoint, spec in (smoke or {}).items():
        name = str(endpoint).strip("/")
        if not name:
            problems.append("an endpoint name is empty")
            continue
        if not isinstance(spec, Mapping) or "request" not in spec:
            problems.append(f"endpoint '{name}': give a mapping with a 'request' (and optionally 'response')")
            continue
        entry = {k: spec[k] for k in SMOKE_KEYS if k in spec and spec[k] is not None}
        one_of = entry.get("expected_one_of")
        if one_of is not None and (not isinstance(one_of, list) or not one_of):
            problems.append(f"endpoint '{name}': expected_one_of must be a non-empty list of answers")
        if "response" in entry and one_of is not None:
            problems.append(f"endpoint '{name}': give response or expected_one_of, not both")
        result[name] = entry
    if problems:
        raise SmokeSpecError("invalid smoke_requests: " + "; ".join(problems), problems=problems)
    return result


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_differences(actual: float, expected: float, atol: float, rtol: float, path: str) -> list[str]:
    if actual == expected or (math.isnan(actual) and math.isnan(expected)):
        return []
    close = (
        math.isfinite(actual)
        and math.isfinite(expected)
        and abs(actual - expected) <= atol + rtol * abs(expected)
    )
    return [] if close else [f"{path}: {actual!r} != {expected!r}"]


def differences(
    actual: Any, expected: Any, *, atol: float = 0.0, rtol: float = 0.0, path: str = "$"
) -> list[str]:
    """Where ``actual`` differs from ``expected`` (empty: the same answer). Numbers within tolerance."""
    if _number(actual) and _number(expected):
        return _number_differences(actual, expected, atol, rtol, path)
    out: list[str] = []
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        for key in sorted(set(actual) | set(expected), key=str):
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            elif key not in expected:
                out.append(f"{path}.{key}: unexpected")
            else:
                out += differences(actual[key], expected[key], atol=atol, rtol=rtol, path=f"{path}.{key}")
    elif isinstance(actual, list) and isinstance(expected, list):
        if len(actual) != len(expected):
            return [f"{path}: {len(actual)} items != {len(expected)}"]
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            out += differences(a, e, atol=atol, rtol=rtol, path=f"{path}[{i}]")
    elif type(actual) is not type(expected) or actual != expected:
        out.append(f"{path}: {actual!r} != {expected!r}")
    return out


def check_answer(
    body: Any, spec: Mapping[str, Any], *, atol: float, rtol: float
) -> tuple[bool, list[str], int | None]:
    """Does ``body`` answer as ``spec`` expects? ``(ok, differences, index matched in expected_one_of)``."""
    if "response" in spec:
        diff = differences(body, spec["response"], atol=atol, rtol=rtol)
        return not diff, diff, None
    if "expected_one_of" in spec:
        closest: list[str] | None = None
        for index, candidate in enumerate(spec["expected_one_of"]):
            diff = differences(body, candidate, atol=atol, rtol=rtol)
            if not diff:
                return True, [], index
            if closest is None or len(diff) < len(closest):
                closest = diff
        return (
            False,
            [f"none of {len(spec['expected_one_of'])} expected answers; closest: ", *(closest or [])],
            None,
        )
    return True, [], None


def wait_http_up(url: str, deadline: float, alive: Any = None, interval: float = 1.0) -> Reply:
    """GET ``url`` until it answers 200 or ``deadline``; ``alive()`` returning a message stops the wait."""
    last = Reply(0, None, 0.0, error="not tried")
    while True:
        last = http("GET", url, timeout=max(1.0, min(10.0, deadline - time.monotonic())))
        if last.status == 200:
            return last
        if alive is not None:
            message = alive()
            if message:
                last.error = message
                return last
        if time.monotonic() >= deadline:
            return last
        time.sleep(interval)
