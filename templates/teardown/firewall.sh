#!/bin/sh
# A provider's packet-filter leftovers, and only its own: in each iptables (legacy and nft, IPv4
# and IPv6) and table, the chains whose names match CHAINS are flushed and deleted, and a rule in
# any other chain is deleted when it jumps to one of them, carries a comment matching COMMENTS or
# names an interface matching IFACES. Never a built-in chain, nor KUBE-*, DOCKER* or CNI-*
# whatever the patterns say. Then the nftables tables given as "family name" pairs in "$@".
# Each table changes in one iptables-restore --noflush transaction, from what -save printed:
# `-D` with the exact rule text is how iptables itself names a rule. Empty patterns match nothing.
set -eu
export CHAINS COMMENTS IFACES

# plan: iptables-save output of one table on stdin -> iptables-restore input (nothing when
# there is nothing of the provider's).
# shellcheck disable=SC2016 # awk's fields, not the shell's
PLAN='
function own(c) {
    if (c ~ /^(KUBE-|DOCKER|CNI-)/ || c ~ /^(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/) return 0
    return ENVIRON["CHAINS"] != "" && c ~ ENVIRON["CHAINS"]
}
function comment(line,   i, rest) {
    i = index(line, " --comment ")
    if (!i) return ""
    rest = substr(line, i + 11)
    if (substr(rest, 1, 1) == "\"") {
        rest = substr(rest, 2)
        # iptables-save escapes a quote inside as \"
        out = ""
        while ((i = index(rest, "\"")) > 0) {
            if (substr(rest, i - 1, 1) == "\\") { out = out substr(rest, 1, i - 2) "\""; rest = substr(rest, i + 1); continue }
            return out substr(rest, 1, i - 1)
        }
        return out rest
    }
    sub(/ .*/, "", rest)
    return rest
}
function marked(line,   n, w, k, c) {
    n = split(line, w, " ")
    for (k = 3; k < n; k++) {
        if ((w[k] == "-j" || w[k] == "-g") && own(w[k + 1])) return 1
        if ((w[k] == "-i" || w[k] == "-o") && ENVIRON["IFACES"] != "" && w[k + 1] ~ ENVIRON["IFACES"]) return 1
    }
    c = comment(line)
    return c != "" && ENVIRON["COMMENTS"] != "" && c ~ ENVIRON["COMMENTS"]
}
/^\*/ { table = $0 }
/^:/ { c = substr($1, 2); if (own(c)) chains[++nc] = c }
/^-A / { if (!own($2) && marked($0)) dels[++nd] = "-D" substr($0, 3) }
END {
    if (!nc && !nd) exit
    print table
    for (i = 1; i <= nd; i++) print dels[i]
    for (i = 1; i <= nc; i++) print "-F " chains[i]
    for (i = 1; i <= nc; i++) print "-X " chains[i]
    print "COMMIT"
}'

# The variants this node has: legacy and nft side by side, or the one plain iptables.
variants() {
    found=
    for v in iptables-legacy iptables-nft ip6tables-legacy ip6tables-nft; do
        if command -v "$v-save" >/dev/null 2>&1; then echo "$v"; found=1; fi
    done
    if [ -z "$found" ]; then
        for v in iptables ip6tables; do
            if command -v "$v-save" >/dev/null 2>&1; then echo "$v"; fi
        done
    fi
}

for v in $(variants); do
    for table in nat filter mangle raw; do
        # A legacy table that was never loaded holds nothing (and reading it would load it).
        case $v in
            iptables-legacy) grep -qx "$table" /proc/net/ip_tables_names 2>/dev/null || continue ;;
            ip6tables-legacy) grep -qx "$table" /proc/net/ip6_tables_names 2>/dev/null || continue ;;
        esac
        plan=$("$v-save" -t "$table" 2>/dev/null | awk "$PLAN") || continue
        [ -n "$plan" ] || continue
        printf '%s\n' "$plan" | "$v-restore" -w --noflush
    done
done

while [ $# -ge 2 ]; do
    family=$1 name=$2
    shift 2
    if ! command -v nft >/dev/null 2>&1; then
        echo "netctl teardown: no nft here: nftables table $family $name is not checked" >&2
        continue
    fi
    if nft list table "$family" "$name" >/dev/null 2>&1; then
        nft delete table "$family" "$name"
    fi
done
