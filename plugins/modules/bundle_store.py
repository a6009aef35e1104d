#!/usr/bin/python
# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: bundle_store
short_description: Differential transfer of bundles through a site's blob store
version_added: 0.1.0
description:
  - Every site host keeps a content-addressed blob store (C(<store>/blobs/sha256/<digest>)). A transfer sends only the
    blobs the site lacks, and the site assembles and verifies the complete bundle from its store.
  - V(state=digests) (site host) lists the digests the store holds.
  - V(state=partial) (the host that holds the complete bundle, usually the controller or a dev host) writes a partial
    bundle into O(dest) that holds the complete control files and only the blobs missing from O(site_digests).
  - V(state=assembled) (site host) assembles the bundle at O(dest) from the partial (or complete, for example carried on
    a disk) bundle O(src) and the store O(path), verifies the whole (every listed blob present with its hash, nothing
    unlisted), adds the new blobs to the store, and keeps the bundle it replaces at C(<dest>.previous) for rollback.
  - V(state=rolled_back) (site host) returns to the previous bundle. It verifies C(<dest>.previous) completely (and its
    signature when O(require_signature)), then swaps C(<dest>) and C(<dest>.previous) in one atomic step, so the site
    always has a verified current bundle and the newer one stays at C(<dest>.previous). Fails, changing nothing, when
    there is no previous bundle or it does not verify.
  - A swap would undo itself when repeated, so V(state=rolled_back) first records C({from, to}) digests in
    C(<dest>.rollback.json); a second run finds the site already rolled back and changes nothing.
    V(state=rolled_forward) swaps back, but only from that recorded state. Assembling a new bundle
    (V(state=assembled)) ends the rollback and drops the record.
extends_documentation_fragment:
  - deploy2standalone.clearml.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be sent or assembled without writing.
  diff_mode:
    support: partial
    details:
      - V(state=rolled_back) and V(state=rolled_forward) show the current and previous bundle digests before and after.
  idempotent:
    support: full
    details:
      - V(state=rolled_back) and V(state=rolled_forward) use the record C(<dest>.rollback.json) to tell a repeated run
        from a new one.
options:
  state:
    description: What to do, see the description.
    type: str
    choices: [digests, partial, assembled, rolled_back, rolled_forward]
    required: true
  path:
    description: The blob store directory (V(state=digests) and V(state=assembled)). Created when missing.
    type: path
  src:
    description: V(state=partial) the complete bundle; V(state=assembled) the partial or complete bundle to assemble from.
    type: path
  dest:
    description:
      - V(state=partial) the partial bundle to write; V(state=assembled) the bundle directory to publish.
      - V(state=rolled_back) and V(state=rolled_forward) the site's current bundle directory (C(<dest>.previous) beside it).
    type: path
  site_digests:
    description: V(state=partial) the digests the site already holds (from V(state=digests)).
    type: list
    elements: str
    default: []
  pack_size:
    description:
      - V(state=partial) packs the blobs into tar files of about this many MiB (C(packs/pack-NNNN.tar) with
        C(packs/index.json)), so a transfer sends a few large files instead of one file per blob; a blob larger
        than this is a pack of its own. V(0) leaves the blobs loose.
      - Packing is deterministic, so a resumed transfer skips the packs that already arrived.
      - V(state=assembled) unpacks them (each member hashed against its name, only what the index lists) before
        it assembles and verifies; a missing or damaged pack fails naming it.
    type: int
    default: 0
  require_signature:
    description: V(state=assembled), V(state=rolled_back) and V(state=rolled_forward) refuse a bundle (the one that
      would become current) that is not signed by one of O(public_key).
    type: bool
    default: false
  public_key:
    description: Ed25519 public keys (paths or base64) to trust.
    type: list
    elements: str
author:
  - deploy2standalone contributors
seealso:
  - module: deploy2standalone.clearml.bundle_info
"""

EXAMPLES = r"""
- name: List what the site's store holds
  deploy2standalone.clearml.bundle_store:
    state: digests
    path: /var/lib/d2s/store
  register: store

- name: Write the partial bundle for this site on the controller
  deploy2standalone.clearml.bundle_store:
    state: partial
    src: /srv/d2s/bundles/current
    dest: "/srv/d2s/outbox/{{ inventory_hostname }}"
    site_digests: "{{ store.digests }}"
  delegate_to: localhost

- name: Assemble and verify the bundle at the site
  deploy2standalone.clearml.bundle_store:
    state: assembled
    src: /var/lib/d2s/inbox
    path: /var/lib/d2s/store
    dest: /var/lib/d2s/bundles/current

- name: Return the site to its previous bundle (a second run changes nothing)
  deploy2standalone.clearml.bundle_store:
    state: rolled_back
    dest: /var/lib/d2s/bundles/current
  register: rollback

- name: Undo the rollback
  deploy2standalone.clearml.bundle_store:
    state: rolled_forward
    dest: /var/lib/d2s/bundles/current
"""

RETURN = r"""
digests:
  description: Digests held by the store (V(state=digests)).
  returned: state == 'digests'
  type: list
  elements: str
  sample: ["069ae2fa55d87c46a2842cc5c8195deabdcaaa0307ba22c6f0dd5a1f16afd95b"]
content_digest:
  description: Content digest of the bundle written or assembled; after a rollback (or roll-forward), of the current one.
  returned: state != 'digests'
  type: str
  sample: sha256:5dd2df8155ade718c19d9904e01882ec2e13be1a73d9afbfaed5451653ee600d
blobs:
  description: Blobs written into the partial bundle, or taken from it when assembling.
  returned: state in ['partial', 'assembled']
  type: int
  sample: 3
bytes:
  description: Bytes of the blobs in the partial bundle (what crosses the wire).
  returned: state == 'partial'
  type: int
  sample: 10240
packs:
  description: Tar packs the blobs were put into (O(pack_size)); 0 when they are loose.
  returned: state == 'partial'
  type: int
  sample: 2
skipped_blobs:
  description: Blobs the site already had (not sent).
  returned: state == 'partial'
  type: int
  sample: 24
previous:
  description: Where the replaced bundle was kept.
  returned: state in ['rolled_back', 'rolled_forward'], or state == 'assembled' and a bundle was replaced
  type: str
  sample: /var/lib/d2s/bundles/current.previous
previous_digest:
  description: Content digest of the bundle at C(<dest>.previous) after the run.
  returned: state in ['rolled_back', 'rolled_forward']
  type: str
  sample: sha256:0c6b4fa6e7a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7
rolled_back:
  description: Whether the site runs its previous bundle after the run (a recorded rollback).
  returned: state in ['rolled_back', 'rolled_forward']
  type: bool
  sample: true
record:
  description: The rollback record beside O(dest).
  returned: state in ['rolled_back', 'rolled_forward']
  type: str
  sample: /var/lib/d2s/bundles/current.rollback.json
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._transfer import TransferCore


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {
                "type": "str",
                "choices": ["digests", "partial", "assembled", "rolled_back", "rolled_forward"],
                "required": True,
            },
            "path": {"type": "path"},
            "src": {"type": "path"},
            "dest": {"type": "path"},
            "site_digests": {"type": "list", "elements": "str", "default": []},
            "pack_size": {"type": "int", "default": 0},
            "require_signature": {"type": "bool", "default": False},
            "public_key": {"type": "list", "elements": "str", "no_log": False},
        },
        required_if=[
            ("state", "digests", ("path",)),
            ("state", "partial", ("src", "dest")),
            ("state", "assembled", ("src", "dest", "path")),
            ("state", "rolled_back", ("dest",)),
            ("state", "rolled_forward", ("dest",)),
            ("require_signature", True, ("public_key",)),
        ],
        supports_check_mode=True,
    )
    try:
        result = TransferCore(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except ClearmlModuleError as exc:
        module.fail_json(msg=exc.msg, exception=traceback.format_exc(), **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
