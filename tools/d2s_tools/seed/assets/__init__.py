# SPDX-License-Identifier: GPL-3.0-or-later
"""Files the seed ships, not modules to import here.

- ``train.py``: the demo team's training script (committed into the demo git repository);
- ``preprocess_triton.py``/``preprocess_custom.py``: clearml-serving preprocess code of the endpoints;
- ``model.py``: generic Triton python-backend model serving an ONNX file with onnxruntime.

A package (rather than a plain folder) so that the files travel in the ``d2s-tools`` wheel.
"""
