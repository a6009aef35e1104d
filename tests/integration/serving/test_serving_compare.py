# SPDX-License-Identifier: GPL-3.0-or-later
"""Same request, same answer: the dev serving stack and the site stack in a network-less site host.

Both stacks run the same images (d2s/serving-inference built from clearml-serving 1.3.5, d2s/triton-cpu);
dev serves the dev server's service, the site serves the imported service (site ids) from its own server
inside the site host, which has no network at all. The same requests go to both, through the same client:
every seeded endpoint (and a malformed request, whose error must match too) gives identical answers that
also equal seed.json's expected ones; the canary endpoint, asked 200 times per stack, answers only with
one of its two versions' answers and splits within a stated tolerance of its 0.75/0.25 weights.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
from serving_stack import ATOL, ask, docker, site_exec

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._serving_probe import differences

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

CANARY_REQUESTS = 200
# 4 standard deviations of the share of a 0.75 route over 200 draws (sqrt(0.75 * 0.25 / 200) = 0.031):
# a correct split fails this about once in 16,000 runs.
CANARY_TOLERANCE = 0.12


@pytest.fixture(scope="module")
def site_service(site_stack: dict[str, Any]) -> dict[str, Any]:
    """serving_service inside the site host: check mode first (nothing may change), then for real."""
    site, run, args = site_stack["site"], site_stack["playbooks"], site_stack["args"]
    check, output = run("serving_service", args, "--check", "--diff", site=site)
    assert not check.get("failed"), output[-6000:]
    containers_after_check = site_exec(
        site, "docker", "ps", "-aq", "--filter", "name=d2s-serving-inference"
    ).stdout
    images_after_check = site_exec(site, "docker", "images", "-q", "d2s/serving-inference").stdout
    first, output = run("serving_service", args, "--diff", site=site)
    assert not first.get("failed"), output[-6000:]
    return {
        "check": check,
        "first": first,
        "containers_after_check": containers_after_check,
        "images_after_check": images_after_check,
    }


def test_site_service_runs_offline_and_idempotently(
    seeded_dev: Any, site_stack: dict[str, Any], site_service: dict[str, Any]
) -> None:
    site, run, args = site_stack["site"], site_stack["playbooks"], site_stack["args"]
    # the site host has no network but its loopback
    assert site_exec(site, "ls", "/sys/class/net").stdout.split() == ["lo"]
    # check mode: what it would do, and it did nothing
    check = site_service["check"]
    assert check["changed"] is True
    assert check["container"]["action"] == "create"
    assert check["image"]["source"] == "bundle" and check["image"]["loaded"] is True
    assert site_service["containers_after_check"].strip() == ""
    assert site_service["images_after_check"].strip() == ""
    # the real run: image loaded from the bundle's blobs, the imported service served, every smoke request right
    first = site_service["first"]
    dev_id = seeded_dev.seed["serving"]["id"]
    assert first["changed"] is True
    assert first["image"]["source"] == "bundle" and first["image"]["loaded"] is True
    assert first["dev_serving_id"] == dev_id
    assert first["serving_id"] == site_stack["id_map"]["serving"][dev_id] != dev_id
    assert first["service"]["endpoints"] == sorted(seeded_dev.seed["inference"])
    assert all(s["status"] == 200 and s["as_expected"] for s in first["smoke"].values()), first["smoke"]
    assert first["unprobed"] == []
    env = first["diff"]["after"]["container"]["env"]
    assert env["CLEARML_EXTRA_PYTHON_PACKAGES"] == ""
    assert env["CLEARML_API_SECRET_KEY"] == "********"
    assert "d2s-secret-key" not in json.dumps(first)
    # a second run changes nothing, in check mode or not
    again, output = run("serving_service", args, "--diff", site=site)
    assert not again.get("failed"), output[-6000:]
    assert again["changed"] is False
    assert again["container"]["action"] == "none"
    assert again["container"]["id"] == first["container"]["id"]
    assert again["image"]["loaded"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    check2, output = run("serving_service", args, "--check", site=site)
    assert not check2.get("failed"), output[-6000:]
    assert check2["changed"] is False


def _requests(seed: dict[str, Any]) -> list[tuple[str, Any]]:
    """Each plain endpoint: the seed's request (twice), 4 random rows, and a malformed request."""
    rng = random.Random(8)
    out: list[tuple[str, Any]] = []
    for endpoint, spec in sorted(seed["inference"].items()):
        if "response" not in spec:
            continue
        rows = [[round(rng.uniform(0.1, 8.0), 3) for _ in range(4)] for _ in range(4)]
        out += [(endpoint, spec["request"]), (endpoint, {"features": rows}), (endpoint, spec["request"])]
        out.append((endpoint, {"features": [[1.0, 2.0, 3.0]]}))
    return out


def test_same_request_same_answer(
    seeded_dev: Any, dev_stack: dict[str, Any], site_stack: dict[str, Any], site_service: dict[str, Any]
) -> None:
    seed = seeded_dev.seed
    requests = _requests(seed)
    dev = ask(dev_stack["url"], requests)
    site = ask(site_stack["url"], requests, site=site_stack["site"])
    assert len(dev) == len(site) == len(requests)
    seen = Counter()
    for (endpoint, body), d, s in zip(requests, dev, site, strict=True):
        assert (d["status"], d["body"]) == (s["status"], s["body"]), f"{endpoint} {body}: dev {d} != site {s}"
        if body == seed["inference"][endpoint]["request"]:
            assert d["status"] == 200
            diff = differences(d["body"], seed["inference"][endpoint]["response"], atol=ATOL)
            assert diff == [], f"{endpoint}: {diff}"
        elif len(body["features"][0]) == 3:
            assert d["status"] == 422, d  # the endpoint's own code refuses it, at both
        else:
            assert d["status"] == 200 and len(d["body"]["probabilities"]) == 4
        seen[endpoint] += 1
    assert set(seen) == {e for e, spec in seed["inference"].items() if "response" in spec}


def _canary_shares(answers: list[dict[str, Any]], versions: dict[str, Any]) -> Counter:
    counts: Counter = Counter()
    for answer in answers:
        assert answer["status"] == 200, answer
        matched = [v for v, body in versions.items() if answer["body"] == body]
        assert len(matched) == 1, f"canary answer of no version: {answer['body']}"
        counts[matched[0]] += 1
    return counts


def test_canary_splits_alike(
    seeded_dev: Any, dev_stack: dict[str, Any], site_stack: dict[str, Any], site_service: dict[str, Any]
) -> None:
    seed = seeded_dev.seed
    (canary, spec), *_ = [(e, s) for e, s in seed["inference"].items() if "expected_one_of" in s]
    routes = spec["routes"]  # {"iris_custom/1": 0.75, "iris_custom/2": 0.25}
    # each version's own answer, from the dev stack: the canary must give exactly one of them
    answers = ask(dev_stack["url"], [(v, spec["request"]) for v in routes])
    versions = {v: a["body"] for v, a in zip(routes, answers, strict=True)}
    for version, body in versions.items():
        assert differences(body, seed["inference"][version]["response"], atol=ATOL) == []
    plan = [(canary, spec["request"])] * CANARY_REQUESTS
    shares = {
        "dev": _canary_shares(ask(dev_stack["url"], plan), versions),
        "site": _canary_shares(ask(site_stack["url"], plan, site=site_stack["site"]), versions),
    }
    for stack, counts in shares.items():
        for version, weight in routes.items():
            share = counts[version] / CANARY_REQUESTS
            assert abs(share - weight) <= CANARY_TOLERANCE, (
                f"{stack}: {version} got {share:.3f}, weight {weight}"
            )


def test_dev_stack_answered_its_smoke_requests(seeded_dev: Any, dev_stack: dict[str, Any]) -> None:
    result = dev_stack["result"]
    assert result["changed"] is True and result["container"]["action"] == "create"
    assert result["image"]["source"] == "local"
    assert all(s["status"] == 200 and s["as_expected"] for s in result["smoke"].values()), result["smoke"]
    # the container is clearml-serving's own app, syncing the dev service's configuration
    logs = docker("logs", result["container"]["name"], check=False)
    assert f"service_id={seeded_dev.seed['serving']['id']}" in logs.stdout + logs.stderr
