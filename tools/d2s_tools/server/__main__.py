# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m d2s_tools.server``"""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
