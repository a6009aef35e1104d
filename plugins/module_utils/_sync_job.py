# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The periodic sync-back job's entry point: one ``dataset_sync`` run from a job file, outside Ansible.

Private to this collection: not a public API, may change without notice.

The ``dataset_sync`` role installs this file with the collection's other module utils under
``<home>/lib/ansible_collections/deploy2standalone/clearml/plugins/module_utils/`` and a cron job (or a
systemd timer) running, under ``flock``::

    PYTHONPATH=<home>/lib <python> -m ansible_collections.deploy2standalone.clearml.plugins.module_utils._sync_job <home>/job.json

``job.json`` holds the module's options (secrets included: the role writes it mode 0600). They are
validated with the module's own argument spec (``ansible.module_utils.common.arg_spec``, so the
interpreter needs ansible-core, or at least its ``ansible.module_utils``, and ``requests``), then
``SyncCore`` runs exactly as the module runs it. One JSON line goes to stdout: the time, ``changed``,
what was sent and the site id to dev id map, or ``failed`` with the message. Exit status 0 on success,
1 on a sync failure, 2 on a bad job file.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._sync import (
    SYNC_REQUIRED_BY,
    SYNC_REQUIRED_IF,
    SyncCore,
    sync_argument_spec,
)

_SUMMARY = ("changed", "mode", "site_name", "selected", "sent", "id_map", "created", "datasets", "warnings")


def _line(data: dict[str, Any]) -> str:
    return json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"), **data}, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(_line({"failed": True, "msg": "usage: _sync_job JOB.json"}))
        return 2
    try:
        raw = json.loads(Path(args[0]).read_text())
    except (OSError, ValueError) as exc:
        print(_line({"failed": True, "msg": f"cannot read the job file {args[0]}: {exc}"}))
        return 2
    validator = ArgumentSpecValidator(
        sync_argument_spec(), required_if=SYNC_REQUIRED_IF, required_by=SYNC_REQUIRED_BY
    )
    checked = validator.validate(raw)
    if checked.error_messages:
        print(_line({"failed": True, "msg": "; ".join(checked.error_messages)}))
        return 2
    try:
        result = SyncCore(checked.validated_parameters).run()
    except ClearmlModuleError as exc:
        print(_line({"failed": True, "msg": exc.msg, "exception": traceback.format_exc()[-2000:]}))
        return 1
    print(_line({k: result[k] for k in _SUMMARY if k in result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
