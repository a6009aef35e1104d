#!/usr/bin/python
# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: bundle_info
short_description: Verify a deploy2standalone bundle and describe what it holds
version_added: 0.1.0
description:
  - Verifies a bundle written by M(deploy2standalone.clearml.clearml_export), as a directory or as one archive
    (C(.tar) or C(.tar.zst)), on the host the module runs on, and returns a readable listing of its content.
  - Verification checks the manifest against the format v1 schema, the checksum list C(checksums.sha256) against every
    file (a missing, extra or mismatched file fails and is named), and the Ed25519 signature C(manifest.sig) when the
    bundle has one. An archive is read as a stream and never extracted.
  - With O(store), a partial bundle (complete manifest, only the blobs a site lacked) is verified as the whole it
    assembles to, taking the other blobs from the site's blob store.
  - Nothing is ever written; the bundle, the archive and the store are only read.
  - The format is described in C(docs/bundle-format.md) of the collection.
extends_documentation_fragment:
  - deploy2standalone.clearml.attributes
  - deploy2standalone.clearml.attributes.info_module
options:
  path:
    description:
      - Path of the bundle directory, or of a bundle archive made by the collection (tar, optionally zstd-compressed).
    type: path
    required: true
  require_signature:
    description:
      - Refuse a bundle that is not signed, or not signed by the O(public_key) key.
      - A signature that does not verify is always refused, whether or not it is required.
    type: bool
    default: false
  public_key:
    description:
      - The Ed25519 public key trusted to sign bundles, required when O(require_signature=true).
      - Either the key itself (one OpenSSH line C(ssh-ed25519 AAAA...), a PEM C(PUBLIC KEY) block, or the base64 of
        the 32 key bytes) or the path of a file holding it on the host the module runs on.
      - Without it, a signed bundle is checked against the key it names and reported as not trusted.
    type: str
  store:
    description:
      - Path of a site blob store (the directory holding C(blobs/sha256/)). Blobs missing from the bundle are taken
        from it and verified there.
    type: path
requirements:
  - cryptography (to check signatures; ansible-core already requires it)
  - zstandard (only to read C(.tar.zst) archives)
seealso:
  - module: deploy2standalone.clearml.clearml_export
author:
  - deploy2standalone contributors
"""

EXAMPLES = r"""
- name: Verify the bundle carried in on a disk and show what it deploys
  deploy2standalone.clearml.bundle_info:
    path: /media/transfer/deployment-2026-03.tar.zst
  register: bundle

- name: Show the endpoints and the content digest
  ansible.builtin.debug:
    msg: "{{ bundle.bundle.content_digest }} serves {{ bundle.bundle.endpoints | map(attribute='url') | list }}"

- name: Refuse anything not signed by the release key
  deploy2standalone.clearml.bundle_info:
    path: /srv/d2s/bundles/current
    require_signature: true
    public_key: "{{ lookup('ansible.builtin.file', 'files/release-signing.pub') }}"

- name: Verify a partial bundle against the site's blob store
  deploy2standalone.clearml.bundle_info:
    path: /srv/d2s/incoming/partial
    store: /srv/d2s/store
  register: partial

- name: Fail when the bundle is larger than the site's budget
  ansible.builtin.assert:
    that: partial.bundle.total_bytes < 50 * 1024 * 1024 * 1024
    fail_msg: "bundle needs {{ partial.bundle.total_bytes | human_readable }}"
"""

RETURN = r"""
bundle:
  description: What the verified bundle holds.
  returned: success
  type: dict
  contains:
    path:
      description: The path that was verified.
      type: str
      sample: /srv/d2s/bundles/current
    type:
      description: V(directory) or V(archive).
      type: str
      sample: directory
    format_version:
      description: Manifest format version (C(MAJOR.MINOR)).
      type: str
      sample: "1.0"
    content_digest:
      description: C(sha256:) of the canonical manifest without its volatile fields; equal content, equal digest.
      type: str
      sample: sha256:f5a51f53cd8512c97cc10d3d5cdd7d466daf27fc01122cde030752ac6a7bd5ac
    exporter:
      description: Who exported the bundle, where and when (the volatile fields).
      type: dict
      sample: {developer: Kai Yong, user: kai, host: dev-ml-01, exported_on: "2026-03-02T10:11:12+00:00"}
    tool:
      description: The collection that wrote the bundle.
      type: dict
      sample: {name: deploy2standalone.clearml, version: 0.1.0}
    source:
      description: The dev ClearML server the content came from.
      type: dict
      sample: {api_host: "https://api.clearml.dev.example", api_version: "2.23", server_version: "2.0.0",
               web_host: null, files_host: null}
    serving_id:
      description: Id of the dev clearml-serving service, if the bundle carries one.
      type: str
      sample: 961e38b5146c0b07d078f53dec9b699a
    serving:
      description: The serving service (id, name, project), or null.
      type: dict
      sample: {id: 961e38b5146c0b07d078f53dec9b699a, name: Serving Service, project: DevOps}
    endpoints:
      description: Served endpoints and the model each serves.
      type: list
      elements: dict
      sample: [{url: mnist, engine_type: triton, serving_url: mnist, version: "", model_id: 20f35e630daf44dbfa4c3f68f5399d8c,
                model_name: mnist, preprocess_artifact: py_code_mnist}]
    models:
      description: Models with framework, files and sizes.
      type: list
      elements: dict
      sample: [{id: 20f35e630daf44dbfa4c3f68f5399d8c, name: mnist, project: mnist, framework: ONNX, ready: true,
                files: [{path: model.onnx, digest: 40b74a9d60277fb850a0c118864db34cef622708b556a892608e954c1feb977a,
                         size: 104857600}], bytes: 104857600}]
    tasks:
      description: Training tasks, their output models and the datasets they used.
      type: list
      elements: dict
      sample: [{id: 478f3a4c51824ad23cb50c1c60670c0f, name: train mnist, project: mnist, type: training,
                status: completed, models: [{name: model, model: 20f35e630daf44dbfa4c3f68f5399d8c}],
                datasets: [96750b299a613ff22da112364706897a], artifacts: 2, events: true, record: true}]
    datasets:
      description: Dataset versions with their parents (the lineage), file counts and sizes.
      type: list
      elements: dict
      sample: [{id: 96750b299a613ff22da112364706897a, name: digits, project: mnist, version: 1.0.1,
                parents: [6232a6e3e2c95a513adac27d85339aa4], files: 0, bytes: 0}]
    code:
      description: Source code carried for tasks (git bundle, uncommitted diff).
      type: list
      elements: dict
      sample: [{role: training, task: 478f3a4c51824ad23cb50c1c60670c0f, repository: "https://git.example.com/ml/mnist.git",
                branch: main, commit: 0123abcd, git_bundle: true, diff: true, files: 0}]
    images:
      description: Docker images (name, image id, layout of the saved archive, size).
      type: list
      elements: dict
      sample: [{name: "d2s/triton-cpu:2.51", id: "sha256:4c0a...", repo_tags: ["d2s/triton-cpu:2.51"], role: triton,
                layout: docker-legacy, members: 3, bytes: 7003300}]
    wheels:
      description: Python wheels for offline site hosts.
      type: list
      elements: dict
      sample: [{name: clearml, version: 2.1.12, filename: clearml-2.1.12-py2.py3-none-any.whl, bytes: 1200000}]
    redactions:
      description: Secrets removed at export, where and by which rule (never the value).
      type: list
      elements: dict
      sample: [{object_kind: task, object_id: 478f3a4c51824ad23cb50c1c60670c0f, path: "container.arguments[3]",
                rule: secret-name}]
    signature:
      description: >-
        Signature state: C(signed), C(verified) (the signature checks out), C(trusted) (made by O(public_key)) and the
        signer's C(fingerprint) as C(ssh-keygen -lf) prints it.
      type: dict
      sample: {signed: true, verified: true, trusted: true, fingerprint: "SHA256:3q2+7w0vG5d1YyB4qX8h7xW1a9m3d0t2c5e8f1a4b6c"}
    blob_count:
      description: Number of blobs.
      type: int
      sample: 23
    total_bytes:
      description: Total size of the blobs.
      type: int
      sample: 113516370
    bytes_by_kind:
      description: Total size of the blobs per kind (model, dataset, image, task-record, ...).
      type: dict
      sample: {model: 104870900, image: 7003300, wheel: 1200000}
    files_verified:
      description: Number of files whose checksum was verified (blobs taken from O(store) included).
      type: int
      sample: 26
    from_store:
      description: Number of blobs taken from O(store).
      type: int
      sample: 0
    partial:
      description: True when some blobs came from O(store).
      type: bool
      sample: false
    warnings:
      description: Non-fatal findings (newer minor format version, signature without a trusted key, ...).
      type: list
      elements: str
      sample: []
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle import (
    BundleError,
    describe_bundle,
)

ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "require_signature": {"type": "bool", "default": False},
    "public_key": {"type": "str", "no_log": False},
    "store": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("require_signature", True, ("public_key",))],
        supports_check_mode=True,
    )
    p = module.params
    try:
        listing = describe_bundle(
            p["path"], require_signature=p["require_signature"], public_key=p["public_key"], store=p["store"]
        )
    except BundleError as exc:
        module.fail_json(msg=exc.msg, exception=traceback.format_exc(), **exc.result)
    for warning in listing["warnings"]:
        module.warn(warning)
    module.exit_json(changed=False, bundle=listing)


if __name__ == "__main__":
    main()
