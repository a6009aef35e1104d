# SPDX-License-Identifier: GPL-3.0-or-later
"""Task.init with the SDK's default task reuse: run twice with the same HOME, the second run resets and
reuses the first run's task.

Usage: reuse.py OUT.json RUN_LABEL
"""

from __future__ import annotations

import sys

from _common import emit
from clearml import Task

label = sys.argv[2]
task = Task.init(
    project_name="D2S Server/Reuse",
    task_name="reuse flow",
    auto_connect_frameworks=False,
    auto_resource_monitoring=False,
)
task.get_logger().report_scalar("run", "label", value=float(len(label)), iteration=len(label))
print(f"REUSE-RUN-{label}", flush=True)
task.close()
emit({"task_id": task.id, "label": label})
