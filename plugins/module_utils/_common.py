# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the collection's modules.

Private to this collection: not a public API, may change without notice.
"""

from __future__ import annotations

import copy
import traceback
from typing import Any

from ansible.module_utils.basic import env_fallback

try:
    import clearml  # noqa: F401  (probe only)
except ImportError:  # pragma: no cover - exercised on hosts without the SDK
    HAS_CLEARML = False
    CLEARML_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_CLEARML = True
    CLEARML_IMPORT_ERROR = None


class ClearmlModuleError(Exception):
    """Raised by the collection's cores; ``main()`` turns it into ``fail_json``.

    ``result`` carries partial results that are useful to the caller.
    """

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


# Argument spec twin of doc_fragments/clearml.py (kept equal by a unit test).
CLEARML_COMMON_ARGS: dict[str, dict[str, Any]] = {
    "api_host": {
        "type": "str",
        "required": True,
        "fallback": (env_fallback, ["CLEARML_API_HOST"]),
    },
    "web_host": {"type": "str", "fallback": (env_fallback, ["CLEARML_WEB_HOST"])},
    "files_host": {"type": "str", "fallback": (env_fallback, ["CLEARML_FILES_HOST"])},
    "access_key": {
        "type": "str",
        "required": True,
        "no_log": True,
        "fallback": (env_fallback, ["CLEARML_API_ACCESS_KEY"]),
    },
    "secret_key": {
        "type": "str",
        "required": True,
        "no_log": True,
        "fallback": (env_fallback, ["CLEARML_API_SECRET_KEY"]),
    },
    "validate_certs": {
        "type": "bool",
        "default": True,
        "fallback": (env_fallback, ["CLEARML_API_HOST_VERIFY_CERT"]),
    },
    "ca_path": {"type": "path", "no_log": False},
    "storage_credentials": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "bucket": {"type": "str", "required": True},
            "host": {"type": "str", "default": ""},
            "key": {"type": "str", "required": True, "no_log": True},
            "secret": {"type": "str", "required": True, "no_log": True},
            "region": {"type": "str", "default": ""},
            "secure": {"type": "bool", "default": True},
            "verify": {"type": "bool", "default": True},
        },
    },
}


def generate_argspec(prefix: str = "", **module_args: Any) -> dict[str, Any]:
    """Merge the shared ClearML connection options (optionally prefixed) into a module's spec."""
    spec: dict[str, Any] = {}
    for name, base in CLEARML_COMMON_ARGS.items():
        opts = copy.deepcopy(base)
        if prefix:
            # A prefixed set (e.g. dataset_sync's source_/dest_) has no env fallback:
            # two servers cannot share the SDK's single set of variables.
            opts.pop("fallback", None)
        spec[prefix + name] = opts
    spec.update(module_args)
    return spec
