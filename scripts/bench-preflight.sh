#!/usr/bin/env bash
# Benchmark (not a test): `netctl preflight` on a netns lab of N nodes (default 250), routes
# vxlan (udp 8472 listeners and probes, MTU probes) and routes host-gw (layer 2, MTU probes).
# Wall time, netctl's own CPU time (user + sys) and peak memory (maximum RSS) from /usr/bin/time
# -v; the lab's sshd and the probes run on the same cores, so wall time is not netctl's cost
# alone. From the JSON report: the checks made, the slowest check of each id (duration_ms), and
# the report's own timings when it has them.
# The peer, on the same lab right after: the same udp 8472 pair probes by hand with OpenSSH
# (one multiplexed connection per node, ControlMaster) and python3, in the same rounds: connect,
# a listener on every node (ready before the round ends), every node probes the nodes 1, 2, 4 ...
# places after it (3 datagrams each), stop every listener and collect what arrived. Only the
# vxlan probes: netctl also reads every node's facts and probes MTU, so the peer does less.
# Usage: sudo scripts/bench-preflight.sh [nodes]   (default 250; NETCTL=path uses that binary
# instead of building the release one)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (the lab)" >&2; exit 2; }
N=${1:-250}
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time; apt-get install time)" >&2; exit 2; }
if [ -z "${NETCTL:-}" ]; then
    cargo build --release --quiet
    NETCTL=$PWD/target/release/netctl
fi
export NETCTL_NO_PROGRESS=1
NAME=pfbench
WORK=$(mktemp -d)

# One neighbour table for every namespace on this kernel (gc_thresh3, default 1024 entries): 250
# nodes each resolving 8 peers, both ends, overflow it and probes fail for the lab's sake. Real
# nodes each have their own table. Raised for the run, put back on exit.
neigh=net.ipv4.neigh.default
old2=$(sysctl -n $neigh.gc_thresh2) old3=$(sysctl -n $neigh.gc_thresh3)
cleanup() {
    for f in "$WORK"/cm-*; do if [ -S "$f" ]; then ssh -o ControlPath="$f" -O exit x 2>/dev/null || true; fi; done
    "$NETCTL" lab down --name "$NAME" >/dev/null 2>&1 || true
    sysctl -q -w $neigh.gc_thresh3="$old3" $neigh.gc_thresh2="$old2"
    rm -rf "$WORK"
}
trap cleanup EXIT
sysctl -q -w $neigh.gc_thresh3=16384 $neigh.gc_thresh2=8192

now() { date +%s.%N; }
secs() { printf '%.2f' "$(echo "$2 - $1" | bc)"; }

# A /24 of 10.240 holds 244 nodes; bigger labs take lab up's default (10.160.0.0/N).
"$NETCTL" lab down --name "$NAME" >/dev/null 2>&1 || true
subnet=()
[ "$N" -le 244 ] && subnet=(--subnet 10.240.179.0/24)
t0=$(now)
PROFILE=$("$NETCTL" lab up --name "$NAME" --kind netns --nodes "$N" "${subnet[@]}" | tail -n 1)
echo "lab of $N netns nodes up in $(secs "$t0" "$(now)") s ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
LAB=$(dirname "$PROFILE")

# Run netctl under /usr/bin/time; sets WALL, CPU (user + sys, s), PEAK (MB) and CODE; output in $1.
timed() {
    local out=$1; shift
    CODE=0
    /usr/bin/time -v -o "$WORK/time" "$NETCTL" "$@" > "$out" || CODE=$?
    read -r WALL CPU PEAK < <(awk -F': ' '
        /User time/ {u=$2} /System time/ {s=$2} /Maximum resident/ {m=$2}
        /Elapsed \(wall clock\)/ {n=split($2, p, ":"); w=0; for (i=1; i<=n; i++) w=w*60+p[i]}
        END {printf "%.2f %.2f %.0f\n", w, u+s, m/1024}' "$WORK/time")
}

# What a JSON report holds: the summary, failures (at most 10), the slowest check of each id,
# and any top-level timings the report has besides its checks.
summarize() {
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
checks = r.get("checks", [])
print("  summary:", r.get("summary"), f"({len(checks)} rows)")
for c in [c for c in checks if c.get("status") == "fail"][:10]:
    print(f"  FAIL {c['id']} {c['subject']}: {c.get('detail')}")
slow = {}
for c in checks:
    d = c.get("duration_ms") or 0
    slow[c["id"]] = max(slow.get(c["id"], 0), d)
print("  slowest row per check (ms):", ", ".join(f"{k} {v}" for k, v in sorted(slow.items(), key=lambda kv: -kv[1])))
for k, v in r.items():
    if k not in ("checks", "summary", "run_id") and isinstance(v, (dict, list)) and "ms" in json.dumps(v):
        print(f"  {k}:", json.dumps(v)[:600])
PY
}

# The rounds, seen from outside: every node's agent (a python3 whose command line carries the run's
# token, netctl-pf-RUN; the lab's nodes share this machine's processes) starts in round 1, forks
# a prober in round 2 and ends in round 3. Their number, sampled every 50 ms while netctl runs:
# round 1 ends when there are N, round 2 when they drop below N again, round 3 when none is left.
watch_rounds() {
    local t0; t0=$(now)
    while :; do
        echo "$(secs "$t0" "$(now)") $(pgrep -fc 'netctl-pf-[0-9A-Za-z-]+ [0-9]+' || true)"
        [ -e "$WORK/done" ] && break
        sleep 0.05
    done > "$WORK/rounds"
}
rounds() {
    # Two passes: the most agents seen at once, up to N (probers are counted too), marks round 1's
    # end: a sample can miss the moment all N run when the rounds are short.
    awk -v n="$N" 'NR == FNR { if ($2 > m) m = $2; next }
        FNR == 1 { if (m > n) m = n }
        $2 > 0 && first == "" { first = $1 }
        m > 0 && $2 >= m && all == "" { all = $1 }
        all != "" && $2 < m && gone == "" { gone = $1 }
        all != "" && $2 == 0 && none == "" { none = $1 }
        END { if (all == "") print "  rounds: no agent seen"
              else printf "  rounds (from outside, +-0.05 s; at most %d agents seen at once): first agent %s s, round 1 (connect, facts, agents) ends %s s, round 2 (probes) ends %s s, round 3 (end) ends %s s\n", m, first, all, gone, none }' \
        "$WORK/rounds" "$WORK/rounds"
}

for run in "vxlan" "host-gw" "vxlan --concurrency 250"; do
    read -r backend extra <<< "$run"
    rm -f "$WORK/done"; watch_rounds & watcher=$!
    # shellcheck disable=SC2086 # $extra: the run's flags, split on purpose
    timed "$WORK/preflight.json" preflight -p "$PROFILE" --networking routes --backend "$backend" $extra --output json
    touch "$WORK/done"; wait "$watcher"
    printf 'netctl preflight, %d nodes, routes %-7s %-18s: wall %5.2f s  cpu %5.2f s  peak %3d MB  exit %d\n' \
        "$N" "$backend" "${extra:-(concurrency 32)}" "$WALL" "$CPU" "$PEAK" "$CODE"
    summarize "$WORK/preflight.json" || echo "  (no JSON report)"
    rounds
done

# The peer: the same udp pair probes with OpenSSH and python3.
"$NETCTL" profile check -p "$PROFILE" --output json \
    | python3 -c 'import json,sys; [print(n["address"]) for n in json.load(sys.stdin)["nodes"]]' > "$WORK/addrs"
# Each node's strided peers: the nodes 1, 2, 4 ... places after it.
python3 - "$WORK/addrs" > "$WORK/probes" <<'PY'
import sys
a = open(sys.argv[1]).read().split()
n = len(a)
for i, addr in enumerate(a):
    peers, k = [], 1
    while k < n:
        p = a[(i + k) % n]
        if p not in peers:
            peers.append(p)
        k *= 2
    print(addr, *peers)
PY
cat > "$WORK/listen.py" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 8472))
s.settimeout(120)
with open("/root/pfb-recv", "w") as out:
    open("/root/pfb-ready", "w").close()
    while True:
        data, peer = s.recvfrom(64)
        out.write(peer[0] + "\n")
        out.flush()
PY
cat > "$WORK/probe.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    for p in sys.argv[1:]:
        s.sendto(b"pfb", (p, 8472))
    time.sleep(0.05)
PY
cat > "$WORK/ssh.sh" <<SSH
#!/bin/sh
# ssh.sh ADDR COMMAND...: one multiplexed OpenSSH connection per node.
addr=\$1; shift
exec ssh -i $LAB/id_ed25519 -o UserKnownHostsFile=$LAB/known_hosts -o StrictHostKeyChecking=yes \
  -o BatchMode=yes -o ControlMaster=auto -o ControlPath=$WORK/cm-%h -o ControlPersist=120 "root@\$addr" "\$@"
SSH
cat > "$WORK/peer.sh" <<PEER
#!/bin/sh
# One round of the peer on one node: \$1 the round, \$2 the node, the rest its peers.
set -e
round=\$1; addr=\$2; shift 2
case \$round in
connect) $WORK/ssh.sh "\$addr" true ;;
listen) $WORK/ssh.sh "\$addr" 'cat > /root/pfb-listen.py && rm -f /root/pfb-ready &&
    (setsid python3 /root/pfb-listen.py '"\$addr"' </dev/null >/dev/null 2>&1 & echo \$! > /root/pfb-pid) &&
    while [ ! -e /root/pfb-ready ]; do sleep 0.02; done' < $WORK/listen.py ;;
probe) $WORK/ssh.sh "\$addr" python3 - "\$@" < $WORK/probe.py ;;
stop) $WORK/ssh.sh "\$addr" 'kill \$(cat /root/pfb-pid); sort -u /root/pfb-recv | sed "s/^/'"\$addr"' /";
    rm -f /root/pfb-recv /root/pfb-ready /root/pfb-pid /root/pfb-listen.py' ;;
esac
PEER
chmod +x "$WORK/ssh.sh" "$WORK/peer.sh"
round() {
    local t0; t0=$(now)
    xargs -P "$N" -L 1 "$WORK/peer.sh" "$1" < "$WORK/probes" > "$WORK/round-$1"
    ROUND[$1]=$(secs "$t0" "$(now)")
}
declare -A ROUND
t0=$(now)
for r in connect listen probe stop; do round $r; done
total=$(secs "$t0" "$(now)")
want=$(awk '{ n += NF - 1 } END { print n }' "$WORK/probes")
got=$(wc -l < "$WORK/round-stop")
printf 'OpenSSH + python3 peer, %d nodes, udp 8472 strided: wall %5.2f s (connect %s, listen %s, probe %s, stop %s); %d of %d pairs arrived\n' \
    "$N" "$total" "${ROUND[connect]}" "${ROUND[listen]}" "${ROUND[probe]}" "${ROUND[stop]}" "$got" "$want"
