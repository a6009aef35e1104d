# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared integration fixtures: a local ClearML-compatible server seeded with the demo deployment.

The server is the project's own (tools/d2s_tools/server), started through its command line as users
start it; the seed runs the real clearml SDK and clearml-serving CLI against it. Seeding takes about a
minute, so one seeded dev server serves every test of a session that only reads from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from d2s_servers import LocalServer, run_seed, start_local_server


@pytest.fixture(scope="session")
def seeded_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The dev server with the seeded demo deployment (read-only for the tests that use it).

    For quick iterations, ``D2S_TEST_DEV=<ready.json>:<seed.json>`` reuses a server you started and
    seeded by hand (it is left running).
    """
    reuse = os.environ.get("D2S_TEST_DEV")
    if reuse:
        ready, seed = reuse.split(":", 1)
        server = LocalServer(
            data_dir=Path(ready).parent, proc=None, urls=json.loads(Path(ready).read_text()), log=Path(ready)
        )  # type: ignore[arg-type]
        server.seed = json.loads(Path(seed).read_text())
        yield server
        return
    base = tmp_path_factory.mktemp("dev")
    server = start_local_server(base / "server")
    try:
        server.seed = run_seed(server, base)
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LocalServer]:
    """An empty local server for one test (a site, or a dev the test changes)."""
    server = start_local_server(tmp_path / "server")
    try:
        yield server
    finally:
        server.stop()
