# SPDX-License-Identifier: GPL-3.0-or-later
"""Seed a ClearML server with a realistic dev deployment.

``python -m d2s_tools.seed --out seed.json`` builds, through the real ``clearml`` SDK and the real
``clearml-serving`` CLI (each run as its own subprocess), a dataset with a three-version lineage, two
training runs from a ``file://`` git repository, their models (ONNX, a multi-file package, a single
file) and a clearml-serving service with Triton and custom endpoints, a versioned endpoint with a
canary and metric logging. ``seed.json`` records every id, file hash and the expected inference output
per endpoint. See ``docs/seed.md``.
"""

from __future__ import annotations
