#!/usr/bin/python
# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: serving_service
short_description: Run clearml-serving's inference service at a site against the imported serving service
version_added: 0.1.0
description:
  - Runs the clearml-serving inference container (the C(d2s/serving-inference) image built in dev from the pinned
    clearml-serving release, every package installed at build time) with host networking against the site's ClearML
    server and the site's serving service, so that a client's request gets the answer it gets in dev.
  - The site serving service id is O(serving_id), or is looked up in O(import_info) (the record C(clearml_import)
    writes) by the dev id of O(bundle) or O(dev_serving_id). The service is read from the site server first; it must
    be a clearml-serving service, and when it has C(triton) endpoints, Triton's gRPC port O(triton_grpc_address) must
    answer.
  - The image is loaded from O(bundle)'s images (or O(image_record) and O(image_store)) when the daemon lacks its ID.
    Nothing is installed when the container starts (C(CLEARML_EXTRA_PYTHON_PACKAGES) is empty).
  - O(state=started) leaves a running container with the same image ID and configuration alone; otherwise it starts
    it, or replaces it. It then waits until the service answers HTTP and every O(smoke_requests) endpoint answers 200,
    as expected when an answer is given. O(state=absent) removes the container.
  - The container's configuration includes a fingerprint of the serving service as the site server holds it (its
    C(endpoints), C(canary), C(model_monitoring) and C(metric_logging) configuration, C(General) hyperparameters and
    artifact hashes, i.e. endpoints, model ids and preprocess code). When an import (a redeploy, a rollback) changed
    it, the container is replaced, so the new configuration is served at once rather than at the service's next poll
    (O(poll_frequency) minutes).
  - The module drives the C(docker) CLI on the host it runs on; it needs no ClearML SDK there (without the SDK's HOCON
    parser, the service's configuration is outlined by a small reader of its own).
extends_documentation_fragment:
  - deploy2standalone.clearml.clearml
  - deploy2standalone.clearml.attributes
  - deploy2standalone.clearml.attributes.ACTIONGROUP_CLEARML
attributes:
  check_mode:
    support: full
    details:
      - Reads the site server and the daemon, computes C(changed) like a real run and skips the image load, the
        container calls and the readiness probes.
  diff_mode:
    support: full
    details:
      - The container's image ID and configuration (secrets masked) before and after.
  idempotent:
    support: full
options:
  state:
    description:
      - V(present) only makes the host hold the image (loaded from O(bundle) or O(image_record) when it lacks it).
      - V(started) also runs the inference service and waits until it answers; V(absent) removes its container.
    type: str
    choices: [present, started, absent]
    default: started
  serving_id:
    description: The site's serving service task id. Mutually exclusive with O(import_info).
    type: str
  import_info:
    description:
      - The C(import_info.json) that C(clearml_import) wrote on this host; the site serving id is read from its map.
      - With several serving services in it, O(bundle) or O(dev_serving_id) picks one.
    type: path
  dev_serving_id:
    description: The dev serving service id to look up in O(import_info) (by default the bundle's C(serving_id)).
    type: str
  bundle:
    description: The bundle directory on this host; the image is loaded from its images, and its C(serving_id) picks the service in O(import_info).
    type: path
  image:
    description: The inference image (a name in the bundle's images, or on this host).
    type: str
    default: d2s/serving-inference:1.3.5
  image_record:
    description: A JSON image record (the bundle manifest's C(images[]) shape) to load O(image) from, with O(image_store).
    type: path
  image_store:
    description: A blob store directory (holding C(blobs/sha256/)) with the blobs of O(image_record).
    type: path
  name:
    description: The container name.
    type: str
    default: d2s-serving-inference
  listen_address:
    description: Address the service listens on (host networking); V(0.0.0.0) for every interface.
    type: str
    default: 0.0.0.0
  port:
    description: The service's HTTP port; clients call C(http://<host>:<port>/serve/<endpoint>).
    type: int
    default: 8080
  triton_grpc_address:
    description: Triton's gRPC C(host:port) as the container reaches it (host networking).
    type: str
    default: 127.0.0.1:8001
  poll_frequency:
    description: Minutes between two reads of the serving service's configuration (C(CLEARML_SERVING_POLL_FREQ)).
    type: float
    default: 5
  workers:
    description: Uvicorn worker processes (C(CLEARML_SERVING_NUM_PROCESS)); V(1) runs one.
    type: int
    default: 1
  block_outside_traffic:
    description:
      - Point the container's C(HTTP(S)_PROXY) at a closed local port, with C(NO_PROXY) listing the ClearML and Triton
        hosts, so that nothing else is contacted (the SDK's update check fails at once). O(env) can override them.
    type: bool
    default: true
  env:
    description: Extra environment variables of the container (they win over the module's).
    type: dict
    default: {}
  restart_policy:
    description: The container's restart policy.
    type: str
    choices: ['no', on-failure, always, unless-stopped]
    default: unless-stopped
  memory:
    description: Memory limit (C(docker run --memory)), for example V(4g).
    type: str
  cpus:
    description: CPU limit (C(docker run --cpus)).
    type: float
  smoke_requests:
    description:
      - Per endpoint url (V(iris_onnx), V(iris_custom/1), a canary url), C(request) (the JSON body to POST to
        C(/serve/<url>)) and optionally C(response) (the expected answer) or C(expected_one_of) (a list of acceptable
        answers, for canary endpoints). Other keys are ignored, so the seed's C(inference) section can be given as is.
      - Every listed endpoint must answer 200 (and as expected) before the task succeeds.
    type: dict
    default: {}
  atol:
    description: Absolute tolerance when numbers of an answer are compared with the expected ones.
    type: float
    default: 0.0
  rtol:
    description: Relative tolerance when numbers of an answer are compared with the expected ones.
    type: float
    default: 0.0
  ready_timeout:
    description: Seconds to wait for the service to answer and for each smoke request.
    type: int
    default: 300
requirements:
  - the docker CLI and a daemon on the host
  - requests
author:
  - deploy2standalone contributors
seealso:
  - module: deploy2standalone.clearml.clearml_import
  - module: deploy2standalone.clearml.triton_image
"""

EXAMPLES = r"""
- name: Serve the imported deployment at the site (Triton already runs on 127.0.0.1:8001)
  deploy2standalone.clearml.serving_service:
    api_host: http://127.0.0.1:8008
    web_host: http://127.0.0.1:8080
    files_host: http://127.0.0.1:8081
    access_key: "{{ vault_site_access_key }}"
    secret_key: "{{ vault_site_secret_key }}"
    bundle: /var/lib/d2s/bundles/current
    import_info: /var/lib/d2s/import_info.json
    port: 9090
    smoke_requests:
      iris_onnx:
        request: {features: [[5.1, 3.5, 1.4, 0.2]]}
  register: serving

- name: Show where clients call the service
  ansible.builtin.debug:
    msg: "{{ serving.url }} serves {{ serving.service.endpoints | join(', ') }}"

- name: Stop the inference service
  deploy2standalone.clearml.serving_service:
    state: absent
    api_host: http://127.0.0.1:8008
    access_key: "{{ vault_site_access_key }}"
    secret_key: "{{ vault_site_secret_key }}"
"""

RETURN = r"""
serving_id:
  description: The site serving service the container serves.
  returned: state is started
  type: str
  sample: 5b0e1f0c9d2a4c1e8f3a7b6d4c2e1f0a
dev_serving_id:
  description: The dev serving service id it was looked up by in O(import_info) (null with O(serving_id)).
  returned: state is started
  type: str
  sample: dd3ba256df754373a258ed7b9e88a6c8
service:
  description:
    - The serving service as the site server holds it (C(endpoints) is null when they cannot be read).
    - C(fingerprint) is the SHA-256 of its configuration that the container's label keeps.
  returned: state is started
  type: dict
  sample: {"name": "iris serving", "status": "in_progress", "endpoints": ["iris_canary", "iris_custom/1", "iris_onnx"],
           "fingerprint": "3f2a…"}
image:
  description: The image run, and whether it was loaded (from the bundle or a record) by this run.
  returned: state is present or started
  type: dict
  sample: {"name": "d2s/serving-inference:1.3.5", "id": "sha256:cd7f…", "source": "bundle", "loaded": false}
container:
  description: The container, what was done to it (C(create), C(recreate), C(start), C(remove), C(none)) and why.
  returned: state is started or absent
  type: dict
  sample: {"name": "d2s-serving-inference", "id": "8f88…", "action": "none", "reasons": [], "image_id": "sha256:cd7f…"}
url:
  description: The base URL of the service's endpoints on this host.
  returned: state is started
  type: str
  sample: http://127.0.0.1:8080/serve/
smoke:
  description: Per smoke endpoint, the HTTP status, seconds, C(as_expected) and, for C(expected_one_of), the index matched.
  returned: state is started
  type: dict
  sample: {"iris_onnx": {"status": 200, "seconds": 0.041, "as_expected": true}}
unprobed:
  description: Endpoints of the service that got no smoke request (only HTTP readiness covers them).
  returned: state is started
  type: list
  elements: str
  sample: ["iris_custom/2"]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import (
    ClearmlModuleError,
    generate_argspec,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._serving import ServingCore


def argument_spec() -> dict:
    """The module's options: the shared ClearML connection options and its own."""
    return generate_argspec(
        state={"type": "str", "choices": ["present", "started", "absent"], "default": "started"},
        serving_id={"type": "str"},
        import_info={"type": "path"},
        dev_serving_id={"type": "str"},
        bundle={"type": "path"},
        image={"type": "str", "default": "d2s/serving-inference:1.3.5"},
        image_record={"type": "path"},
        image_store={"type": "path"},
        name={"type": "str", "default": "d2s-serving-inference"},
        listen_address={"type": "str", "default": "0.0.0.0"},  # noqa: S104 - clients reach the service
        port={"type": "int", "default": 8080},
        triton_grpc_address={"type": "str", "default": "127.0.0.1:8001"},
        poll_frequency={"type": "float", "default": 5.0},
        workers={"type": "int", "default": 1},
        block_outside_traffic={"type": "bool", "default": True},
        env={"type": "dict", "default": {}},
        restart_policy={
            "type": "str",
            "choices": ["no", "on-failure", "always", "unless-stopped"],
            "default": "unless-stopped",
        },
        memory={"type": "str"},
        cpus={"type": "float"},
        smoke_requests={"type": "dict", "default": {}},
        atol={"type": "float", "default": 0.0},
        rtol={"type": "float", "default": 0.0},
        ready_timeout={"type": "int", "default": 300},
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("serving_id", "import_info")],
        required_if=[("state", "started", ("serving_id", "import_info"), True)],
        required_by={"dev_serving_id": "import_info", "image_store": "image_record"},
        supports_check_mode=True,
    )
    try:
        result = ServingCore(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except ClearmlModuleError as exc:
        module.fail_json(msg=exc.msg, exception=traceback.format_exc(), **exc.result)
    for warning in result.pop("warnings_extra", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
