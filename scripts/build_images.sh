#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Build the local images d2s/base:bookworm, d2s/site-host:latest and d2s/triton-cpu:latest, each
# cached by the hash of its inputs: a second run rebuilds nothing. See docs/images.md.
#
# Usage: bash scripts/build_images.sh [-v] [--force IMAGE] [IMAGE...]
# Needs: a docker daemon that answers, debootstrap (apt-get install debootstrap), root or sudo -n for
# debootstrap, the project venv with nvidia-pytriton (.venv, or $D2S_VENV). Cache: $D2S_CACHE_DIR or
# ~/.cache/d2s (rootfs tarball, wheelhouse, build logs).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${D2S_VENV:-$repo/.venv}

die() {
    echo "build_images: ERROR: $*" >&2
    exit 1
}

command -v docker >/dev/null || die "the docker CLI is missing (apt-get install docker.io)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "no docker daemon answers on ${DOCKER_HOST:-/var/run/docker.sock}; start dockerd first (scripts/setup.sh does)"
command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]] ||
    die "debootstrap is missing (apt-get install debootstrap)"
if [[ $(id -u) -ne 0 ]] && ! sudo -n true 2>/dev/null; then
    die "debootstrap needs root: run as root or with passwordless sudo"
fi
[[ -x $venv/bin/python ]] || die "no venv at $venv (set D2S_VENV or create it first)"

export PATH=$PATH:/usr/sbin:/sbin
start=$SECONDS
if ! "$venv/bin/python" "$repo/scripts/images_build.py" --venv "$venv" "$@"; then
    die "image build failed after $((SECONDS - start))s (logs: ${D2S_CACHE_DIR:-$HOME/.cache/d2s}/logs/)"
fi
if [[ $# -eq 0 ]]; then
    # The clearml-serving inference image (issue #8), built FROM d2s/base like the others, cached by inputs.
    "$venv/bin/python" "$repo/images/serving-inference/build.py" --venv "$venv" ||
        die "serving-inference image build failed (log: ${D2S_CACHE_DIR:-$HOME/.cache/d2s}/logs/serving-inference.log)"
fi
echo "build_images: done in $((SECONDS - start))s" >&2
