#!/usr/bin/python
# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: dataset_sync
short_description: Bring the dataset versions, tasks and models a site made back to the dev ClearML server
version_added: 0.1.0
description:
  - Sync-back, the reverse of M(deploy2standalone.clearml.clearml_export) and M(deploy2standalone.clearml.clearml_import),
    through the same verified bundle format.
  - Selects at the site (the B(source) server) what was made there and not imported from dev. Objects an import made
    carry C(d2s-origin:<dev id>) in C(system_tags) and are never sent back; a task cloned from one carries the same tags,
    so only the first-created object per origin counts as dev's. Selected are finalized dataset versions (tasks with the
    C(dataset) system tag, status C(completed) or C(published)) and done tasks of O(task_types) with their output
    models and events, filtered by O(projects) and O(tags).
  - Writes them into a bundle with redaction and checksums. References to objects that came from dev are written as
    their dev ids, so a site's new dataset version carries only its own chunks and its parent is the dev original; a
    retrained task's parent, input models and input datasets point at dev ids.
  - Imports the bundle at dev (the B(dest) server). Every object made there carries C(d2s-origin:<site id>) and
    C(d2s-site:<site>) in C(system_tags) and C(site:<site>) in C(tags). A new version of a dataset dev has goes next to
    it; a dataset the site created goes to O(new_dataset_project). Version strings follow O(promote) and O(on_conflict);
    by default a site's version never becomes what C(Dataset.get(project, name)) returns at dev.
  - O(mode=online) does both on a host that reaches both servers; O(mode=export) writes the bundle at the site for a
    carried disk and O(mode=import) reads it at dev. A second run changes nothing; a run killed half-way is completed by
    the next one.
extends_documentation_fragment:
  - deploy2standalone.clearml.clearml.source_dest
  - deploy2standalone.clearml.attributes
attributes:
  check_mode:
    support: full
    details:
      - Returns the plan (what would be sent, where each dataset version would go and under which version) without
        changing either server. Online, the bundle is built in a scratch directory (the site is only read).
  diff_mode:
    support: full
    details:
      - Site id to dev id map before and after (online, import); bundle digest before and after (export).
  idempotent:
    support: full
options:
  mode:
    description:
      - V(online) selects, exports and imports in one run; needs O(source_api_host) and O(dest_api_host).
      - V(export) writes the bundle to O(bundle) at the site; V(import) imports the bundle at O(bundle) into dev.
    type: str
    choices: [online, export, import]
    default: online
  source_api_host:
    description: URL of the site's ClearML API server. Required with O(mode=online) and O(mode=export).
    type: str
  source_web_host:
    description: URL of the site's ClearML web application.
    type: str
  source_files_host:
    description: URL of the site's ClearML fileserver.
    type: str
  source_access_key:
    description: Site API access key. Required with O(source_api_host).
    type: str
  source_secret_key:
    description: Site API secret key. Required with O(source_api_host). Keep it in ansible-vault.
    type: str
  source_validate_certs:
    description: Whether to verify the TLS certificates of the site's servers.
    type: bool
    default: true
  source_ca_path:
    description: PEM file with the CA certificates of the site's servers.
    type: path
  dest_api_host:
    description: URL of the dev ClearML API server. Required with O(mode=online) and O(mode=import).
    type: str
  dest_web_host:
    description: URL of the dev ClearML web application.
    type: str
  dest_files_host:
    description: URL of the dev ClearML fileserver, where the site's chunks, models and artifacts are uploaded.
    type: str
  dest_access_key:
    description: Dev API access key. Required with O(dest_api_host).
    type: str
  dest_secret_key:
    description: Dev API secret key. Required with O(dest_api_host). Keep it in ansible-vault.
    type: str
  dest_validate_certs:
    description: Whether to verify the TLS certificates of the dev servers.
    type: bool
    default: true
  dest_ca_path:
    description: PEM file with the CA certificates of the dev servers.
    type: path
  site_name:
    description: Name of the site; in tags, in the project of new datasets and in C(sync_info.json)/C(import_info.json).
    type: str
    required: true
  bundle:
    description:
      - The bundle directory. V(export) writes it (its parent must exist), V(import) reads it.
      - With V(online), where to keep the bundle of the last run (unchanged blobs are then not downloaded again);
        by default a temporary directory, removed afterwards.
    type: path
  include:
    description: What to select at the site.
    type: list
    elements: str
    choices: [datasets, tasks]
    default: [datasets, tasks]
  projects:
    description: Shell-style patterns of site project names to select from (a dataset's project is the one given to
      C(Dataset.create)); empty selects every project. Dependencies are sent whatever their project.
    type: list
    elements: str
    default: []
  tags:
    description: Select only objects carrying at least one of these user tags; empty selects all.
    type: list
    elements: str
    default: []
  task_types:
    description: ClearML task types selected (with their output models).
    type: list
    elements: str
    default: [training]
  new_dataset_project:
    description: Project at dev of a dataset the site created; C({site}) and C({project}) (the site's project) are
      replaced.
    type: str
    default: "{site}/{project}"
  promote:
    description:
      - V(false) gives every site version of a dataset dev shares the version string C(<site version>@<site>), which the
        ClearML SDK never picks as the latest, so C(Dataset.get(project, name)) at dev returns what it returned before.
      - V(true) keeps the site's version string when there is no conflict; it becomes the latest if it is the highest.
    type: bool
    default: false
  on_conflict:
    description:
      - A site version conflicts when the version C(Dataset.get) returns at dev is not one of its ancestors (dev or
        another site made a version meanwhile), or when its version string is taken at dev.
      - V(branch) adds it under C(<site version>@<site>) (never the latest). V(fail) refuses the import before any
        change. V(promote) makes it dev's latest, under its own version when higher and free, else dev's latest bumped
        (and implies O(promote=true)).
    type: str
    choices: [branch, fail, promote]
    default: branch
  include_events:
    description: Send the tasks' scalars, plots, console log and debug images.
    type: bool
    default: true
  redact_patterns:
    description: Extra regular expressions whose matches are redacted from task documents before they leave the site.
    type: list
    elements: str
    default: []
  signing_key:
    description: Ed25519 private key (PEM) on the host to sign the bundle with (O(mode=export)).
    type: path
  require_signature:
    description: Refuse a bundle not signed by one of O(public_key) (O(mode=import)).
    type: bool
    default: false
  public_key:
    description: Ed25519 public key(s) to trust, for O(require_signature).
    type: list
    elements: str
  sync_info_path:
    description: Where to keep C(sync_info.json), the site's record of what was sent (online, with the dev ids).
    type: path
  import_info_path:
    description: Where to write C(import_info.json), dev's record of what came from the site (site id to dev id).
    type: path
requirements:
  - requests
author:
  - deploy2standalone contributors
seealso:
  - module: deploy2standalone.clearml.clearml_export
  - module: deploy2standalone.clearml.clearml_import
"""

EXAMPLES = r"""
- name: Bring site_a's new dataset versions and retrained models home
  deploy2standalone.clearml.dataset_sync:
    site_name: site_a
    source_api_host: https://api.clearml.site-a.example
    source_web_host: https://app.clearml.site-a.example
    source_files_host: https://files.clearml.site-a.example
    source_access_key: "{{ vault_site_a_access_key }}"
    source_secret_key: "{{ vault_site_a_secret_key }}"
    dest_api_host: https://api.clearml.dev.example
    dest_web_host: https://app.clearml.dev.example
    dest_files_host: https://files.clearml.dev.example
    dest_access_key: "{{ vault_dev_access_key }}"
    dest_secret_key: "{{ vault_dev_secret_key }}"
    sync_info_path: /var/lib/d2s/dataset_sync/sync_info.json
  register: synced

- name: Show where each dataset version went at dev
  ansible.builtin.debug:
    msg: "{{ synced.datasets | map(attribute='dev_version') | list }}"

- name: Write the bundle at a site without a link to dev (carried disk)
  deploy2standalone.clearml.dataset_sync:
    mode: export
    site_name: site_b
    source_api_host: https://api.clearml.site-b.example
    source_files_host: https://files.clearml.site-b.example
    source_access_key: "{{ vault_site_b_access_key }}"
    source_secret_key: "{{ vault_site_b_secret_key }}"
    bundle: /media/disk/sync-site_b

- name: Import it at dev; fail if dev moved on since the site's versions were made
  deploy2standalone.clearml.dataset_sync:
    mode: import
    site_name: site_b
    dest_api_host: https://api.clearml.dev.example
    dest_files_host: https://files.clearml.dev.example
    dest_access_key: "{{ vault_dev_access_key }}"
    dest_secret_key: "{{ vault_dev_secret_key }}"
    bundle: /media/disk/sync-site_b
    on_conflict: fail
    import_info_path: /var/lib/d2s/sync/site_b/import_info.json
"""

RETURN = r"""
mode:
  description: The mode of the run.
  returned: always
  type: str
  sample: online
selected:
  description: Number of site-made objects selected per kind (online, export), before their dependencies are added.
  returned: mode is online or export
  type: dict
  sample: {"datasets": 1, "tasks": 1}
skipped:
  description: Objects left out, online; C(from_dev) (count) came from dev, C(already_at_dest) (site id to dev id)
    were synced before.
  returned: mode is online
  type: dict
  sample: {"from_dev": 12, "already_at_dest": {}}
sent:
  description: What the bundle carries (references to dev objects left out), per kind, site id to a summary.
  returned: when a bundle was made or read
  type: dict
  sample: {"datasets": {"d2ce36": {"name": "iris-like", "project": "d2s-demo", "version": "1.2.1"}}, "tasks": {},
           "models": {}}
bundle:
  description: The bundle directory (V(null) online without O(bundle)).
  returned: always
  type: str
  sample: /media/disk/sync-site_b
bundle_digest:
  description: Content digest of the bundle.
  returned: when a bundle was made or read
  type: str
  sample: sha256:e6c7ff591aaff0b0d1461e6d663a28d9ac5872bed41e370abbc8281f2fb0502f
id_map:
  description: Site id to dev id of the bundle's objects (created now or by an earlier run), per kind.
  returned: mode is online or import
  type: dict
  sample: {"datasets": {"d2ce36": "aa30e3"}, "tasks": {"868f88": "deb265"}, "models": {"b29ced": "286e7f"}}
created:
  description: Number of objects created at dev (in check mode, to create) per kind.
  returned: mode is online or import, and something was sent
  type: dict
  sample: {"datasets": 1, "tasks": 1, "models": 3}
datasets:
  description:
    - One entry per dataset version created at dev (in check mode, to create), with the decision taken.
    - C(action) is V(kept) (site version string kept), V(branched) (C(<version>@<site>)), V(promoted) or V(failed);
      C(conflict) says why, C(dev_latest) is what C(Dataset.get) returned at dev before.
  returned: mode is online or import
  type: list
  elements: dict
  sample: [{"site_id": "d2ce36", "name": "iris-like", "project": "d2s-demo", "site_version": "1.2.1",
            "dev_version": "1.2.1@site_a", "action": "branched", "conflict": null, "dev_latest": "1.2.0",
            "dev_id": "aa30e3", "site_project": "d2s-demo", "parents": ["8c8e87"]}]
redactions:
  description: What was redacted before the documents left the site (never the values).
  returned: mode is online or export, and a bundle was made
  type: list
  elements: dict
  sample: [{"object_kind": "task", "object_id": "868f88", "path": "container.arguments[3]", "rule": "secret-name"}]
sync_info:
  description: The content of C(sync_info.json) after the run.
  returned: changed, not check mode, mode is online or export
  type: dict
  sample: {"site": "site_a", "map": {"datasets": {"d2ce36": "aa30e3"}}}
import_info:
  description: The content of C(import_info.json) after the run.
  returned: changed, not check mode, mode is online or import
  type: dict
  sample: {"direction": "sync-back", "site": "site_a", "map": {"datasets": {"d2ce36": "aa30e3"}}}
warnings:
  description: Things noticed along the way.
  returned: always
  type: list
  elements: str
  sample: []
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._sync import (
    SYNC_REQUIRED_BY,
    SYNC_REQUIRED_IF,
    SyncCore,
    sync_argument_spec,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=sync_argument_spec(),
        required_if=SYNC_REQUIRED_IF,
        required_by=SYNC_REQUIRED_BY,
        supports_check_mode=True,
    )
    try:
        result = SyncCore(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except ClearmlModuleError as exc:
        module.fail_json(msg=exc.msg, exception=traceback.format_exc(), **exc.result)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
