# SPDX-License-Identifier: GPL-3.0-or-later
"""clearml-serving code of the molecule scenario's ``molecule_sum`` endpoint (engine ``custom``).

``load()`` reads the served model, a JSON file ``{"scale": s}``; a request ``{"values": [...]}`` is
answered ``{"sum": s * sum(values), "count": n}``. Deterministic, numpy-free, Python 3.8 compatible.
"""

import json


class Preprocess:
    def __init__(self):
        self.model_endpoint = None
        self.scale = None

    def load(self, local_file_name):
        with open(local_file_name, encoding="utf-8") as fh:
            self.scale = float(json.load(fh)["scale"])
        return self.scale

    def preprocess(self, body, state, collect_custom_statistics_fn=None):
        return [float(v) for v in body["values"]]

    def process(self, data, state, collect_custom_statistics_fn=None):
        return {"sum": self.scale * sum(data), "count": len(data)}

    def postprocess(self, data, state, collect_custom_statistics_fn=None):
        return data
