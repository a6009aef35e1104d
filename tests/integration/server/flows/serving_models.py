# SPDX-License-Identifier: GPL-3.0-or-later
"""Register two models for the serving flow: weights uploaded to the fileserver, then
InputModel.import_model (as an MLOps engineer registers models trained elsewhere).

Usage: serving_models.py OUT.json WORKDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import emit
from clearml import InputModel, StorageManager
from clearml.backend_api import Session

work = Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
files = Session.get_files_server_host()
ids = {}
for role, framework in (("onnx", "ONNX"), ("custom", "ScikitLearn")):
    path = work / f"{role}-weights.bin"
    path.write_bytes(f"{role} weights\n".encode() * 500)
    url = StorageManager.upload_file(str(path), f"{files}/D2S Server/Serving models/{path.name}")
    model = InputModel.import_model(
        weights_url=url, name=f"serving {role} model", project="D2S Server/Serving", framework=framework
    )
    ids[role] = model.id
emit({"models": ids})
