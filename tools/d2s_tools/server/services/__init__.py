# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The API services; importing this package registers every endpoint."""

from __future__ import annotations

from . import events, misc, models, projects, queues, tasks  # noqa: F401
