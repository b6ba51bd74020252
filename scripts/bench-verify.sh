#!/usr/bin/env bash
# Time `netctl verify` (node checks + full-mesh data plane) on netns labs of 10 and 50 nodes
# (50 nodes = 2,450 pod pairs), plus the ring mesh at 50 for comparison.
# Usage (root): scripts/bench-verify.sh [path/to/netctl] [node counts...]
#   default binary: builds and uses target/release; default counts: 10 50.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "bench-verify.sh: needs root (the lab does)" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=target/release/netctl
fi
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 50)
export NETCTL_NO_PROGRESS=1

# All lab nodes share this kernel, and the ARP table is one table for every network namespace
# (net.ipv4.neigh.default.gc_thresh3, default 1024 entries). A 50-node host-gw full mesh needs
# 50 x 49 node neighbours plus the pods': above the default the kernel logs "neighbor table
# overflow" and pings fail (verify then rightly fails). Real nodes each have their own table.
# Raise the limits for the run and put the old values back on exit.
neigh=net.ipv4.neigh.default
old2=$(sysctl -n $neigh.gc_thresh2) old3=$(sysctl -n $neigh.gc_thresh3)
trap 'sysctl -q -w $neigh.gc_thresh3=$old3 $neigh.gc_thresh2=$old2' EXIT
sysctl -q -w $neigh.gc_thresh3=16384 $neigh.gc_thresh2=8192

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

run() {
    local nodes=$1 name=bv$1 subnet="10.245.$1.0/24" profile t0 t1 out
    "$bin" lab down --name "$name" >/dev/null
    profile=$("$bin" lab up --name "$name" --kind netns --nodes "$nodes" --subnet "$subnet" | tail -n1)
    trap '"$bin" lab down --name "$name" >/dev/null' RETURN
    "$bin" init --yes --no-verify --profile "$profile" >/dev/null
    for mesh in full ring; do
        [ "$mesh" = ring ] && [ "$nodes" -lt 50 ] && continue
        t0=$(now)
        out=$("$bin" verify --mesh "$mesh" --output json --profile "$profile") || {
            echo "verify failed on $nodes nodes:" >&2
            echo "$out" | grep -B2 -A4 '"fail"' >&2
            exit 1
        }
        t1=$(now)
        local pairs; [ "$mesh" = full ] && pairs=$((nodes * (nodes - 1))) || pairs=$nodes
        printf '%4d nodes  mesh %-4s  %5d pod pairs  verify %6.2f s  (%s)\n' "$nodes" "$mesh" "$pairs" \
            "$(secs "$t0" "$t1")" "$(echo "$out" | grep -A3 '"summary"' | tr -d ' \n' | sed 's/"summary"://')"
    done
}

echo "netctl verify benchmark on $(nproc) cores, $(uname -r), $($bin --version)"
for n in "${counts[@]}"; do run "$n"; done
