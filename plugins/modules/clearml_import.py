#!/usr/bin/python
# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: clearml_import
short_description: Import a deploy2standalone bundle into a site's ClearML server
version_added: 0.1.0
description:
  - Verifies the whole bundle at O(bundle) on the host the module runs on (checksums of every file, the manifest
    schema and, when asked, its signature). A bad bundle changes nothing at the site.
  - Then creates, in dependency order, the projects, the datasets (parents first, with their state remapped so
    C(Dataset.get(...).get_local_copy()) at the site returns identical files), the training tasks (every field,
    artifacts with the same hashes, output models, input models and datasets remapped, events replayed, status
    restored), the models (weights uploaded to the site's fileserver, URIs rewritten) and the clearml-serving service
    (configuration objects with site model ids, preprocess artifacts under the same keys and hashes).
  - Every object created at the site carries its origin in C(system_tags) (C(d2s-origin:<dev id>) and the bundle
    digest), never in the user's C(tags). A second run changes nothing; an import killed half-way is completed by the
    next run (objects left incomplete are made again).
  - Name clashes (a site object with the name of an imported one but another origin) follow O(on_clash).
  - V(state=absent) takes the deployment off the site's server instead (see O(removal)). Its objects are those imported
    from O(bundle), O(extra_bundles) and O(import_info_path), found by their C(d2s-origin) tags; site-made objects (no
    origin tag, or a clone of an imported one) are never touched; C(import_info.json) is removed. An import of the
    deployment later takes the removal marks off the archived objects again.
extends_documentation_fragment:
  - deploy2standalone.clearml.clearml
  - deploy2standalone.clearml.attributes
  - deploy2standalone.clearml.attributes.actiongroup_clearml
attributes:
  check_mode:
    support: full
    details:
      - Verifies the bundle and returns the plan (what exists, what would be created or updated) without changing the
        site.
      - With O(plan_manifest), plans against the manifest of a bundle that is not at the site yet (the one a check
        run of the export would make).
  diff_mode:
    support: full
    details:
      - Shows the dev id to site id map before and after.
  idempotent:
    support: full
options:
  state:
    description: V(present) imports O(bundle); V(absent) removes the deployment's imported objects from the site.
    type: str
    choices: [present, absent]
    default: present
  removal:
    description:
      - V(state=absent) V(archive) adds C(archived) and C(d2s-removed) to the objects' system tags (nothing is lost).
      - V(delete) deletes them, except those a site-made object still refers to (a child task or model, a task using
        the model, another version of the same dataset), which are archived and listed in RV(kept). Projects and
        files on the fileserver stay.
    type: str
    choices: [archive, delete]
    default: archive
  extra_bundles:
    description: V(state=absent) more bundle directories whose objects belong to the deployment (for example
      C(<bundle>.previous)); missing ones are ignored.
    type: list
    elements: path
    default: []
  bundle:
    description: Path of the bundle directory on the host the module runs on (with V(state=absent) it may be missing).
    type: path
    required: true
  site_name:
    description: Name of the site, recorded in C(import_info.json).
    type: str
  on_clash:
    description:
      - What to do when the site already has a dataset version or task with the name (and version) of an imported one
        that did not come from a bundle.
      - V(fail) refuses the import before any change and lists the clashes.
      - V(coexist) imports alongside and warns; C(Dataset.get(name)) at the site may then return either, by version.
      - Objects are never renamed.
    type: str
    choices: [fail, coexist]
    default: fail
  require_signature:
    description: Refuse a bundle that is not signed by one of O(public_key).
    type: bool
    default: false
  plan_manifest:
    description:
      - Check mode only (a real run refuses it). The manifest (C(manifest.json) as a dict or JSON text) of a would-be
        bundle, for example C(<dest>.plan/manifest.json) that a check run of M(deploy2standalone.clearml.clearml_export)
        keeps; the plan is made against it instead of the bundle at O(bundle), which need not exist.
      - The manifest is validated (schema and cross-field rules); there are no blobs to verify.
    type: raw
  public_key:
    description: Ed25519 public key(s) to trust (paths or base64), for O(require_signature).
    type: list
    elements: str
  import_info_path:
    description: Where to write C(import_info.json) (the dev id to site id map per kind) on the host.
    type: path
  storage_uri:
    description:
      - Store imported model weights, artifacts and dataset chunks in this S3-compatible location (for example
        V(s3://minio.site-a.internal:9000/clearml)) instead of the site's fileserver; URIs are rewritten to it.
      - Needs O(storage_credentials) for its bucket.
    type: str
requirements:
  - requests
  - cryptography (signatures)
author:
  - deploy2standalone contributors
seealso:
  - module: deploy2standalone.clearml.clearml_export
  - module: deploy2standalone.clearml.bundle_info
"""

EXAMPLES = r"""
- name: Import the bundle into the site's ClearML server
  deploy2standalone.clearml.clearml_import:
    api_host: http://clearml.site-a.internal:8008
    web_host: http://clearml.site-a.internal:8080
    files_host: http://clearml.site-a.internal:8081
    access_key: "{{ vault_site_access_key }}"
    secret_key: "{{ vault_site_secret_key }}"
    bundle: /var/lib/d2s/bundles/current
    site_name: site_a
    import_info_path: /var/lib/d2s/import_info.json
  register: imported

- name: Show the site id of the serving service
  ansible.builtin.debug:
    msg: "{{ imported.id_map.serving }}"
"""

RETURN = r"""
bundle_digest:
  description: Content digest of the imported bundle.
  returned: always
  type: str
  sample: sha256:5dd2df8155ade718c19d9904e01882ec2e13be1a73d9afbfaed5451653ee600d
id_map:
  description: Dev id to site id, per kind (datasets, tasks, models, serving).
  returned: always
  type: dict
  sample: {"models": {"0a1b": "9f8e"}, "serving": {"77aa": "11bb"}}
created:
  description: Number of objects created (or, in check mode, to create) per kind.
  returned: always
  type: dict
  sample: {"datasets": 3, "tasks": 2, "models": 6, "serving": 1}
existing:
  description: Number of objects found already imported per kind.
  returned: always
  type: dict
  sample: {}
plan:
  description: Check mode. Dev ids per kind that would be created (V(to_create)) or updated (V(to_update)), and those
    already at the site (V(existing)).
  returned: check mode
  type: dict
  sample: {"to_create": {"models": ["0a1b"]}, "to_update": {"serving": ["77aa"]}, "existing": {"datasets": ["5c6d"]}}
import_info:
  description: The content of C(import_info.json).
  returned: changed and not check mode
  type: dict
  sample: {"bundle_digest": "sha256:5dd2", "site": "site_a", "map": {"models": {"0a1b": "9f8e"}}}
restored:
  description: Site ids of the objects a removal had archived that this import took the marks off.
  returned: state == 'present' and a removal had archived objects of the bundle
  type: list
  elements: str
  sample: ["9f8e7d6c5b4a39281706f5e4d3c2b1a0"]
archived:
  description: V(state=absent) site ids archived (or, in check mode, to archive) per kind.
  returned: state == 'absent'
  type: dict
  sample: {"models": ["9f8e7d6c5b4a39281706f5e4d3c2b1a0"]}
deleted:
  description: V(state=absent) site ids deleted (or, in check mode, to delete) per kind.
  returned: state == 'absent'
  type: dict
  sample: {}
kept:
  description: V(state=absent) with V(removal=delete) imported objects archived instead, with the site object that needs
    them.
  returned: state == 'absent'
  type: dict
  sample: {"9f8e7d6c5b4a39281706f5e4d3c2b1a0": "input model of site task 'retrain' (0a1b2c3d4e5f60718293a4b5c6d7e8f9)"}
notes:
  description: Things noticed along the way (clashes imported alongside); also emitted as warnings.
  returned: always
  type: list
  elements: str
  sample: []
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import (
    ClearmlModuleError,
    generate_argspec,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._import import ImportCore
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._remove import RemoveCore, restore


def main() -> None:
    argument_spec = generate_argspec(
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        removal={"type": "str", "choices": ["archive", "delete"], "default": "archive"},
        extra_bundles={"type": "list", "elements": "path", "default": []},
        bundle={"type": "path", "required": True},
        site_name={"type": "str"},
        on_clash={"type": "str", "choices": ["fail", "coexist"], "default": "fail"},
        require_signature={"type": "bool", "default": False},
        public_key={"type": "list", "elements": "str", "no_log": False},
        import_info_path={"type": "path"},
        storage_uri={"type": "str"},
        plan_manifest={"type": "raw"},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("require_signature", True, ("public_key",))],
        supports_check_mode=True,
    )
    try:
        if module.params["state"] == "absent":
            result = RemoveCore(module.params, check_mode=module.check_mode, diff=module._diff).run()
        else:
            core = ImportCore(module.params, check_mode=module.check_mode, diff=module._diff)
            result = core.run()
            # Objects a removal archived come back; so does import_info.json, which the removal took away.
            restored = restore(core.client, result["id_map"], module.check_mode)
            info = module.params.get("import_info_path")
            if restored or (info and not os.path.exists(info)):
                result.update(changed=True, restored=restored)
                if not module.check_mode:
                    result["import_info"] = core._write_import_info()
    except ClearmlModuleError as exc:
        module.fail_json(msg=exc.msg, exception=traceback.format_exc(), **exc.result)
    for note in result.get("notes", []):
        module.warn(note)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
