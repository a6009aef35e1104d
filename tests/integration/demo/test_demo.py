# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's demo, end to end: ``scripts/demo.sh`` from an empty demo directory.

Real everything: the local dev server seeded through the real SDK, two network-less site-host containers
(d2s-demo-site-a/-b) with their own dockerd and ClearML server, the product's deploy_standalone.yml run
twice, the serving stack answering inside each site host. The test checks the script's exit code and
its report, and asks the sites itself (docker inspect, a request from inside a site host) rather than
trusting the report alone. The site hosts are the demo's fixed containers: a demo you left running is
replaced (its dev server keeps running; ``make demo-clean`` with its D2S_DEMO_ROOT stops it).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from d2s_testlib import REPO, docker_available, project_env

SITES = ("d2s-demo-site-a", "d2s-demo-site-b")
PORTS = {"d2s-demo-site-a": 9090, "d2s-demo-site-b": 9080}

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(
        not docker_available(), reason="needs a docker daemon (and the images of scripts/setup.sh)"
    ),
]


def _run_demo(root: Path, *args: str, timeout: int = 2400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts/demo.sh"), *args],
        cwd=REPO,
        env=project_env(D2S_DEMO_ROOT=str(root)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    root = tmp_path_factory.mktemp("demo") / "root"
    try:
        yield root, _run_demo(root)
    finally:
        _run_demo(root, "--clean", timeout=300)


def _close(actual: object, expected: object) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        return isinstance(actual, int | float) and math.isclose(actual, expected, rel_tol=1e-5, abs_tol=1e-6)  # type: ignore[arg-type]
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(_close(actual[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list) and len(actual) == len(expected) and all(map(_close, actual, expected))
        )
    return actual == expected


def test_demo_deploys_to_two_offline_sites_that_answer_as_dev(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, proc = demo
    out = proc.stdout
    assert proc.returncode == 0, f"scripts/demo.sh failed:\n{out[-8000:]}"
    seed = json.loads((root / "seed.json").read_text())
    assert "PROBLEM" not in out
    # The second run of deploy_standalone.yml changed nothing on any host.
    second = re.search(r"^-- second run: (.*)$", out, re.M)
    assert second, out
    assert sorted(re.findall(r"(\S+) changed=(\d+)", second.group(1))) == sorted(
        [("localhost", "0")] + [(s, "0") for s in SITES]
    ), second.group(0)
    bundle = re.search(r"^-- dev bundle: (\d+) blobs, .* \((\d+) bytes\)", out, re.M)
    assert bundle and int(bundle.group(2)) > 0, out
    for site in SITES:
        section = out.split(f"== {site}:", 1)[1].split("\n== ", 1)[0]
        assert section.startswith(" no network (lo only)"), section
        # The first run of a fresh demo sent each site its whole bundle: every blob, every byte, none already there.
        moved = re.search(
            r"moved to the site this run: (\d+) blobs, .* \((\d+) bytes\)[^;]*; 0 blobs it already had",
            section,
        )
        assert moved, section
        assert (moved.group(1), moved.group(2)) == (bundle.group(1), bundle.group(2)), (
            bundle.group(0),
            section,
        )
        # Every served model's dev id is mapped to a site id, and every endpoint answered as in dev.
        for url, endpoint in seed["serving"]["endpoints"].items():
            assert re.search(
                rf"{re.escape(url)} .* model {endpoint['model_id']} → [0-9a-f]{{32}}", section
            ), (url, section)
        for url in seed["inference"]:
            assert re.search(rf"^\s+{re.escape(url)} .*✓ same as dev$", section, re.M), (url, section)
    assert re.search(r"^\[demo +\d+s\] demo done in \d+ s", out, re.M), out[-2000:]


def test_demo_sites_have_no_network_and_answer_inside(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, proc = demo
    assert proc.returncode == 0, proc.stdout[-4000:]
    seed = json.loads((root / "seed.json").read_text())
    want = seed["inference"]["iris_onnx"]
    for site in SITES:
        inspect = json.loads(
            subprocess.run(["docker", "inspect", site], capture_output=True, check=True).stdout
        )[0]
        assert inspect["HostConfig"]["NetworkMode"] == "none"
        assert inspect["State"]["Running"]
        probe = (
            "import json, sys, urllib.request as u; "
            f"r = u.Request('http://127.0.0.1:{PORTS[site]}/serve/iris_onnx', data=sys.stdin.read().encode(), "
            "headers={'Content-Type': 'application/json'}); "
            "print(u.build_opener(u.ProxyHandler({})).open(r, timeout=60).read().decode())"
        )
        answer = subprocess.run(
            ["docker", "exec", "-i", site, "python3", "-c", probe],
            input=json.dumps(want["request"]),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert _close(json.loads(answer.stdout), want["response"]), (site, answer.stdout, want["response"])
