#!/usr/bin/env bash
# Benchmark (not a test): `netctl render --out` and `netctl profile check` on generated profiles of
# 1,000 / 5,000 / 20,000 nodes (one controller, the rest workers) for routes host-gw, routes
# vxlan, flannel (DaemonSet) and calico. Wall time and peak RSS come from /usr/bin/time -v; the
# output column is the size of the render directory. No lab, no root needed (root works too).
#
# Usage: scripts/bench-scale.sh [sizes...]              (default: 1000 5000 20000)
#   NETCTL=path/to/netctl   time that binary instead of building target/release/netctl
#   PROVIDERS="routes-host-gw flannel"   a subset of: routes-host-gw routes-vxlan flannel calico
#   TIMEOUT=120             seconds per command before it is stopped and reported as a timeout
#   MEM_LIMIT_MB=6144       address-space limit per command (ulimit -v): over it, "out of memory"
#   WORK=dir                where profiles and renders go (default: a temporary directory)
#   OUT_ROOT=dir            where renders go instead (e.g. /dev/shm: the file system's cost of
#                           making inodes and directories is then out of the figures)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ $# -gt 0 ] || SIZES=(1000 5000 20000)
read -r -a PROVIDERS <<< "${PROVIDERS:-routes-host-gw routes-vxlan flannel calico}"
TIMEOUT=${TIMEOUT:-120}
MEM_LIMIT_MB=${MEM_LIMIT_MB:-6144}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (GNU time: apt-get install time)" >&2; exit 2; }
if [ -z "${NETCTL:-}" ]; then
    cargo build --release --quiet
    NETCTL=$PWD/target/release/netctl
fi
export NETCTL_NO_PROGRESS=1
OWN_WORK=
if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d)
    OWN_WORK=1
fi
mkdir -p "$WORK"
OUT_ROOT=${OUT_ROOT:-$WORK}
cleanup() { [ -z "$OWN_WORK" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# profile PROVIDER NODES FILE
profile() {
    {
        cat <<EOF
apiVersion: netctl/v1
kind: ClusterProfile
name: scale
kubernetes:
  version: "1.30"
  clusterCIDR: 10.0.0.0/8
  serviceCIDR: 192.168.0.0/24
  apiServer: https://172.16.0.1:6443
  kubeconfig: ~/.kube/config
networking:
EOF
        case $1 in
            routes-host-gw) printf '  provider: routes\n  routes:\n    backend: host-gw\n' ;;
            routes-vxlan) printf '  provider: routes\n  routes:\n    backend: vxlan\n' ;;
            flannel) printf '  provider: flannel\n  flannel:\n    backend: vxlan\n    deploy: daemonset\n' ;;
            calico) printf '  provider: calico\n' ;;
            *) echo "unknown provider $1" >&2; exit 2 ;;
        esac
        echo "nodes:"
        # Node addresses from 172.16.0.1 up (outside clusterCIDR and serviceCIDR).
        awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++) { a = i + 1
            printf "  - { name: node-%d, address: 172.%d.%d.%d, roles: [%s] }\n", i,
                16 + int(a / 65536), int(a / 256) % 256, a % 256, (i == 0 ? "controller" : "worker") } }'
    } > "$3"
}

# measure LOG CMD...: run CMD under /usr/bin/time -v with the limits; prints "wall_s peak_MB" or
# the reason it did not finish.
measure() {
    local log=$1 rc=0
    shift
    (ulimit -v $((MEM_LIMIT_MB * 1024)); timeout "$TIMEOUT" /usr/bin/time -v -o "$log.time" "$@") \
        > /dev/null 2> "$log" || rc=$?
    if [ "$rc" = 124 ]; then
        echo "timeout>${TIMEOUT}s -"
    elif [ "$rc" != 0 ]; then
        if grep -q "memory allocation" "$log"; then echo "out-of-memory(>${MEM_LIMIT_MB}MB) -"
        else echo "failed(exit-$rc) -"; fi
    else
        awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0
                        for (i = 1; i <= n; i++) s = s * 60 + t[i]; wall = s }
                    /Maximum resident set size/ { rss = $2 / 1024 }
                    END { printf "%.2fs %.0fMB\n", wall, rss }' "$log.time"
    fi
}

echo "netctl: $NETCTL; renders into $OUT_ROOT ($(stat -f -c %T "$OUT_ROOT"))"
printf '%-15s %7s | %10s %9s %9s | %10s %9s\n' provider nodes render peak output check peak
for p in "${PROVIDERS[@]}"; do
    for n in "${SIZES[@]}"; do
        f=$WORK/$p-$n.yaml
        profile "$p" "$n" "$f"
        out=$OUT_ROOT/netctl-bench-out-$p-$n
        rm -rf "$out"
        read -r rt rm < <(measure "$WORK/render.log" "$NETCTL" render -p "$f" --out "$out")
        size=$( [ -d "$out" ] && du -sm "$out" | awk '{ print $1 "MB" }' || echo -)
        rm -rf "$out"
        read -r ct cm < <(measure "$WORK/check.log" "$NETCTL" profile check -p "$f")
        printf '%-15s %7s | %10s %9s %9s | %10s %9s\n' "$p" "$n" "$rt" "$rm" "$size" "$ct" "$cm"
    done
done
