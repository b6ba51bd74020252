#!/bin/sh
# Rendered by netctl for node {{ node }}: pod network routes, backend {{ backend }}.
# `up` converges: it adds what is missing and removes what netctl added earlier that the profile
# no longer wants (netctl's routes carry protocol {{ proto }}). `down` removes everything it added.
# `check` exits 1 when the node differs from this file{% if peers %} and the peer table{% endif %}. `switch` splits `up` in three so a
# rolling change of backend loses no packets: `prepare` (additive: receive the new way) on every
# node first, then `converge` (send the new way) node by node, then `cleanup` (drop the old way).
set -eu

NODE_ADDRESS={{ address }}
PROTO={{ proto }}
DEV={{ dev }}
{%- if peers %}
# Every node with a podCIDR, one "podCIDR node-address vtep mac" per line, the same file on
# every node: this node's own line (its address) is skipped.
PEERS={{ peers }}
{%- endif %}
{%- if backend == "vxlan" %}
VNI={{ vni }}
PORT={{ port }}
MTU={{ mtu }}
MAC={{ mac }}
VTEP={{ vtep }}
{%- endif %}
{%- if peers %}

# The peers are read with awk, one process per kind of entry, whatever the cluster's size: it
# reads the table first (its lines of other nodes are peers), then what the node has (stdin).
# shellcheck disable=SC2016 # awk's fields, not the shell's
PEER='FILENAME == table && NF && $1 !~ /^#/ && $2 != self'

has_table() {
    [ -r "$PEERS" ] || { echo "netctl-routes: $PEERS is missing: netctl init writes it" >&2; exit 1; }
}
{%- endif %}

{%- if pod_cidr %}

# The pods' bridge takes its ports' smallest MTU unless its own MTU was set (Linux 4.17 and later
# then keep it when ports join or leave): pinned to the MTU this backend gives new pods, so they
# get it end to end while pods made on an earlier backend keep theirs (verify's node.pod-mtu
# names them). No bridge yet: the first pod creates it with the config's MTU.
BRIDGE={{ bridge }}
POD_MTU={{ pod_mtu }}

pin_bridge_mtu() {
    ip link show dev "$BRIDGE" >/dev/null 2>&1 || return 0
    ip link set dev "$BRIDGE" mtu "$POD_MTU"
}

# Pod traffic leaving the cluster CIDR is masqueraded; pod to pod is not: peers and NetworkPolicy
# see pod addresses, and a connection survives its path changing (a switch between backends).
# (The bridge plugin's own ipMasq would masquerade everything outside this node's podCIDR.)
MASQ="-s {{ pod_cidr }} ! -d {{ cluster_cidr }} -m comment --comment netctl-routes -j MASQUERADE"

masq_up() {
    command -v iptables >/dev/null || { echo "netctl-routes: no iptables: pod traffic to outside the cluster is not masqueraded" >&2; return 0; }
    # shellcheck disable=SC2086 # MASQ is the rule's words
    iptables -w -t nat -C POSTROUTING $MASQ 2>/dev/null || iptables -w -t nat -A POSTROUTING $MASQ
}

masq_down() {
    command -v iptables >/dev/null || return 0
    # shellcheck disable=SC2086
    while iptables -w -t nat -D POSTROUTING $MASQ 2>/dev/null; do :; done
}
{%- endif %}

wait_for_address() { # at boot the unit can start before the address is configured
    i=0
    while [ -z "$(ip -o -4 addr show to "$NODE_ADDRESS")" ]; do
        i=$((i + 1))
        [ "$i" -le 60 ] || { echo "netctl-routes: $NODE_ADDRESS is not configured on any interface" >&2; exit 1; }
        sleep 0.5
    done
}

remove_stale_routes() { # every route of ours to a podCIDR{% if peers %} the table does not list{% endif %}
{%- if peers %}
    ip -4 route show proto "$PROTO" | awk -v table="$PEERS" -v self="$NODE_ADDRESS" -v proto="$PROTO" \
        "$PEER"' { want[$1]; next } FILENAME == table { next } !($1 in want) { print "route del " $1 " proto " proto }' \
        "$PEERS" - | ip -batch -
{%- else %}
    ip -4 route show proto "$PROTO" | while read -r dst _; do ip route del "$dst" proto "$PROTO"; done
{%- endif %}
}
{%- if backend == "vxlan" %}

parent_device() {
    # `N: DEV inet ADDR ...`: the second word (fails, as the script does, when none holds it).
    ip -o -4 addr show to "$NODE_ADDRESS" | { read -r _ dev _ && echo "$dev"; }
}

vxlan_up() {
    parent=$(parent_device)
    # Recreate the device only when its identity differs; MTU and MAC are converged in place.
    if ! ip -d link show "$DEV" 2>/dev/null | grep -q "vxlan id $VNI local $NODE_ADDRESS dev $parent .*dstport $PORT nolearning"; then
        ip link del "$DEV" 2>/dev/null || true
        ip link add "$DEV" address "$MAC" mtu "$MTU" type vxlan id "$VNI" dev "$parent" local "$NODE_ADDRESS" dstport "$PORT" nolearning
    fi
    ip link set "$DEV" address "$MAC" mtu "$MTU" up
    ip -4 addr show dev "$DEV" | grep -q " inet $VTEP/32 " || ip addr replace "$VTEP/32" dev "$DEV"
    # One ip and one bridge process for all peers: on large clusters process starts dominate.
    # Each batch also drops the entries of nodes the table no longer lists (a neighbour by its
    # VTEP, an FDB entry by its MAC and destination).
    ip neigh show dev "$DEV" | awk -v table="$PEERS" -v self="$NODE_ADDRESS" -v dev="$DEV" \
        "$PEER"' { want[$3]; print "neigh replace " $3 " lladdr " $4 " dev " dev " nud permanent"; next }
        FILENAME == table { next } !($1 in want) { print "neigh del " $1 " dev " dev }' \
        "$PEERS" - | ip -batch -
    bridge fdb show dev "$DEV" | awk -v table="$PEERS" -v self="$NODE_ADDRESS" -v dev="$DEV" \
        "$PEER"' { want[$4 " " $2]; print "fdb replace " $4 " dev " dev " dst " $2 " self permanent"; next }
        FILENAME == table { next } $2 == "dst" && !(($1 " " $3) in want) { print "fdb del " $1 " dev " dev " dst " $3 " self" }' \
        "$PEERS" - | bridge -batch -
}
{%- endif %}

prepare() {
{%- if peers %}
    has_table
{%- endif %}
    sysctl -q -w net.ipv4.ip_forward=1
    wait_for_address
{%- if pod_cidr %}
    masq_up
{%- endif %}
{%- if backend == "vxlan" %}
    vxlan_up
{%- endif %}
}

converge() {
    prepare
{%- if pod_cidr %}
    pin_bridge_mtu
{%- endif %}
{%- if peers %}
    awk -v table="$PEERS" -v self="$NODE_ADDRESS" -v proto="$PROTO" -v dev="$DEV" \
        "$PEER"' { print "route replace " $1 " via " {% if backend == "vxlan" %}$3 " dev " dev " onlink"{% else %}$2{% endif %} " proto " proto }' \
        "$PEERS" | ip -batch -
{%- endif %}
    remove_stale_routes
}

cleanup() {
{%- if backend == "vxlan" %}
    : # nothing of host-gw outlives converge: its routes were replaced
{%- else %}
    ip link del "$DEV" 2>/dev/null || true # a VXLAN mesh from an earlier backend
{%- endif %}
}

down() {
    ip -4 route show proto "$PROTO" | while read -r dst _; do ip route del "$dst" proto "$PROTO"; done
    ip link del "$DEV" 2>/dev/null || true
{%- if pod_cidr %}
    masq_down
{%- endif %}
}

check() {
    [ "$(sysctl -n net.ipv4.ip_forward)" = 1 ] || { echo "net.ipv4.ip_forward is 0"; exit 1; }
{%- if peers %}
    has_table
    # Every peer's route, with its next hop: the first one missing is named.
    ip -4 route show proto "$PROTO" | awk -v table="$PEERS" -v self="$NODE_ADDRESS" \
        "$PEER"' { want[$1] = {% if backend == "vxlan" %}$3{% else %}$2{% endif %}; next } FILENAME == table { next }
        $2 == "via" && ($1 in want) && want[$1] == $3 { delete want[$1] }
        END { for (d in want) { print "no route to " d " via " want[d]; exit 1 } }' \
        "$PEERS" -
{%- endif %}
}

case "${1:-up}" in
    up) converge; cleanup ;;
    prepare) prepare ;;
    converge) converge ;;
    cleanup) cleanup ;;
    down) down ;;
    check) check ;;
    *) echo "usage: $0 up|down|check|prepare|converge|cleanup" >&2; exit 2 ;;
esac
