#!/usr/bin/env bash
# One-command setup of a development/CI machine (Debian 12, Python 3.11), idempotent:
#   1. .venv with the pinned Python packages (constraints.txt) and the project's tools package;
#   2. a docker daemon that answers (Debian's docker.io, dockerd started when none answers);
#   3. the local images (base, site host, Triton CPU), cached by their inputs.
# A second run takes seconds. Usage: bash scripts/setup.sh [--no-images]
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }
build_images=1
[ "${1:-}" = "--no-images" ] && build_images=0

# -- system packages ---------------------------------------------------------------------------
need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
command -v git >/dev/null 2>&1 || need_apt+=(git)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# -- python venv ---------------------------------------------------------------------------------
stamp_inputs=$(cat constraints.txt requirements.txt test-requirements.txt tools/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if [ "$(cat .venv/.d2s-stamp 2>/dev/null)" != "$stamp_inputs" ]; then
  log "installing pinned Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -r requirements.txt -r test-requirements.txt
  if [ -f tools/pyproject.toml ]; then
    .venv/bin/python -m pip install -q -c constraints.txt --no-deps -e tools/
  fi
  echo "$stamp_inputs" > .venv/.d2s-stamp
else
  log ".venv is up to date"
fi

# -- docker daemon -------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  log "no docker daemon answers: starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/d2s-dockerd.log 2>&1 &
  echo $! > /var/run/d2s-dockerd.pid
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/d2s-dockerd.log"; tail -20 /var/log/d2s-dockerd.log; exit 1; }
fi
log "docker daemon: $(docker version --format '{{.Server.Version}}')"

# -- local images --------------------------------------------------------------------------------
if [ "$build_images" = 1 ] && [ -f scripts/build_images.sh ]; then
  bash scripts/build_images.sh
fi
log "setup done ($top)"
