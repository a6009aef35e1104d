#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Entry point of d2s/triton-cpu, shaped like the NGC tritonserver image's: run the given command
# (usually `tritonserver --model-repository=...`), or a shell without one.
set -e
if (($# == 0)); then
    exec /bin/bash
fi
exec "$@"
