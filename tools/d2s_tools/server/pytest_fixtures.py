# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest fixtures around the local server. Enable them in a conftest.py with

    pytest_plugins = ["d2s_tools.server.pytest_fixtures"]

- ``clearml_server_factory`` (session): ``factory(name="dev", **start_server_options) -> ServerHandle``;
  every instance it started is stopped at the end of the session.
- ``clearml_server`` (module): one running instance per test module.
- ``clearml_env`` (function): ``clearml_env(name="sdk") -> dict``: a complete environment for an SDK
  subprocess against ``clearml_server``, with its own HOME/cache under the test's tmp_path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .testing import ServerHandle, start_server


@pytest.fixture(scope="session")
def clearml_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerHandle]]:
    started: list[ServerHandle] = []

    def factory(name: str = "server", **options: Any) -> ServerHandle:
        data_dir = options.pop("data_dir", None) or tmp_path_factory.mktemp(f"clearml-{name}")
        handle = start_server(data_dir, **options)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture(scope="module")
def clearml_server(clearml_server_factory: Callable[..., ServerHandle]) -> ServerHandle:
    return clearml_server_factory("module")


@pytest.fixture
def clearml_env(clearml_server: ServerHandle, tmp_path: Path) -> Callable[..., dict[str, str]]:
    def make(name: str = "sdk", **extra: str) -> dict[str, str]:
        return clearml_server.flow_env(tmp_path / f"home-{name}", extra=extra)

    return make
