#!/usr/bin/env bash
# The demo on the embedded local setup (docs/demo.md): a dev ClearML server on 127.0.0.1 seeded with a
# real deployment (datasets, training runs, models, a clearml-serving service), two standalone sites
# that are network-less site hosts (containers d2s-demo-site-a/-b with network_mode none, each with its
# own docker daemon and its own ClearML server), then the product's playbooks/deploy_standalone.yml
# from dev to both sites, a second run that must change nothing, and per site what was deployed, the
# bytes moved and a live inference answered inside the site host, compared with dev's answer.
#
#   scripts/demo.sh            run (reuses what a previous run left: dev server, seed, site hosts)
#   scripts/demo.sh --clean    remove the site hosts and their volumes, stop the dev server, drop the files
#
# Everything stays up after a run (dev server, site hosts); --clean (make demo-clean) removes it.
# Files: $D2S_DEMO_ROOT (default .cache/demo); ansible's output in $D2S_DEMO_ROOT/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
export PATH="$top/.venv/bin:$PATH" ANSIBLE_CONFIG="$top/ansible.cfg" PYTHONPATH="$top/tools:$top/collections"
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
root=${D2S_DEMO_ROOT:-$top/.cache/demo}
mkdir -p "$root"
root=$(cd "$root" && pwd)
export D2S_DEMO_ROOT=$root
inventory=inventories/local
logs=$root/logs
began=$SECONDS

say() { printf '[demo %4ds] %s\n' $((SECONDS - began)) "$*"; }
die() { say "FAILED: $*"; exit 1; }

# The dev server's PID, when the ready file names a live process that serves this demo's data directory.
dev_server_pid() {
  local ready=$root/dev.ready.json pid
  [ -s "$ready" ] || return 1
  pid=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$ready") || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--data-dir $root/dev-server" || return 1
  echo "$pid"
}

clean() {
  say "removing the site hosts d2s-demo-site-a/-b and their volumes"
  ansible-playbook -i "$inventory" scripts/demo/sites.yml -e d2s_demo_sites_state=absent >"$root/clean.log" 2>&1 \
    || die "could not remove the site hosts: $root/clean.log"
  local pid
  if pid=$(dev_server_pid); then
    say "stopping the dev ClearML server (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  say "removing $root"
  rm -rf "$root"
}

if [ "${1:-}" = "--clean" ]; then
  clean
  exit 0
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--clean]" >&2
  exit 2
fi

mkdir -p "$logs"
say "deploy2standalone demo; files in $root"
# This demo's identity: the site hosts carry it as a label and are recreated when it changes (a site
# that holds another dev's objects would refuse the import on the name clash policy).
[ -s "$root/demo.id" ] || python -c 'import uuid; print(uuid.uuid4().hex)' >"$root/demo.id"

# -- dev: the local ClearML server on 127.0.0.1 ----------------------------------------------------
# The first start takes free ports; later starts reuse them (the seeded model URLs name the fileserver).
if pid=$(dev_server_pid); then
  say "dev ClearML server already runs (pid $pid)"
else
  ports=(0 0 0)
  if [ -s "$root/dev.ports" ]; then read -r -a ports <"$root/dev.ports"; fi
  rm -f "$root/dev.ready.json"
  setsid python -m d2s_tools.server --data-dir "$root/dev-server" --api-port "${ports[0]}" \
    --files-port "${ports[1]}" --web-port "${ports[2]}" --ready-file "$root/dev.ready.json" \
    >>"$logs/dev-server.log" 2>&1 </dev/null &
  for _ in $(seq 1 150); do [ -s "$root/dev.ready.json" ] && break; sleep 0.2; done
  pid=$(dev_server_pid) || die "the dev server did not start: $logs/dev-server.log"
  say "dev ClearML server started (pid $pid)"
fi
eval "$(python - "$root" <<'PY'
import json, sys
from pathlib import Path
from urllib.parse import urlsplit
root = Path(sys.argv[1])
r = json.loads((root / "dev.ready.json").read_text())
(root / "dev.ports").write_text(" ".join(str(urlsplit(r[k]).port) for k in ("api", "files", "web")) + "\n")
print(f"export CLEARML_API_HOST={r['api']} CLEARML_WEB_HOST={r['web']} CLEARML_FILES_HOST={r['files']}")
PY
)"
export CLEARML_API_ACCESS_KEY=d2s-access-key CLEARML_API_SECRET_KEY=d2s-secret-key
say "dev: api $CLEARML_API_HOST, files $CLEARML_FILES_HOST"

# -- seed dev (in the background) while the site hosts come up ----------------------------------------
seed_pid=
if [ ! -s "$root/seed.json" ]; then
  say "seeding dev through the clearml SDK and the clearml-serving CLI (in the background)"
  python -m d2s_tools.seed --out "$root/seed.json" --workdir "$root/seed" >"$logs/seed.log" 2>&1 &
  seed_pid=$!
fi

say "site hosts d2s-demo-site-a/-b: network_mode none, own dockerd, own ClearML server (scripts/demo/sites.yml)"
ansible-playbook -i "$inventory" scripts/demo/sites.yml >"$logs/sites.log" 2>&1 \
  || die "site hosts: $logs/sites.log"
for host in d2s-demo-site-a d2s-demo-site-b; do
  say "  $host: interfaces $(docker exec "$host" ls /sys/class/net | tr '\n' ' '); ClearML $(docker exec "$host" \
    python3 -c 'import json; r = json.load(open("/run/d2s/clearml.ready.json")); print(r["api"])')"
done

if [ -n "$seed_pid" ]; then
  wait "$seed_pid" || { tail -20 "$logs/seed.log"; die "seed: $logs/seed.log"; }
fi
export D2S_SERVING_ID
D2S_SERVING_ID=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["serving"]["id"])' "$root/seed.json")
say "dev deployment: serving service $D2S_SERVING_ID"

# -- the product: playbooks/deploy_standalone.yml, twice ----------------------------------------------
export ANSIBLE_CALLBACK_PLUGINS=$top/scripts/demo/callback_plugins ANSIBLE_CALLBACKS_ENABLED=d2s_demo_record,ansible.posix.profile_tasks
deploy() {  # deploy N: run N of the playbook; ansible's output in logs/deploy-N.log, results in deploy-N.json
  local n=$1 rc=0
  rm -f "$logs/deploy-$n.json"
  D2S_DEMO_RECORD=$logs/deploy-$n.json ansible-playbook -i "$inventory" playbooks/deploy_standalone.yml \
    >"$logs/deploy-$n.log" 2>&1 || rc=$?
  grep -A4 "^PLAY RECAP" "$logs/deploy-$n.log" | sed -n '2,$s/^/    /p'
  [ "$rc" = 0 ] || { grep -E "^(fatal|failed):" -A6 "$logs/deploy-$n.log" | head -40; die "deploy run $n: $logs/deploy-$n.log"; }
}
say "ansible-playbook -i $inventory playbooks/deploy_standalone.yml (log: $logs/deploy-1.log)"
deploy 1
say "second run: must change nothing (log: $logs/deploy-2.log)"
deploy 2

# -- what each site got, and a live inference inside each site host -----------------------------------
say "what each site got"
python scripts/demo/report.py --root "$root" || die "the report found a problem (above)"
say "demo done in $((SECONDS - began)) s. Everything keeps running: docker exec -it d2s-demo-site-a bash;
  remove it all with: make demo-clean (scripts/demo.sh --clean)"
