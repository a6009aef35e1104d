# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A local ClearML-API-compatible server (REST API, fileserver, placeholder web page).

Run it with ``d2s-clearml-server --data-dir DIR`` (or ``python -m d2s_tools.server``); drive it from
tests and scripts with :mod:`d2s_tools.server.testing`.
"""

from __future__ import annotations

from .cli import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

__all__ = ["DEFAULT_ACCESS_KEY", "DEFAULT_SECRET_KEY"]
