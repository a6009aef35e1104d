# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""deploy2standalone tools: the local ClearML-compatible server and helpers around it."""

from __future__ import annotations

__version__ = "0.1.0"
