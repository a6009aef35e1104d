# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest configuration (helpers live in d2s_testlib, importable from every test directory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from d2s_testlib import REPO


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
