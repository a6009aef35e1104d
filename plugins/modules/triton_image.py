#!/usr/bin/python
# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: triton_image
short_description: Build the own Triton image and serve a bundle's Triton endpoints with it
version_added: 0.1.0
description:
  - Dev side (O(state=built)) builds the site's own Triton image C(FROM) O(base_image) with the legacy builder and no
    network (C(DOCKER_BUILDKIT=0 docker build --network none)), installing python-backend dependencies from
    O(wheelhouse) at build time. Same inputs give the same image and C(changed=false). With O(image_store) it saves the
    image into that blob store (C(blobs/sha256/)) and writes its record to O(image_record) for the transport.
  - Site side (O(state=present), O(state=started)) loads the image from O(image_record) and O(image_store) (or from
    the bundle's images), skipped when the daemon has the image ID, and writes the Triton model repository for the
    C(triton) endpoints of O(bundle) (names, layouts and C(config.pbtxt) as C(docs/triton.md) describes; every endpoint
    is checked before anything changes). O(state=started) runs the container with host networking in EXPLICIT
    model-control mode, loads every model through the repository API, waits until each is READY and sends one smoke
    inference per model built from the endpoint's declared shapes and data types.
  - One bad model does not stop the others; it is reported in RV(failed_models) with a warning, and fails the task
    only with O(fail_on_model_error=true). A new model version is written beside the old one and loaded without
    restarting the container; if it fails to load, the previous version's files are put back and keep serving.
  - O(state=absent) removes the container (and, with O(remove_image=true), the image). The repository is kept.
  - The module drives the C(docker) CLI on the host it runs on.
extends_documentation_fragment:
  - deploy2standalone.clearml.attributes
attributes:
  check_mode:
    support: full
    details:
      - Computes C(changed) like a real run (image IDs, repository digests, container spec, model readiness read over
        HTTP) and skips the build, load, write, container and model-load calls.
  diff_mode:
    support: full
    details:
      - Repository digests per model, and the container's image ID and configuration, before and after.
  idempotent:
    support: full
    details:
      - A model that keeps failing to load is retried at every run but is not a change.
options:
  state:
    description:
      - V(built) builds the image (and stores it with O(image_store)); V(present) loads the image and writes the
        repository; V(started) also runs Triton with every model READY; V(absent) removes the container.
    type: str
    choices: [built, present, started, absent]
    default: started
  image:
    description:
      - The image name. V(built) tags the image it builds so; the site runs it (it must then be on the host, in the
        bundle's images, or named by O(image_record)).
    type: str
    default: d2s/triton-site:latest
  base_image:
    description: The tritonserver image to build C(FROM) (V(built)); pulled when the host lacks it.
    type: str
    default: nvcr.io/nvidia/tritonserver:24.10-py3
  wheelhouse:
    description: A directory of wheels on the host; python-backend dependencies are installed from it only (V(built)).
    type: path
  python_packages:
    description: Requirements to install from O(wheelhouse) (V(built)). Unset installs every wheel of O(wheelhouse).
    type: list
    elements: str
  bake_models:
    description: Copy the model repository of O(bundle) into the image (V(built)); the site then mounts none.
    type: bool
    default: false
  build_timeout:
    description: Seconds the build (and a pull of O(base_image)) may take.
    type: int
    default: 1800
  image_store:
    description:
      - A blob store directory (holding C(blobs/sha256/)). V(built) saves the image into it; the site loads from it.
    type: path
  image_record:
    description: The JSON record of the saved image (the bundle manifest's C(images[]) shape), written by V(built).
    type: path
  bundle:
    description: The bundle directory on the host (verified by the transfer); required by V(present) and V(started).
    type: path
  endpoints:
    description: Endpoint urls to serve (shell patterns such as C(iris_*)); empty serves every C(triton) endpoint.
    type: list
    elements: str
    default: []
  python_backend_for:
    description:
      - Frameworks (V(onnx), V(pytorch)) served through Triton's python backend with O(python_model) beside the
        weights, for Tritons without the framework's backend.
    type: list
    elements: str
    default: []
  python_model:
    description: The generic python-backend C(model.py) on the host, for O(python_backend_for).
    type: path
  python_model_content:
    description:
      - The generic C(model.py) itself instead of O(python_model) (the role passes the one it ships, which runs ONNX
        files with onnxruntime).
    type: str
  instance_group:
    description: Instance groups of every model (C(kind), C(count), C(gpus)), replacing the endpoints' own.
    type: raw
  instance_groups:
    description: Instance groups per model name or endpoint url, overriding O(instance_group).
    type: dict
  model_repository:
    description: Where the site's model repository is written; mounted read-only at C(/models).
    type: path
    default: /var/lib/d2s/triton/models
  hardlink:
    description: Hard-link model files from the bundle's blobs into the repository where possible, instead of copying.
    type: bool
    default: true
  name:
    description: The container name.
    type: str
    default: d2s-triton
  listen_address:
    description: Address Triton listens on (host networking); V(0.0.0.0) for every interface.
    type: str
    default: 127.0.0.1
  http_port:
    description: Triton's HTTP port (the module checks readiness through it).
    type: int
    default: 8000
  grpc_port:
    description: Triton's GRPC port; V(0) turns GRPC off.
    type: int
    default: 8001
  metrics_port:
    description: Triton's metrics port; V(0) turns metrics off.
    type: int
    default: 8002
  gpus:
    description:
      - GPUs of the container (C(docker run --gpus)); empty runs on the CPU. V([all]), V([count=2]), or device indexes
        or UUIDs (V(["0", "1"])).
    type: list
    elements: str
    default: []
  restart_policy:
    description: The container's restart policy.
    type: str
    choices: ['no', on-failure, always, unless-stopped]
    default: unless-stopped
  memory:
    description: Memory limit (C(docker run --memory)), for example V(8g).
    type: str
  cpus:
    description: CPU limit (C(docker run --cpus)).
    type: float
  shm_size:
    description: Size of C(/dev/shm); the python backend exchanges tensors through it.
    type: str
    default: 1g
  env:
    description: Extra environment variables of the container.
    type: dict
    default: {}
  extra_args:
    description: Extra C(tritonserver) arguments, for example V(["--log-verbose=1"]).
    type: list
    elements: str
    default: []
  ready_timeout:
    description: Seconds to wait for Triton to answer, and for each model load or smoke inference.
    type: int
    default: 300
  smoke_test:
    description: Send one inference per READY model and check its outputs against the endpoint's declaration.
    type: bool
    default: true
  smoke_samples:
    description:
      - Inputs of the smoke inference per model name or endpoint url, C({input name: nested list}). Others get zeros.
    type: dict
    default: {}
  fail_on_model_error:
    description: Fail when a model does not load or fails its smoke inference (the others still serve).
    type: bool
    default: false
  remove_image:
    description: With O(state=absent), remove the image too (O(image) and the tags of O(image_record)).
    type: bool
    default: false
requirements:
  - the docker CLI and a daemon on the host
author:
  - deploy2standalone contributors
seealso:
  - module: deploy2standalone.clearml.clearml_import
  - module: deploy2standalone.clearml.bundle_info
"""

EXAMPLES = r"""
- name: Build the site's Triton image on the dev side and save it for the transport
  deploy2standalone.clearml.triton_image:
    state: built
    image: d2s/triton-site:2024-10
    base_image: nvcr.io/nvidia/tritonserver:24.10-py3
    wheelhouse: /srv/d2s/wheels/triton
    python_packages: [onnxruntime==1.19.2]
    image_store: /srv/d2s/transfer
    image_record: /srv/d2s/transfer/triton-image.json
  register: triton_built

- name: Serve the bundle's Triton endpoints at the site
  deploy2standalone.clearml.triton_image:
    state: started
    bundle: /var/lib/d2s/bundles/current
    image_record: /var/lib/d2s/transfer/triton-image.json
    image_store: /var/lib/d2s/store
    gpus: [all]
    smoke_samples:
      iris_onnx: {features: [[5.1, 3.5, 1.4, 0.2]]}
  register: triton

- name: Show the models that failed
  ansible.builtin.debug:
    msg: "{{ triton.failed_models }}"
  when: triton.failed_models | length > 0

- name: Remove the Triton container, keep the image
  deploy2standalone.clearml.triton_image:
    state: absent
"""

RETURN = r"""
image:
  description: The image (V(built) adds C(built), C(tagged), C(inputs_digest) and C(inputs); sites add C(loaded), C(source)).
  returned: always
  type: dict
  sample: {"name": "d2s/triton-site:latest", "id": "sha256:4f1c…", "loaded": false, "source": "record", "baked_models": null}
record:
  description: The image record saved with O(image_store) (name, id, repo_tags, layout, layers, members, size).
  returned: state is built and image_store is set, not in check mode
  type: dict
  sample: {"name": "d2s/triton-site:latest", "id": "sha256:4f1c…", "layout": "docker-legacy", "size": 483105792}
repository:
  description: The model repository, C(added), C(updated), C(unchanged), C(removed), C(rolled_back) model names and digests.
  returned: state is present or started
  type: dict
  sample: {"path": "/var/lib/d2s/triton/models", "added": [], "updated": ["iris_onnx"], "models": {"iris_onnx": "3f9a…"}}
endpoints:
  description: Served endpoint url to Triton model name.
  returned: state is present or started
  type: dict
  sample: {"iris_onnx": "iris_onnx", "detector/2": "detector_2"}
skipped_endpoints:
  description: Endpoints not served by Triton, with the reason.
  returned: state is present or started
  type: list
  elements: dict
  sample: [{"url": "iris_custom/1", "reason": "engine_type 'custom' is not served by Triton"}]
container:
  description: The container, what was done to it (C(create), C(recreate), C(start), C(remove), C(none)) and why.
  returned: state is started or absent
  type: dict
  sample: {"name": "d2s-triton", "id": "9c0e…", "action": "none", "differences": []}
models:
  description: Per model, its endpoint url, Triton state, failure reason, serving digest and whether this run loaded it.
  returned: state is started
  type: dict
  sample: {"iris_onnx": {"url": "iris_onnx", "state": "READY", "reason": "", "loaded": true, "rolled_back": false}}
failed_models:
  description: Models that did not load (C(stage=load)) or failed the smoke inference (C(stage=smoke)).
  returned: state is started
  type: list
  elements: dict
  sample: [{"name": "detector_2", "url": "detector/2", "stage": "load", "reason": "…unexpected end of file"}]
rolled_back:
  description: Models whose new version failed to load; the previous version is back on disk and serves.
  returned: state is started
  type: list
  elements: str
  sample: []
smoke:
  description: Per model, the smoke inference's outcome and outputs (datatype, shape, first 64 values).
  returned: state is started and smoke_test is true
  type: dict
  sample: {"iris_onnx": {"ok": true, "sample": true, "outputs": {"probabilities": {"datatype": "FP32", "shape": [1, 3]}}}}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_serve import TritonImageCore

ARGUMENT_SPEC = {
    "state": {"type": "str", "choices": ["built", "present", "started", "absent"], "default": "started"},
    "image": {"type": "str", "default": "d2s/triton-site:latest"},
    "base_image": {"type": "str", "default": "nvcr.io/nvidia/tritonserver:24.10-py3"},
    "wheelhouse": {"type": "path"},
    "python_packages": {"type": "list", "elements": "str"},
    "bake_models": {"type": "bool", "default": False},
    "build_timeout": {"type": "int", "default": 1800},
    "image_store": {"type": "path"},
    "image_record": {"type": "path"},
    "bundle": {"type": "path"},
    "endpoints": {"type": "list", "elements": "str", "default": []},
    "python_backend_for": {"type": "list", "elements": "str", "default": []},
    "python_model": {"type": "path"},
    "python_model_content": {"type": "str"},
    "instance_group": {"type": "raw"},
    "instance_groups": {"type": "dict"},
    "model_repository": {"type": "path", "default": "/var/lib/d2s/triton/models"},
    "hardlink": {"type": "bool", "default": True},
    "name": {"type": "str", "default": "d2s-triton"},
    "listen_address": {"type": "str", "default": "127.0.0.1"},
    "http_port": {"type": "int", "default": 8000},
    "grpc_port": {"type": "int", "default": 8001},
    "metrics_port": {"type": "int", "default": 8002},
    "gpus": {"type": "list", "elements": "str", "default": []},
    "restart_policy": {
        "type": "str",
        "choices": ["no", "on-failure", "always", "unless-stopped"],
        "default": "unless-stopped",
    },
    "memory": {"type": "str"},
    "cpus": {"type": "float"},
    "shm_size": {"type": "str", "default": "1g"},
    "env": {"type": "dict", "default": {}},
    "extra_args": {"type": "list", "elements": "str", "default": []},
    "ready_timeout": {"type": "int", "default": 300},
    "smoke_test": {"type": "bool", "default": True},
    "smoke_samples": {"type": "dict", "default": {}},
    "fail_on_model_error": {"type": "bool", "default": False},
    "remove_image": {"type": "bool", "default": False},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[
            ("state", "present", ("bundle",)),
            ("state", "started", ("bundle",)),
            ("bake_models", True, ("bundle",)),
        ],
        required_together=[("image_store", "image_record")],
        mutually_exclusive=[("python_model", "python_model_content")],
        required_by={"python_packages": ("wheelhouse",)},
        supports_check_mode=True,
    )
    try:
        result = TritonImageCore(module.params, check_mode=module.check_mode, diff=module._diff).run()
    except ClearmlModuleError as exc:
        module.fail_json(msg=exc.msg, exception=traceback.format_exc(), **exc.result)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
