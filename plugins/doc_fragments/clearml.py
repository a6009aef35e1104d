# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation of the shared ClearML connection options (twin of ``_common.CLEARML_COMMON_ARGS``)."""

from __future__ import annotations

# The suboptions of every storage_credentials option (storage_credentials, and dataset_sync's source_ and
# dest_ twins): written once, appended to each.
_S3_SUBOPTIONS = r"""
      bucket:
        description: Bucket name.
        type: str
        required: true
      host:
        description: C(host:port) of a self-hosted S3-compatible endpoint; empty for AWS.
        type: str
        default: ""
      key:
        description: Access key id.
        type: str
        required: true
      secret:
        description: Secret access key. Keep it in ansible-vault.
        type: str
        required: true
      region:
        description: Region of the bucket.
        type: str
        default: ""
      secure:
        description: Use HTTPS to reach the endpoint.
        type: bool
        default: true
      verify:
        description: Verify the endpoint's TLS certificate.
        type: bool
        default: true
"""


class ModuleDocFragment:
    DOCUMENTATION = (
        r"""
options:
  api_host:
    description:
      - URL of the ClearML API server, for example V(https://api.clearml.example.com) or V(http://127.0.0.1:8008).
      - If not set, the value of the E(CLEARML_API_HOST) environment variable is used.
    type: str
    required: true
  web_host:
    description:
      - URL of the ClearML web application.
      - The ClearML SDK requires it when O(api_host) does not use port 8008 and its host name does not start with C(api.).
      - If not set, the value of the E(CLEARML_WEB_HOST) environment variable is used.
    type: str
  files_host:
    description:
      - URL of the ClearML fileserver, where model weights, artifacts and dataset chunks are stored.
      - If not set, the value of the E(CLEARML_FILES_HOST) environment variable is used.
    type: str
  access_key:
    description:
      - ClearML API access key.
      - If not set, the value of the E(CLEARML_API_ACCESS_KEY) environment variable is used.
    type: str
    required: true
  secret_key:
    description:
      - ClearML API secret key. Keep it in ansible-vault.
      - If not set, the value of the E(CLEARML_API_SECRET_KEY) environment variable is used.
    type: str
    required: true
  validate_certs:
    description:
      - Whether to verify the TLS certificates of O(api_host), O(web_host) and O(files_host).
      - If not set, the value of the E(CLEARML_API_HOST_VERIFY_CERT) environment variable is used.
    type: bool
    default: true
  ca_path:
    description:
      - Path to a PEM file with the CA certificates that sign the server certificates.
      - Only used when O(validate_certs=true).
    type: path
  storage_credentials:
    description:
      - Credentials for S3-compatible object storage that holds (or, for an import, will hold) model weights,
        artifacts and dataset chunks, one entry per bucket, used through the ClearML SDK's C(StorageManager).
      - For a self-hosted endpoint (MinIO, Ceph, ...) set O(storage_credentials[].host) to C(host:port); its URLs
        then read C(s3://host:port/bucket/key), as ClearML writes them.
    type: list
    elements: dict
    default: []
    suboptions:
"""
        + _S3_SUBOPTIONS
    )

    # Two servers at once (dataset_sync): the same options prefixed with source_ and dest_, no env fallback.
    SOURCE_DEST = (
        r"""
options:
  source_storage_credentials:
    description:
      - Credentials for the S3-compatible buckets that hold the source server's model weights, artifacts or dataset
        chunks (one entry per bucket), as O(deploy2standalone.clearml.clearml_export#module:storage_credentials) of
        the export.
    type: list
    elements: dict
    default: []
    suboptions:
"""
        + _S3_SUBOPTIONS
        + r"""  dest_storage_credentials:
    description:
      - Credentials for the S3-compatible buckets of the destination server (one entry per bucket).
    type: list
    elements: dict
    default: []
    suboptions:
"""
        + _S3_SUBOPTIONS
        + r"""notes:
  - The C(source_*) and C(dest_*) options have the meaning of the shared ClearML connection options
    (O(source_api_host) is the source server's API URL, and so on); they read no environment variables,
    since one process cannot hold two sets of E(CLEARML_*) variables.
"""
    )
