# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's closing report (scripts/demo.sh): per site what was deployed, the bytes moved, and a live
inference answered inside the site host, compared with the answer dev gives (seed.json).

Reads the demo's files under --root: seed.json, the dev bundle's manifest, and logs/deploy-1.json /
deploy-2.json (the two runs of deploy_standalone.yml, written by callback_plugins/d2s_demo_record.py).
Asks each site host by `docker exec` only: the sites have no network, their services listen on their own
loopback. Exits 1 when a run failed, the second run changed something, or a site answered otherwise
than dev.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._serving_probe import check_answer

ATOL = 1e-6
RTOL = 1e-5

# Runs inside a site host with its own python3: POSTs each request to the inference service on the
# site's loopback, prints {endpoint: {status, body | error}} as JSON.
_PROBE = r"""
import json, sys, urllib.error, urllib.request
spec = json.load(sys.stdin)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
out = {}
for endpoint, request in spec["requests"].items():
    req = urllib.request.Request(spec["url"] + endpoint, data=json.dumps(request).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=60) as resp:
            out[endpoint] = {"status": resp.status, "body": json.loads(resp.read())}
    except urllib.error.HTTPError as exc:
        out[endpoint] = {"status": exc.code, "error": exc.read().decode(errors="replace")[:300]}
    except Exception as exc:
        out[endpoint] = {"status": None, "error": repr(exc)}
print(json.dumps(out))
"""


def _short(value: str, n: int = 8) -> str:
    return value[:n] + "…" if len(value) > n else value


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _docker_exec(host: str, argv: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(
        ["docker", "exec", "-i", host, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker exec {host} {argv[0]}: {done.stderr.strip()[-300:]}")
    return done.stdout


def _answer_text(body: Any) -> str:
    if isinstance(body, dict) and "labels" in body:
        labels = body.get("labels")
        probs = body.get("probabilities")
        top = ""
        if isinstance(probs, list) and probs and isinstance(probs[0], list):
            top = " p=" + ", ".join(f"{max(row):.4f}" for row in probs)
        return f"labels {labels}{top}"
    return _short(json.dumps(body), 60)


def _runs_problems(runs: list[dict[str, Any]]) -> list[str]:
    problems = []
    for n, run in enumerate(runs, 1):
        for host, stats in run["stats"].items():
            if stats.get("failures") or stats.get("unreachable"):
                problems.append(f"run {n}: {host} failed")
    changed = {host: s.get("changed", 0) for host, s in runs[1]["stats"].items()}
    print("-- second run: " + ", ".join(f"{h} changed={c}" for h, c in changed.items()))
    if any(changed.values()):
        problems.append(f"the second run changed something: {changed}")
    return problems


def _site_deployed(host: str, first: dict[str, Any], last: dict[str, Any], seed: dict[str, Any]) -> None:
    """What the site got: its server, the bytes moved, the endpoints with dev → site ids, Triton's models."""
    imported = last.get("clearml_import", {})
    serving = last.get("serving_service", {})
    ready = json.loads(_docker_exec(host, ["cat", "/run/d2s/clearml.ready.json"]))
    interfaces = " ".join(_docker_exec(host, ["ls", "/sys/class/net"]).split())
    print(f"\n== {host}: no network ({interfaces} only)")
    digest = _short(imported.get("bundle_digest", "?"), 19)
    print(f"   site ClearML server {ready['api']} (inside the site host); bundle {digest}")
    sent = first.get("bundle_store:partial")
    if sent:
        print(
            f"   moved to the site this run: {sent['blobs']} blobs, {_size(sent['bytes'])} ({sent['bytes']} bytes)"
            f"{_packs(sent)}; {sent['skipped_blobs']} blobs it already had"
        )
    else:
        print("   moved to the site this run: 0 bytes (it already held this bundle)")
    print(
        f"   inference service {serving.get('url', '?')} (site serving service {serving.get('serving_id', '?')})"
    )
    models = last.get("triton_image:started", {}).get("models") or {}
    if models:
        print("   Triton: " + ", ".join(f"{name} {_model_state(m)}" for name, m in sorted(models.items())))
    id_map = imported.get("id_map", {})
    print("   endpoints (model dev id → site id):")
    for url, ep in sorted(seed["serving"]["endpoints"].items()):
        site_id = id_map.get("models", {}).get(ep["model_id"], "?")
        print(f"     {url:14} {ep['engine_type']:7} model {ep['model_id']} → {site_id}")
    for kind in ("datasets", "tasks", "serving"):
        for dev_id, site_id in sorted(id_map.get(kind, {}).items()):
            print(f"     {kind:14} {dev_id} → {site_id}")


def _packs(sent: dict[str, Any]) -> str:
    packs = int(sent.get("packs") or 0)
    return f" in {packs} tar pack{'s' if packs != 1 else ''}" if packs else ""


def _model_state(model: Any) -> str:
    return str(model.get("state", model)) if isinstance(model, dict) else str(model)


def _site_inference(host: str, serving: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Every request of seed.json, posted inside the site host; the answers compared with dev's."""
    if not serving.get("url"):
        return [f"{host}: no inference service reported"]
    problems = []
    base = serving["url"].replace("://0.0.0.0:", "://127.0.0.1:")
    spec = {"url": base, "requests": {url: e["request"] for url, e in expected.items()}}
    answers = json.loads(_docker_exec(host, ["python3", "-c", _PROBE], stdin=json.dumps(spec)))
    print(f"   live inference inside {host} (POST {base}<endpoint>):")
    for url, want in sorted(expected.items()):
        got = answers.get(url, {})
        if got.get("status") != 200:
            problems.append(f"{host} {url}: HTTP {got.get('status')} {got.get('error', '')}")
            print(f"     {url:14} ✗ HTTP {got.get('status')}: {got.get('error', '')}")
            continue
        ok, diff, _ = check_answer(got["body"], want, atol=ATOL, rtol=RTOL)
        mark = "✓ same as dev" if ok else "✗ differs from dev: " + "; ".join(diff[:3])
        print(f"     {url:14} {json.dumps(want['request'])} → {_answer_text(got['body'])}  {mark}")
        if not ok:
            problems.append(f"{host} {url}: {diff[:3]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    root: Path = args.root

    seed = json.loads((root / "seed.json").read_text())
    manifest = json.loads((root / "dev/bundles/current/manifest.json").read_text())
    runs = [json.loads((root / f"logs/deploy-{n}.json").read_text()) for n in (1, 2)]
    blobs = manifest.get("blobs", {})
    total = sum(int(b.get("size", 0)) for b in blobs.values())
    images = manifest.get("images") or {}
    names = ", ".join(sorted(images) if isinstance(images, dict) else [str(i.get("name", i)) for i in images])
    print(f"-- dev bundle: {len(blobs)} blobs, {_size(total)} ({total} bytes); images {names or '-'}")
    problems = _runs_problems(runs)

    sites = sorted(h for h in runs[1]["results"] if h != "localhost")
    for host in sites:
        first = runs[0]["results"].get(host, {})
        last = runs[1]["results"].get(host, {})
        _site_deployed(host, first, last, seed)
        problems += _site_inference(host, last.get("serving_service", {}), seed["inference"])

    print()
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if not problems:
        print(
            f"-- both sites ({', '.join(sites)}) answer every endpoint as dev does; the second run changed nothing"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
