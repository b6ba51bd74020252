#!/usr/bin/env bash
# Time `netctl lab up` / `lab down` and measure memory per node, for systemd and netns labs.
# Usage (root): scripts/bench-lab.sh [path/to/netctl]   (default: builds and uses target/release)
# Memory is shown two ways: the drop in MemAvailable while the lab is up, and the summed PSS of
# every process of the lab (each node's process tree: sshd, or nspawn + the container's systemd).
# The systemd root is built on first use (about 1-2 minutes); run once beforehand to time warm.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "bench-lab.sh: needs root (the lab does)" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=target/release/netctl
fi

mem_used_kb() {
    awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print t-a}' /proc/meminfo
}

# PIDs of a process and all its descendants.
tree() {
    local todo=("$@") out=() p c
    while [ ${#todo[@]} -gt 0 ]; do
        p=${todo[0]}; todo=("${todo[@]:1}")
        out+=("$p")
        if [ -r "/proc/$p/task/$p/children" ]; then
            for c in $(cat "/proc/$p/task/$p/children"); do todo+=("$c"); done
        fi
    done
    echo "${out[@]}"
}

pss_kb() {
    local total=0 p v
    for p in "$@"; do
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

now() { date +%s.%N; }

run() {
    local kind=$1 nodes=$2 name=$3 subnet=$4
    "$bin" lab down --name "$name" >/dev/null
    sync; sleep 1
    local m0 t0 t1 t2 t3 m1 pids
    m0=$(mem_used_kb)
    t0=$(now)
    "$bin" lab up --name "$name" --kind "$kind" --nodes "$nodes" --subnet "$subnet" >/dev/null
    t1=$(now)
    sleep 3   # let systemd nodes settle
    "$bin" lab status --name "$name" >/dev/null || { echo "not every node answers" >&2; exit 1; }
    m1=$(mem_used_kb)
    # Root processes of each node: the PID column of `lab status`.
    pids=$("$bin" lab status --name "$name" | awk 'NR>2 {print $3}')
    local pss
    pss=$(pss_kb $(tree $pids))
    t2=$(now)
    "$bin" lab down --name "$name" >/dev/null
    t3=$(now)
    awk -v k="$kind" -v n="$nodes" -v up="$(echo "$t1 - $t0" | bc)" -v down="$(echo "$t3 - $t2" | bc)" \
        -v dm="$((m1 - m0))" -v pss="$pss" 'BEGIN {
        printf "%-8s %5d  up %6.1f s  down %5.1f s  MemAvailable drop %6.1f MB/node  PSS %6.1f MB/node\n",
               k, n, up, down, dm / n / 1024, pss / n / 1024 }'
}

echo "netctl lab benchmark on $(nproc) cores, $(uname -r)"
run systemd 3 bs3 10.244.3.0/24
run systemd 10 bs10 10.244.10.0/24
run netns 10 bn10 10.244.20.0/24
run netns 50 bn50 10.244.50.0/24
run netns 100 bn100 10.244.100.0/24
