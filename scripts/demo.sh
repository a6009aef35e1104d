#!/usr/bin/env bash
# The demo on the embedded local setup: a dev ClearML server seeded with a real deployment (datasets,
# training runs, models, a clearml-serving service), two site servers, and deploy_standalone.yml
# moving the deployment to both sites. Prints, per site, what was deployed and what crossed the wire.
# Servers are stopped (by PID) at the end unless D2S_DEMO_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
export PATH="$top/.venv/bin:$PATH" ANSIBLE_CONFIG="$top/ansible.cfg" PYTHONPATH="$top/tools"
root=${D2S_DEMO_ROOT:-$top/.cache/demo}
export D2S_DEMO_ROOT=$root
mkdir -p "$root"
pids=()
cleanup() {
  if [ "${D2S_DEMO_KEEP:-0}" != 1 ]; then
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  fi
}
trap cleanup EXIT

start_server() {  # name → exports <NAME>_API/_WEB/_FILES
  local name=$1 dir="$root/$1-server" ready="$root/$1.ready.json"
  rm -f "$ready"
  python -m d2s_tools.server --data-dir "$dir" --api-port 0 --files-port 0 --web-port 0 \
    --ready-file "$ready" >"$root/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$ready" ] && break; sleep 0.1; done
  [ -s "$ready" ] || { echo "server $name did not start: $root/$name.log"; exit 1; }
  python - "$ready" "$name" >"$root/$name.env" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = sys.argv[2].upper().replace("-", "_")
print(f"export {n}_API={r['api']} {n}_WEB={r['web']} {n}_FILES={r['files']}")
PY
  # shellcheck disable=SC1090
  source "$root/$name.env"
}

echo "== local ClearML servers (dev, site_a, site_b) in $root"
start_server dev
start_server site_a
start_server site_b
export CLEARML_API_HOST=$DEV_API CLEARML_WEB_HOST=$DEV_WEB CLEARML_FILES_HOST=$DEV_FILES
export CLEARML_API_ACCESS_KEY=d2s-access-key CLEARML_API_SECRET_KEY=d2s-secret-key
export D2S_SITE_ACCESS_KEY=d2s-access-key D2S_SITE_SECRET_KEY=d2s-secret-key
export D2S_SITE_A_API=$SITE_A_API D2S_SITE_A_WEB=$SITE_A_WEB D2S_SITE_A_FILES=$SITE_A_FILES
export D2S_SITE_B_API=$SITE_B_API D2S_SITE_B_WEB=$SITE_B_WEB D2S_SITE_B_FILES=$SITE_B_FILES

if [ ! -s "$root/seed.json" ]; then
  echo "== seeding dev through the clearml SDK and the clearml-serving CLI"
  python -m d2s_tools.seed --out "$root/seed.json" --workdir "$root/seed" | tail -6
fi
export D2S_SERVING_ID=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['serving']['id'])" "$root/seed.json")
export D2S_BUNDLE_DIR=$root/dev/bundles/current
mkdir -p "$root/dev/bundles"

echo "== ansible-playbook playbooks/deploy_standalone.yml -i inventories/local"
ansible-playbook -i inventories/local playbooks/deploy_standalone.yml | tee "$root/deploy.log" | grep -E "^(PLAY|TASK \[.*(Export|Report|Import)|ok:|changed:|fatal|failed:)|msg" || true
grep -q "failed=0" "$root/deploy.log" && ! grep -qE "failed=[1-9]|unreachable=[1-9]" "$root/deploy.log" || { echo "deploy failed: $root/deploy.log"; exit 1; }

echo "== second run (must change nothing)"
ansible-playbook -i inventories/local playbooks/deploy_standalone.yml > "$root/deploy2.log"
grep -E "changed=" "$root/deploy2.log" | sed 's/^/   /'

echo "== what each site got"
python - "$root" <<'PY'
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
seed = json.loads((root / "seed.json").read_text())
manifest = json.loads((root / "dev/bundles/current/manifest.json").read_text())
total = sum(b["size"] for b in manifest["blobs"].values())
for site in ("site_a", "site_b"):
    info = json.loads((root / site / "import_info.json").read_text())
    print(f"-- {site}: bundle {info['bundle_digest'][:19]}…, {len(manifest['blobs'])} blobs, {total} bytes in the bundle")
    for url, ep in manifest["serving"]["endpoints"].items():
        mid = ep.get("model_id")
        print(f"   endpoint {url:16} {ep['engine_type']:7} model {mid[:8]}… → {info['map']['models'].get(mid, '?')[:8]}…")
    for kind in ("datasets", "tasks", "serving"):
        for dev_id, site_id in info["map"][kind].items():
            print(f"   {kind[:-1] if kind != 'serving' else 'serving':8} {dev_id} → {site_id}")
PY
echo "== demo done (servers: $root/*.log; D2S_DEMO_KEEP=1 keeps them running)"
