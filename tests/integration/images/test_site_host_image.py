# SPDX-License-Identifier: GPL-3.0-or-later
"""d2s/site-host run with the site-host recipe: offline, with its own dockerd that runs containers.

The recipe (capabilities, seccomp/apparmor unconfined, host cgroupns, /sys/fs/cgroup, a volume on
/var/lib/docker, no network) is the one .config/molecule/config.yml uses; see docs/images.md.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

SITE_HOST_IMAGE = os.environ.get("D2S_SITE_HOST_IMAGE", "d2s/site-host:latest")
BASE_IMAGE = os.environ.get("D2S_BASE_IMAGE", "d2s/base:bookworm")
CAPABILITIES = (
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "MKNOD",
    "SETFCAP",
    "NET_RAW",
    "SYS_CHROOT",
    "DAC_READ_SEARCH",
    "IPC_LOCK",
)

pytestmark = pytest.mark.docker


def docker(
    *args: str, input_bytes: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], input=input_bytes, capture_output=True, check=False, timeout=300)
    result = subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({proc.returncode}): {result.stderr}{result.stdout}"
        )
    return result


def require_image(ref: str) -> None:
    if docker("image", "inspect", ref, check=False).returncode != 0:
        pytest.fail(f"image {ref} is missing: run `bash scripts/build_images.sh` first")


def start_site_host(*env: str) -> str:
    """Start a site host with the recipe; return its container id."""
    require_image(SITE_HOST_IMAGE)
    args = ["run", "-d", "--network", "none", "--cgroupns", "host"]
    args += [f"--cap-add={cap}" for cap in CAPABILITIES]
    args += ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"]
    args += ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--label", "d2s.test=site-host-image"]
    for item in env:
        args += ["-e", item]
    return docker(*args, SITE_HOST_IMAGE).stdout.strip()


def remove(cid: str) -> None:
    # -v: the anonymous /var/lib/docker volume goes with the container.
    docker("rm", "-f", "-v", cid, check=False)


def site_exec(cid: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return docker("exec", cid, *cmd, check=check)


def wait_dockerd(cid: str) -> str:
    proc = site_exec(cid, "d2s-dockerd-wait", "120", check=False)
    if proc.returncode != 0:
        log = docker("logs", cid, check=False)
        pytest.fail(f"site host dockerd never answered: {proc.stderr}\n{log.stdout}{log.stderr}")
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def site_host() -> Iterator[str]:
    cid = start_site_host()
    try:
        # Every probe runs against a started daemon (a bridge it made would show up as an interface).
        wait_dockerd(cid)
        yield cid
    finally:
        remove(cid)


def test_site_host_has_no_network_but_loopback(site_host: str) -> None:
    interfaces = site_exec(site_host, "ls", "/sys/class/net").stdout.split()
    assert interfaces == ["lo"]
    assert site_exec(site_host, "ip", "-4", "route", "show").stdout.strip() == ""
    assert site_exec(site_host, "ip", "-6", "route", "show").stdout.strip() in (
        "",
        "::1 dev lo proto kernel metric 256 pref medium",
    )


def test_site_host_runs_its_own_dockerd_on_overlay2(site_host: str) -> None:
    assert wait_dockerd(site_host) == "overlay2"
    info = site_exec(
        site_host, "docker", "info", "--format", "{{.Driver}} {{.Containers}} {{.Images}}"
    ).stdout.split()
    # A fresh daemon of its own: the outer host's images and containers are not visible here.
    assert info == ["overlay2", "0", "0"]
    version = site_exec(site_host, "docker", "version", "--format", "{{.Server.Version}}").stdout
    assert version.startswith("20.10."), version
    # What Ansible needs on a managed site host: python3 and, for community.docker, requests.
    site_exec(site_host, "python3", "-c", "import requests, venv, ensurepip")


def test_site_host_loads_and_runs_images_offline(site_host: str) -> None:
    wait_dockerd(site_host)
    require_image(BASE_IMAGE)
    saved = subprocess.run(
        ["docker", "save", BASE_IMAGE], capture_output=True, check=True, timeout=300
    ).stdout
    loaded = docker("exec", "-i", site_host, "docker", "load", input_bytes=saved)
    assert BASE_IMAGE in loaded.stdout
    # Triton will run like this inside a site host: host networking = the site host's loopback only.
    inner = site_exec(
        site_host,
        "docker",
        "run",
        "--rm",
        "--network",
        "host",
        BASE_IMAGE,
        "python3",
        "-c",
        "import os; print(' '.join(sorted(os.listdir('/sys/class/net'))))",
    )
    assert inner.stdout.strip() == "lo"
    none = site_exec(
        site_host, "docker", "run", "--rm", "--network", "none", BASE_IMAGE, "cat", "/etc/debian_version"
    )
    assert none.stdout.strip().startswith("12.")


def test_site_host_falls_back_to_the_next_storage_driver() -> None:
    # A driver that cannot start (here: one that does not exist) makes the entry point try the next.
    cid = start_site_host("D2S_DOCKERD_STORAGE_DRIVERS=no-such-driver vfs", "D2S_DOCKERD_TIMEOUT=30")
    try:
        assert wait_dockerd(cid) == "vfs"
        assert site_exec(cid, "docker", "info", "--format", "{{.Driver}}").stdout.strip() == "vfs"
        log = site_exec(cid, "cat", "/var/log/dockerd.log").stdout
        assert "storage driver no-such-driver failed; falling back to vfs" in log
    finally:
        remove(cid)


def test_site_host_reports_when_no_driver_works() -> None:
    cid = start_site_host("D2S_DOCKERD_STORAGE_DRIVERS=no-such-driver", "D2S_DOCKERD_TIMEOUT=30")
    try:
        proc = site_exec(cid, "d2s-dockerd-wait", "60", check=False)
        assert proc.returncode == 1
        assert "no storage driver worked (tried: no-such-driver)" in proc.stderr
        # The container itself stays up for inspection; only the daemon is missing.
        assert docker("inspect", "--format", "{{.State.Running}}", cid).stdout.strip() == "true"
    finally:
        remove(cid)
