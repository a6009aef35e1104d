# SPDX-License-Identifier: GPL-3.0-or-later
"""bundle_transfer installs the bundle's wheelhouse into a Python environment on an offline site host.

The site host is the d2s/site-host image run with ``--network none`` (only ``lo``), reached through the
docker connection; the bundle holds real wheels: small pure-Python wheels written by the test, one
requiring another (resolved from the wheelhouse only), and Debian's pip wheel (pip runs from it). Nothing can reach an index: no network, and pip runs with ``--no-index``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from d2s_testlib import REPO, VENV_BIN, docker_available, project_env

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle

IMAGE = "d2s/site-host:latest"
PIP_WHEELS = sorted(Path("/usr/share/python-wheels").glob("pip-*.whl"))
ENV = "/opt/d2s/venv"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.skipif(not docker_available(), reason="needs a docker daemon and the d2s/site-host image"),
]


def tiny_wheel(out: Path, name: str, version: str, requires: list[str]) -> Path:
    """A pure-Python wheel written by hand (a zip with METADATA, WHEEL and RECORD), importable as ``name``."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires)
        ).encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: d2s-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return wheel


def make_bundle(tmp: Path, wheels: list[Path]) -> Path:
    dest = tmp / "bundle"
    with bundle.BundleWriter(dest, tool_version="0.1.0", api_host="http://127.0.0.1:8008") as writer:
        entries = []
        for wheel in wheels:
            name, version = wheel.name.split("-")[:2]
            blob = writer.add_file(wheel, kind="wheel", media_type="application/zip")
            entries.append(
                {
                    "name": name.replace("_", "-").lower(),
                    "version": version,
                    "filename": wheel.name,
                    "blob": blob,
                    "purpose": "site",
                }
            )
        writer.manifest["wheels"] = entries
        writer.finalize(volatile=bundle.make_volatile())
    return dest


@pytest.fixture
def site_host() -> Iterator[str]:
    name = f"d2s-wheelhouse-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--network", "none", IMAGE], check=True, capture_output=True
    )
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def converge(
    tmp: Path, host: str, src: Path, *extra: str, packages: list[str] | None = None
) -> tuple[int, str]:
    play = [
        {
            "name": "Transfer the bundle and install its wheelhouse",
            "hosts": "site",
            "gather_facts": False,
            "roles": [{"role": "deploy2standalone.clearml.bundle_transfer"}],
            "vars": {
                "bundle_transfer_src": str(src),
                "bundle_transfer_outbox": str(tmp / "outbox"),
                "bundle_transfer_check_docker": False,
                "bundle_transfer_min_free_mb": 1,
                "bundle_transfer_python": "/usr/bin/python3",
                "bundle_transfer_python_env": ENV,
                "bundle_transfer_python_packages": packages or [],
            },
        },
        {
            "name": "Use the environment for a site-side module",
            "hosts": "site",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Verify the bundle with the environment's Python",
                    "deploy2standalone.clearml.bundle_info": {"path": "/var/lib/d2s/bundles/current"},
                    "vars": {"ansible_python_interpreter": f"{ENV}/bin/python"},
                    "register": "info",
                    "when": "not ansible_check_mode",
                },
                {
                    "name": "Show which Python ran it",
                    "ansible.builtin.command": {
                        "argv": [
                            f"{ENV}/bin/python",
                            "-c",
                            "import sys, d2s_probe_a; print(sys.prefix, d2s_probe_a.VERSION)",
                        ]
                    },
                    "changed_when": False,
                    "register": "probe",
                    "when": "not ansible_check_mode",
                },
                {
                    "name": "Report the probe",
                    "ansible.builtin.debug": {"msg": "probe: {{ probe.stdout }}"},
                    "when": "not ansible_check_mode",
                },
            ],
        },
    ]
    pb = tmp / f"play-{uuid.uuid4().hex[:6]}.yml"
    pb.write_text(json.dumps(play))
    inv = tmp / "inventory.json"
    inv.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": str(VENV_BIN / "python"),
                        }
                    },
                    "children": {
                        "site": {
                            "hosts": {
                                host: {
                                    "ansible_connection": "community.docker.docker",
                                    "ansible_python_interpreter": "/usr/bin/python3",
                                }
                            }
                        }
                    },
                }
            }
        )
    )
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), str(pb), *extra],
        cwd=REPO,
        env=project_env(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks"),
        capture_output=True,
        text=True,
        check=False,
    )
    (tmp / f"{pb.stem}.log").write_text(proc.stdout + proc.stderr)  # kept for a failing run's reader
    return proc.returncode, proc.stdout + proc.stderr


def recap_changed(out: str, host: str) -> int:
    line = next(ln for ln in out.splitlines() if ln.startswith(host) and "changed=" in ln)
    return int(line.split("changed=")[1].split()[0])


def docker_exec(host: str, *argv: str) -> str:
    return subprocess.run(["docker", "exec", host, *argv], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(not PIP_WHEELS, reason="needs Debian's pip wheel (python3-pip: /usr/share/python-wheels)")
def test_wheelhouse_installs_offline_and_idempotently(site_host, tmp_path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tiny_wheel(wheels, "d2s_probe_b", "1.0", [])
    tiny_wheel(wheels, "d2s_probe_a", "2.0", ["d2s-probe-b==1.0"])
    tiny_wheel(wheels, "d2s_probe_c", "3.0", [])  # in the bundle, not asked for: not installed
    shutil.copy(PIP_WHEELS[-1], wheels)
    src = make_bundle(tmp_path, sorted(wheels.glob("*.whl")))

    # The site host has no network at all: only the loopback interface.
    assert docker_exec(site_host, "ls", "/sys/class/net").split() == ["lo"]

    rc, out = converge(tmp_path, site_host, src, "--check", packages=["d2s-probe-a", "D2S.Probe_C"])
    assert rc == 0, out[-5000:]
    assert "would install d2s_probe_a-2.0-py3-none-any.whl" in out, out[-5000:]
    assert docker_exec(site_host, "sh", "-c", f"test -e {ENV} && echo yes || echo no").strip() == "no"

    rc, out = converge(tmp_path, site_host, src, packages=["d2s-probe-a", "D2S.Probe_C"])
    assert rc == 0, out[-5000:]
    assert f"probe: {ENV} 2.0" in out  # the module and the probe ran with the environment's Python
    installed = json.loads(
        docker_exec(
            site_host,
            f"{ENV}/bin/python",
            "-c",
            "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        )
    )
    # What was asked for, and the dependency pip resolved from the wheelhouse; pip itself only ran from its wheel.
    assert installed.keys() == {"d2s_probe_a", "d2s_probe_b", "d2s_probe_c"}, installed
    assert installed["d2s_probe_b"] == "1.0"

    rc, out = converge(tmp_path, site_host, src, packages=["d2s-probe-a", "D2S.Probe_C"])
    assert rc == 0, out[-5000:]
    assert recap_changed(out, site_host) == 0, out[-5000:]
    assert "has d2s-probe-a==2.0, d2s-probe-c==3.0 from the bundle's wheelhouse" in out

    # A requirement the bundle does not carry fails before anything is installed, naming it.
    rc, out = converge(tmp_path, site_host, src, packages=["numpy"])
    assert rc != 0
    assert "The bundle holds no wheel for ['numpy']" in out, out[-3000:]
