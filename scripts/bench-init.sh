#!/usr/bin/env bash
# Benchmark (not a test): `netctl init` of the routes provider on netns labs of 1, 10, 50 and 250
# nodes, against a plain OpenSSH baseline doing the same work in the fewest steps: per node one
# `ssh` session that receives the node's rendered files as one tar stream, installs them and runs
# the provider's command, all nodes at once (xargs -P). netctl's remote executions per node (from
# its JSON report) are printed beside: the baseline's is 1.
# Each size: fresh lab; baseline; reset (a fresh lab); `netctl plan`, then `netctl init`, on the
# same untouched nodes. For plan and init, netctl's own CPU time (user + sys) and peak memory
# (maximum RSS) come from /usr/bin/time -v beside the wall time: the lab's sshd and shells use
# the same 2 cores, so wall time is not netctl's cost alone. Needs root.
# Usage: sudo scripts/bench-init.sh [sizes...]   (default: 1 10 50 250)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (the lab)" >&2; exit 2; }
SIZES=("$@")
[ $# -gt 0 ] || SIZES=(1 10 50 250)
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time; apt-get install time)" >&2; exit 2; }
cargo build --release --quiet
NETCTL=$PWD/target/release/netctl
export NETCTL_NO_PROGRESS=1
WORK=$(mktemp -d)
trap '"$NETCTL" lab down --name bench >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }

# A /24 of 10.240 holds 244 nodes; bigger labs take lab up's default (10.160.0.0/N).
lab_up() {
    local n=$1 subnet=()
    [ "$n" -le 244 ] && subnet=(--subnet 10.240.90.0/24)
    "$NETCTL" lab up --name bench --kind netns --nodes "$n" "${subnet[@]}" | tail -n 1
}

# Run netctl under /usr/bin/time; sets WALL, CPU (user + sys, s) and PEAK (MB); output in $1.
timed() {
    local out=$1; shift
    /usr/bin/time -v -o "$WORK/time" "$NETCTL" "$@" > "$out" || { cat "$out" "$WORK/time"; exit 1; }
    read -r WALL CPU PEAK < <(awk -F': ' '
        /User time/ {u=$2} /System time/ {s=$2} /Maximum resident/ {m=$2}
        /Elapsed \(wall clock\)/ {n=split($2, p, ":"); w=0; for (i=1; i<=n; i++) w=w*60+p[i]}
        END {printf "%.2f %.2f %.0f\n", w, u+s, m/1024}' "$WORK/time")
}

printf '%-6s %-10s %-30s %-30s %-7s %s\n' nodes baseline 'netctl init: wall cpu peak' \
    'netctl plan: wall cpu peak' ratio 'init execs/node (min-max)'
declare -A NETCTL_T
for n in "${SIZES[@]}"; do
    "$NETCTL" lab down --name bench >/dev/null 2>&1 || true
    PROFILE=$(lab_up "$n")
    LAB=$(dirname "$PROFILE")
    rm -rf "$WORK/out"
    "$NETCTL" render -p "$PROFILE" --out "$WORK/out" >/dev/null
    # node name -> address, from the profile check
    "$NETCTL" profile check -p "$PROFILE" --output json \
        | python3 -c 'import json,sys; [print(n["name"], n["address"]) for n in json.load(sys.stdin)["nodes"]]' > "$WORK/addrs"

    cat > "$WORK/push.sh" <<PUSH
#!/bin/sh
# One node: the same files and the same command as netctl, over one multiplexed connection.
set -e
name=\$1; addr=\$2
SSH="ssh -i $LAB/id_ed25519 -o UserKnownHostsFile=$LAB/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes \
  -o ControlMaster=auto -o ControlPath=$WORK/cm-%h -o ControlPersist=30 root@\$addr"
tar -C "$WORK/out/nodes/\$name" -cf - . | \$SSH 'tar -C / --no-same-owner -xf - && /bin/sh /usr/local/lib/netctl/routes.sh up'
PUSH
    chmod +x "$WORK/push.sh"
    t0=$(now)
    xargs -P "$n" -L 1 "$WORK/push.sh" < "$WORK/addrs"
    t1=$(now)
    base=$(printf '%.2f' "$(echo "$t1 - $t0" | bc)")
    for f in "$WORK"/cm-*; do [ -S "$f" ] && ssh -o ControlPath="$f" -O exit x 2>/dev/null || true; done

    # Put the nodes back as they were, then time netctl on them: plan (reads every node, changes
    # nothing), then init.
    "$NETCTL" lab down --name bench >/dev/null
    PROFILE=$(lab_up "$n")
    timed "$WORK/plan.log" plan -p "$PROFILE" --output json
    plan="${WALL}s ${CPU}s ${PEAK}MB"
    timed "$WORK/init.log" init -p "$PROFILE" --yes --no-verify --output json
    init="${WALL}s ${CPU}s ${PEAK}MB"
    NETCTL_T[$n]=$WALL
    execs=$(python3 -c 'import json,sys; e=[n["remote_executions"] for n in json.load(open(sys.argv[1]))["nodes"]]; print(f"{min(e)}-{max(e)}")' "$WORK/init.log")
    printf '%-6s %-10s %-30s %-30s %-7s %s\n' "$n" "${base}s" "$init" "$plan" \
        "$(printf '%.2f' "$(echo "scale=3; $WALL / $base" | bc)")" "$execs"
done
if [ -n "${NETCTL_T[1]:-}" ] && [ -n "${NETCTL_T[50]:-}" ]; then
    echo "netctl init 50 nodes / 1 node: $(printf '%.2f' "$(echo "scale=3; ${NETCTL_T[50]} / ${NETCTL_T[1]}" | bc)")"
fi
