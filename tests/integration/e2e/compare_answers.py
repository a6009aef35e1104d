# SPDX-License-Identifier: GPL-3.0-or-later
"""Do a site's answers equal dev's? The e2e molecule scenario's verify step asks each site's inference
service (from inside the network-less site host) and hands the answers to this script on the controller.

What dev answers is what seed.json records per endpoint (``inference.<endpoint>.response``, computed
from dev's models with the endpoints' own preprocess code, docs/seed.md); after the side effect the
changed endpoint answers as ``new_model.json`` records (the new weights, computed the same way), and
the canary's answers are one of its routes' answers. Numbers are compared within 1e-6 (the ONNX path
through Triton may differ from onnxruntime's in the last float32 bit), like tests/integration/serving.

    compare_answers.py --seed seed.json [--change new_model.json] --site NAME --answers JSON

``--change`` given: the expected answers after the redeploy; left out: those of the seeded deployment
(before the change, or after a rollback). ``--answers`` is a JSON list of ``{endpoint, status, body}``.
Prints one line per answer; exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._serving_probe import differences

ATOL = 1e-6


def expected_answers(seed: dict[str, Any], change: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per endpoint, ``{"response": ...}`` or ``{"expected_one_of": [...]}`` as dev answers now."""
    plain = {e: {"response": s["response"]} for e, s in seed["inference"].items() if "response" in s}
    if change:
        old = plain[change["endpoint"]]["response"]
        new = change["inference"]["response"]
        if not differences(new, old, atol=ATOL):
            raise SystemExit(
                f"the new model answers {change['endpoint']} as the old one did: nothing to tell apart"
            )
        plain[change["endpoint"]] = {"response": new}
    out: dict[str, dict[str, Any]] = dict(plain)
    for endpoint, spec in seed["inference"].items():
        if "routes" in spec:
            out[endpoint] = {"expected_one_of": [plain[route]["response"] for route in spec["routes"]]}
    return out


def compare(answers: list[dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    failures = []
    asked = {a["endpoint"] for a in answers}
    for missing in sorted(set(expected) - asked):
        failures.append(f"{missing}: not asked")
    for answer in answers:
        endpoint, status, body = answer["endpoint"], answer["status"], answer.get("body")
        want = expected.get(endpoint)
        if want is None:
            failures.append(f"{endpoint}: not an endpoint of the deployment")
            continue
        if status != 200:
            failures.append(f"{endpoint}: HTTP {status} {json.dumps(body)[:300]}")
            continue
        if "response" in want:
            diff = differences(body, want["response"], atol=ATOL)
            line = "as dev" if not diff else "differs: " + "; ".join(diff[:3])
        else:
            matched = [
                i for i, one in enumerate(want["expected_one_of"]) if not differences(body, one, atol=ATOL)
            ]
            diff = [] if matched else ["none of its routes' answers"]
            line = f"as dev's route {matched[0]}" if matched else "differs from every route's answer"
        print(f"  {endpoint}: {line}")
        if diff:
            failures.append(f"{endpoint}: {line}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, required=True)
    parser.add_argument("--change", type=Path)
    parser.add_argument("--site", required=True)
    parser.add_argument("--answers", required=True, help="JSON list of {endpoint, status, body}")
    args = parser.parse_args(argv)
    seed = json.loads(args.seed.read_text(encoding="utf-8"))
    change = json.loads(args.change.read_text(encoding="utf-8")) if args.change else None
    answers = json.loads(args.answers)
    state = f"after the change of {change['endpoint']}" if change else "of the seeded deployment"
    print(f"{args.site}: {len(answers)} answers compared with dev's answers {state}")
    failures = compare(answers, expected_answers(seed, change))
    if failures:
        print(f"{args.site}: {len(failures)} answers differ from dev's: " + " | ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
