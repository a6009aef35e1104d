# SPDX-License-Identifier: GPL-3.0-or-later
"""The test client: POST each request of a plan to a clearml-serving inference service, print the answers.

Standard library only: it runs on the test host (dev stack) and inside the network-less site host (site
stack, Debian's python3), so both stacks are asked by the same code. Input (stdin, JSON):
``{"base_url": "http://127.0.0.1:8080", "requests": [[endpoint, body], ...]}``. Output (stdout, one
JSON document): ``[{"endpoint", "status", "body"}, ...]`` in the order of the plan.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ask(base_url: str, endpoint: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - the plan's http:// base url
        f"{base_url}/serve/{endpoint}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with OPENER.open(request, timeout=120) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode("utf-8", errors="replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = text
    return {"endpoint": endpoint, "status": status, "body": answer}


def main() -> int:
    plan = json.load(sys.stdin)
    answers = [ask(plan["base_url"], endpoint, body) for endpoint, body in plan["requests"]]
    json.dump(answers, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
