#!/usr/bin/env bash
# Benchmark (not a test): `netctl init` of the routes provider on netns labs of 1, 10 and 50 nodes,
# against a plain OpenSSH baseline doing the same work in the fewest steps: per node one `ssh`
# session that receives the node's rendered files as one tar stream, installs them and runs the
# provider's command, all nodes at once (xargs -P). netctl's remote executions per node (from its
# JSON report) are printed beside: the baseline's is 1.
# Each size: fresh lab; baseline; reset; netctl init on the same untouched nodes. Needs root.
# Usage: sudo scripts/bench-init.sh [sizes...]   (default: 1 10 50)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (the lab)" >&2; exit 2; }
SIZES=("${@:-1 10 50}")
[ $# -gt 0 ] || SIZES=(1 10 50)
cargo build --release --quiet
NETCTL=$PWD/target/release/netctl
export NETCTL_NO_PROGRESS=1
WORK=$(mktemp -d)
trap '"$NETCTL" lab down --name bench >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
printf '%-6s %-12s %-12s %-8s %s\n' nodes baseline netctl ratio 'netctl execs/node (min-max)'
declare -A NETCTL_T
for n in "${SIZES[@]}"; do
    "$NETCTL" lab down --name bench >/dev/null 2>&1 || true
    PROFILE=$("$NETCTL" lab up --name bench --kind netns --nodes "$n" --subnet 10.240.90.0/24 | tail -n 1)
    LAB=$(dirname "$PROFILE")
    rm -rf "$WORK/out"
    "$NETCTL" render -p "$PROFILE" --out "$WORK/out" >/dev/null
    ls "$WORK/out/nodes" > "$WORK/nodes"
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
    base=$(echo "$t1 - $t0" | bc)
    for f in "$WORK"/cm-*; do [ -S "$f" ] && ssh -o ControlPath="$f" -O exit x 2>/dev/null || true; done

    # Put the nodes back as they were, then time netctl on them.
    "$NETCTL" lab down --name bench >/dev/null
    PROFILE=$("$NETCTL" lab up --name bench --kind netns --nodes "$n" --subnet 10.240.90.0/24 | tail -n 1)
    t0=$(now)
    "$NETCTL" init -p "$PROFILE" --yes --no-verify --output json > "$WORK/init.log" || { cat "$WORK/init.log"; exit 1; }
    t1=$(now)
    ours=$(echo "$t1 - $t0" | bc)
    NETCTL_T[$n]=$ours
    execs=$(python3 -c 'import json,sys; e=[n["remote_executions"] for n in json.load(open(sys.argv[1]))["nodes"]]; print(f"{min(e)}-{max(e)}")' "$WORK/init.log")
    printf '%-6s %-12s %-12s %-8s %s\n' "$n" "${base}s" "${ours}s" "$(echo "scale=2; $ours / $base" | bc)" "$execs"
done
if [ -n "${NETCTL_T[1]:-}" ] && [ -n "${NETCTL_T[50]:-}" ]; then
    echo "netctl 50 nodes / 1 node: $(echo "scale=2; ${NETCTL_T[50]} / ${NETCTL_T[1]}" | bc)"
fi
