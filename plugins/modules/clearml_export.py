#!/usr/bin/python
# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: clearml_export
short_description: Export a ClearML deployment into a verifiable bundle
version_added: 0.1.0
description:
  - Reads what a dev ClearML server serves, starting from a clearml-serving service (O(serving_id)) and/or explicit
    model, task and dataset ids, and writes it into a bundle directory O(dest) on the host the module runs on.
  - The bundle holds the serving service (configuration objects, hyperparameters, preprocess artifacts), every served
    model (canary and monitored versions too) with its files, each model's training task as JSON with its artifacts and
    events (scalars, plots, console log, debug images), every dataset those tasks used with its whole lineage, the
    training code as a git bundle plus the uncommitted diff when the repository is reachable, and optionally docker
    images and a wheelhouse for site hosts.
  - Files are stored once under C(blobs/sha256/<digest>); C(checksums.sha256) covers every file; the manifest is
    validated against the format v1 schema before the bundle is published.
  - Secrets found in tasks (credentials in container arguments, scripts, diffs, hyperparameters or configuration) are
    redacted and the manifest lists what was redacted and where, never the value.
  - The bundle is written into a temporary sibling of O(dest) and renamed into place at the end. A second export of
    unchanged dev state has the same content digest, writes no blob again and reports RV(changed=false).
  - The dev server is never modified.
extends_documentation_fragment:
  - deploy2standalone.clearml.clearml
  - deploy2standalone.clearml.attributes
  - deploy2standalone.clearml.attributes.actiongroup_clearml
attributes:
  check_mode:
    support: full
    details:
      - Resolves the deployment, builds the bundle in a workspace beside O(dest) and returns the plan (objects, counts,
        bytes, content digest) without writing O(dest).
      - Keeps the would-be bundle's control files (manifest with its blob index, checksums, signature) at
        C(<dest>.plan/), returned as RV(plan_path), for the check runs of the downstream roles (transfer, import). Each
        check run replaces that directory; a real run removes it.
  diff_mode:
    support: full
    details:
      - Shows the object counts and content digest before and after.
  idempotent:
    support: full
options:
  serving_id:
    description:
      - Id of the clearml-serving service task (the control plane) whose endpoints are exported.
      - At least one of O(serving_id), O(model_ids), O(task_ids) and O(dataset_ids) is required.
    type: str
  endpoints:
    description:
      - Shell-style patterns of endpoint URLs to export (for example V(mnist/*)). Empty exports every endpoint.
      - A canary endpoint brings the endpoints it balances.
    type: list
    elements: str
    default: []
  model_ids:
    description: Extra models to export, with their training tasks and datasets.
    type: list
    elements: str
  task_ids:
    description: Extra tasks to export, with their output models and datasets.
    type: list
    elements: str
  dataset_ids:
    description: Extra datasets to export, with their whole lineage.
    type: list
    elements: str
  dest:
    description: Bundle directory to write on the host the module runs on. Its parent must exist.
    type: path
    required: true
  include_events:
    description: Export the events of training tasks (scalars, plots, console log, debug images).
    type: bool
    default: true
  include_code:
    description:
      - Export the training code of tasks whose git repository is reachable from this host, as a git bundle of the
        recorded commit plus the uncommitted diff.
    type: bool
    default: true
  redact:
    description: Redact secrets found in exported tasks. Turning it off is refused unless O(allow_secrets=true).
    type: bool
    default: true
  allow_secrets:
    description: Acknowledge that secrets may end up in the bundle when O(redact=false).
    type: bool
    default: false
  redact_patterns:
    description: Extra regular expressions whose matches (or first group) are redacted in task text fields.
    type: list
    elements: str
    default: []
  signing_key:
    description: Path to an Ed25519 private key (PEM) to sign the manifest with.
    type: path
  images:
    description:
      - Local docker images to put into the bundle (for example the own Triton image and the serving image), saved
        with one C(docker save) so shared layers are stored once; every layer is a blob, so a layer a site already holds
        is not sent again.
    type: list
    elements: str
    default: []
  include_task_images:
    description: Also export the base images the training tasks name (C(container.image)) when they are on this host.
    type: bool
    default: false
  wheels:
    description:
      - Python wheels (files, or directories of C(*.whl)) that site hosts install offline with C(pip install --no-index),
        for example the collection's runtime requirements and the C(d2s-tools) local server.
    type: list
    elements: path
    default: []
  site_digests:
    description:
      - Path to a site's digest list (one sha256 per line). The bundle then holds the complete manifest but only the
        blobs the site lacks (a partial bundle for a carried disk).
    type: path
requirements:
  - clearml >= 2.0 (to parse clearml-serving configuration and read object stores)
  - requests
  - cryptography (signing)
author:
  - deploy2standalone contributors
seealso:
  - module: deploy2standalone.clearml.bundle_info
  - module: deploy2standalone.clearml.clearml_import
"""

EXAMPLES = r"""
- name: Export what the dev serving service runs
  deploy2standalone.clearml.clearml_export:
    api_host: https://api.clearml.dev.example.com
    web_host: https://app.clearml.dev.example.com
    files_host: https://files.clearml.dev.example.com
    access_key: "{{ vault_clearml_access_key }}"
    secret_key: "{{ vault_clearml_secret_key }}"
    serving_id: aabbccddeeff00112233445566778899
    dest: /srv/d2s/bundles/current
  register: export

- name: Export only the mnist endpoints, signed, with dev credentials from the environment
  deploy2standalone.clearml.clearml_export:
    serving_id: aabbccddeeff00112233445566778899
    endpoints:
      - "mnist*"
    signing_key: /etc/d2s/signing.key
    dest: /srv/d2s/bundles/mnist

- name: Show what the bundle holds
  ansible.builtin.debug:
    msg: "{{ export.digest }}: {{ export.counts }}"
"""

RETURN = r"""
bundle:
  description: Path of the bundle directory.
  returned: always
  type: str
  sample: /srv/d2s/bundles/current
digest:
  description: Content digest of the bundle (the manifest without its volatile fields).
  returned: always
  type: str
  sample: 5f0c6c3b1f0e4f7f8b7a4c5d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f
counts:
  description: Number of exported objects per kind.
  returned: always
  type: dict
  sample: {"endpoints": 3, "models": 4, "tasks": 1, "datasets": 3, "code": 1, "images": 0, "blobs": 57}
bytes:
  description: Bytes per kind of blob, and C(written) (bytes written by this run).
  returned: always
  type: dict
  sample: {"model": 10240, "dataset": 3145728, "written": 0}
plan_path:
  description:
    - Check mode only. Directory C(<dest>.plan) holding the control files of the bundle this export would write
      (C(manifest.json) with its blob index, C(checksums.sha256), C(manifest.volatile.json), C(manifest.sig)), no blobs.
  returned: check mode
  type: str
  sample: /srv/d2s/bundles/current.plan
partial:
  description: With O(site_digests), the blobs written (the ones the site lacks), their bytes, and the blobs skipped.
  returned: when O(site_digests) is set
  type: dict
  sample: {"blobs": 1, "bytes": 1079, "skipped_blobs": 29}
redactions:
  description: What was redacted and where (never the value).
  returned: always
  type: list
  elements: dict
  sample: [{"object_kind": "task", "object_id": "0123", "path": "container.arguments[1]", "rule": "secret-name"}]
notes:
  description: Things the export noticed and went on (also emitted as warnings) (a model without a creating task, a gone monitored model).
  returned: always
  type: list
  elements: str
  sample: ["Model 0123 (bare) has no creating task; exported as a bare model"]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import (
    ClearmlModuleError,
    generate_argspec,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._export import ExportCore


def main() -> None:
    argument_spec = generate_argspec(
        serving_id={"type": "str"},
        endpoints={"type": "list", "elements": "str", "default": []},
        model_ids={"type": "list", "elements": "str"},
        task_ids={"type": "list", "elements": "str"},
        dataset_ids={"type": "list", "elements": "str"},
        dest={"type": "path", "required": True},
        include_events={"type": "bool", "default": True},
        include_code={"type": "bool", "default": True},
        redact={"type": "bool", "default": True},
        allow_secrets={"type": "bool", "default": False},
        redact_patterns={"type": "list", "elements": "str", "default": []},
        signing_key={"type": "path", "no_log": False},
        images={"type": "list", "elements": "str", "default": []},
        include_task_images={"type": "bool", "default": False},
        wheels={"type": "list", "elements": "path", "default": []},
        site_digests={"type": "path"},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=[("serving_id", "model_ids", "task_ids", "dataset_ids")],
        supports_check_mode=True,
    )
    try:
        result = ExportCore(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except ClearmlModuleError as exc:
        module.fail_json(msg=exc.msg, exception=traceback.format_exc(), **exc.result)
    for note in result.get("notes", []):
        module.warn(note)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
