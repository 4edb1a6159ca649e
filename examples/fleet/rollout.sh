#!/usr/bin/env bash
# A hotfix rolled across a fleet of hotlua servers, the way an operator (or Ansible, or a
# `kubectl exec` loop) would: deploy the file, `check` everywhere, `reload` everywhere, verify
# the live SHA-256 everywhere, and `rollback` everywhere if any server failed.
#
#   examples/fleet/rollout.sh                 # 20 arena servers, hotfix combat v1 -> v2
#   N=5 FAIL_AT=3 examples/fleet/rollout.sh   # server 3 gets a broken file after the check:
#                                             # its reload fails, every other one rolls back
#
# HOTLUA names the binary (default: hotlua on PATH). Every server runs in its own folder
# under a temporary directory, with its control socket and audit log there; the script stops
# them and removes the folder when it ends, whatever happened.
set -euo pipefail

N=${N:-20}
FAIL_AT=${FAIL_AT:-}
HOTLUA=${HOTLUA:-hotlua}
here=$(cd "$(dirname "$0")" && pwd)
arena="$here/../arena"
work=$(mktemp -d "${TMPDIR:-/tmp}/hotlua-fleet.XXXXXX")
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

ctl() { "$HOTLUA" ctl --connect "unix:$work/$1/control.sock" "${@:2}"; }

echo "== starting $N arena servers"
for i in $(seq 1 "$N"); do
  mkdir -p "$work/$i"
  cp "$arena/main.lua" "$arena/combat.lua" "$work/$i/"
  "$HOTLUA" run --control "unix:$work/$i/control.sock" --audit "$work/$i/audit.log" \
    "$work/$i/main.lua" >"$work/$i/stdout" 2>"$work/$i/stderr" &
  pids+=("$!")
done
for i in $(seq 1 "$N"); do
  # `status` answers once the server reached its first safe point (combat loaded).
  for _ in $(seq 1 100); do ctl "$i" status >/dev/null 2>&1 && break; sleep 0.05; done
  ctl "$i" status >/dev/null
done

start=$(date +%s.%N)
echo "== deploy: the hotfix lands in every server's folder"
for i in $(seq 1 "$N"); do
  sed 's/^combat.VERSION = "v1"/combat.VERSION = "v2"/' "$arena/combat.lua" >"$work/$i/combat.lua"
done
want=$(sha256sum "$work/1/combat.lua" | cut -c1-64)

echo "== check on every server (nothing changes yet)"
for i in $(seq 1 "$N"); do
  ctl "$i" check combat >/dev/null || { echo "server $i: check failed, rollout aborted"; exit 1; }
done

if [[ -n "$FAIL_AT" ]]; then
  echo "== (simulated bad deploy: server $FAIL_AT gets a broken file after its check)"
  echo 'return (' >"$work/$FAIL_AT/combat.lua"
fi

echo "== reload on every server"
failed=()
reloaded=()
for i in $(seq 1 "$N"); do
  if ctl "$i" reload combat >"$work/$i/reload.out" 2>&1; then
    reloaded+=("$i")
  else
    failed+=("$i")
    echo "server $i: $(cat "$work/$i/reload.out")"
  fi
done

echo "== verify: the live source of combat on every server"
for i in "${reloaded[@]}"; do
  live=$(ctl "$i" status | awk '$1 == "combat" { print $2 }')
  [[ "$live" == "$want" ]] || { echo "server $i runs $live, not $want"; failed+=("$i"); }
done

if ((${#failed[@]})); then
  echo "== ${#failed[@]} server(s) failed: rollback on every server that reloaded"
  for i in "${reloaded[@]}"; do ctl "$i" rollback combat >/dev/null; done
  end=$(date +%s.%N)
  printf 'rolled back %d servers in %.2f s; fleet back on the old combat\n' "${#reloaded[@]}" "$(awk "BEGIN { print $end - $start }")"
  exit 1
fi
end=$(date +%s.%N)
printf 'hotfix live on %d servers (combat sha256 %.12s) in %.2f s\n' "$N" "$want" "$(awk "BEGIN { print $end - $start }")"
echo "== one server's audit log:"
cat "$work/1/audit.log"
