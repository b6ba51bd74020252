#!/bin/sh
# Rendered by netctl for node {{ node }}: pod network routes, backend {{ backend }}.
# `up` converges: it adds what is missing and removes what netctl added earlier that the profile
# no longer wants (netctl's routes carry protocol {{ proto }}). `down` removes everything it added.
# `check` exits 1 when the node differs from this file. `switch` splits `up` in three so a
# rolling change of backend loses no packets: `prepare` (additive: receive the new way) on every
# node first, then `converge` (send the new way) node by node, then `cleanup` (drop the old way).
set -eu

NODE_ADDRESS={{ address }}
PROTO={{ proto }}
DEV={{ dev }}
{%- if backend == "vxlan" %}
VNI={{ vni }}
PORT={{ port }}
MTU={{ mtu }}
MAC={{ mac }}
VTEP={{ vtep }}
{%- endif %}

# Wanted routes, one "podCIDR next-hop" per line.
WANT_ROUTES='{% for p in peers %}{{ p.pod_cidr }} {{ p.via }}
{% endfor %}'
{%- if backend == "vxlan" %}
# Wanted VXLAN peers, one "vtep mac node-address" per line.
WANT_PEERS='{% for p in peers %}{{ p.vtep }} {{ p.mac }} {{ p.address }}
{% endfor %}'
{%- endif %}

wanted() { # wanted LIST WORD: does a line of LIST start with "WORD "?
    case "
$1" in *"
$2 "*) return 0 ;; esac
    return 1
}

{%- if pod_cidr %}

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

remove_stale_routes() {
    ip -4 route show proto "$PROTO" | while read -r dst _; do
        wanted "$WANT_ROUTES" "$dst" || ip route del "$dst" proto "$PROTO"
    done
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
{%- if peers %}
    # One ip and one bridge process for every peer: on large clusters process starts dominate.
    ip -batch - <<EOF
{%- for p in peers %}
neigh replace {{ p.vtep }} lladdr {{ p.mac }} dev $DEV nud permanent
{%- endfor %}
EOF
    bridge -batch - <<EOF
{%- for p in peers %}
fdb replace {{ p.mac }} dev $DEV dst {{ p.address }} self permanent
{%- endfor %}
EOF
{%- endif %}
    ip neigh show dev "$DEV" | while read -r ip _; do
        wanted "$WANT_PEERS" "$ip" || ip neigh del "$ip" dev "$DEV"
    done
    bridge fdb show dev "$DEV" | while read -r mac _ dst _; do
        case "$WANT_PEERS" in *" $mac $dst
"*) ;; *) bridge fdb del "$mac" dev "$DEV" dst "$dst" self ;; esac
    done
}
{%- endif %}

prepare() {
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
{%- if peers %}
    ip -batch - <<EOF
{%- for p in peers %}
route replace {{ p.pod_cidr }} via {{ p.via }}{% if backend == "vxlan" %} dev $DEV onlink{% endif %} proto $PROTO
{%- endfor %}
EOF
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
{%- for p in peers %}
    ip -4 route show proto "$PROTO" | grep -qF "{{ p.pod_cidr }} via {{ p.via }} " || { echo "no route to {{ p.pod_cidr }} via {{ p.via }}"; exit 1; }
{%- endfor %}
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
