# SPDX-License-Identifier: GPL-3.0-or-later
"""Records what a demo run of deploy_standalone.yml did, as JSON, for scripts/demo/report.py.

Not part of the collection: scripts/demo.sh enables it (ANSIBLE_CALLBACK_PLUGINS, ANSIBLE_CALLBACKS_ENABLED)
next to the normal output. It writes ``$D2S_DEMO_RECORD`` at the end of the run:
``{"stats": {host: {ok, changed, failed, unreachable, skipped}}, "results": {host: {module: result}}}``
where ``results`` keeps the last result per host of the modules the report reads (bundle_store per state,
clearml_import, triton_image per state, serving_service), without the invocation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: d2s_demo_record
type: aggregate
short_description: Record the demo's deploy results as JSON
description:
  - Writes the play recap and the results of the collection's deploy modules to the file named by D2S_DEMO_RECORD.
requirements:
  - D2S_DEMO_RECORD set in the environment
"""

_MODULES = ("bundle_store", "clearml_import", "triton_image", "serving_service")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "d2s_demo_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._results: dict[str, dict[str, Any]] = {}

    def v2_runner_on_ok(self, result: Any) -> None:
        action = str(result._task.action).rsplit(".", 1)[-1]
        if action not in _MODULES:
            return
        data = {k: v for k, v in result._result.items() if k != "invocation" and not k.startswith("_ansible")}
        state = (result._result.get("invocation") or {}).get("module_args", {}).get("state")
        key = f"{action}:{state}" if action in ("bundle_store", "triton_image") and state else action
        self._results.setdefault(result._host.get_name(), {})[key] = data

    def v2_playbook_on_stats(self, stats: Any) -> None:
        path = os.environ.get("D2S_DEMO_RECORD")
        if not path:
            return
        recap = {host: stats.summarize(host) for host in sorted(stats.processed)}
        out = {"stats": recap, "results": self._results}
        Path(path).write_text(json.dumps(out, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
