# netctl verify: one read-only script prints, tagged, everything the node checks need. Nothing it
# prints is run. Names it finds on the node (files, directories) could hold a newline and so
# forge tagged lines of their own (`@@forward 0` would make verify turn forwarding off when it
# cleans up): config file names are printed in base64, other names with a newline are left out.
# Arguments: sha:PATH (a managed file whose sha256 is wanted), unit:NAME (its states).
set -u
printf '@@forward %s\n' "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo -)"
# br_netfilter is there when its sysctl is: the path flanneld checks, and the only sign of a
# built-in br_netfilter (which has no /sys/module entry).
m=0; [ -e "$BRNF" ] && m=1
printf '@@brnf %s %s\n' $m "$(cat "$BRNF" 2>/dev/null || echo -)"
for f in "$CONF"/*.conf "$CONF"/*.conflist "$CONF"/*.json; do [ -f "$f" ] || continue; printf '@@conf %s ' "$(printf '%s' "${f##*/}" | base64 -w0)"; base64 -w0 < "$f"; echo; done
for f in "$BIN"/*; do case "$f" in *'
'*) continue ;; esac; [ -f "$f" ] && [ -x "$f" ] && printf '@@bin %s\n' "${f##*/}"; done
for d in /var/lib/cni /var/lib/cni/networks; do [ -d "$d" ] && printf '@@cnidir %s\n' "$d"; done
for d in /var/lib/cni/networks/*; do case "$d" in *'
'*) continue ;; esac; [ -d "$d" ] && printf '@@cninet %s\n' "${d##*/}"; done
dev=$(ip -o -4 addr show to "$ADDR" | { read -r _ d _; printf '%s' "${d:-}"; }); printf '@@nodedev %s\n' "$dev"
ip -o -4 addr show | while read -r _ d _ a _; do printf '@@addr %s %s\n' "$d" "$a"; done
ip -o link show | while read -r _ d flags _ mtu _; do printf '@@link %s %s %s\n' "${d%%:*}" "$flags" "$mtu"; done
ip -4 route show proto 211 | sed 's/^/@@route /'
# The pods' bridge's ports: `@@port DEV MTU NETNS CONTAINER`, `-` where unknown. For a port whose
# MTU is not POD_MTU the pod is named where the kernel tells: its network namespace (link-netns),
# and the container host-local reserved the address in that namespace for. Only names of the
# shapes those can have are printed or used.
[ -n "$BRIDGE" ] && ip -o link show master "$BRIDGE" 2>/dev/null | while read -r _ d _ _ mtu rest; do
  ns=- cid=-
  if [ "$mtu" != "$POD_MTU" ]; then
    case $rest in *' link-netns '*) ns=${rest##* link-netns }; ns=${ns%% *} ;; esac
    case $ns in ''|.*|*[!A-Za-z0-9._-]*) ns=- ;; esac
    [ "$ns" = - ] || for a in $(ip -n "$ns" -o -4 addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4 }'); do
      case $a in *[!0-9.]*) continue ;; esac
      for r in "$CURSORS"/*/"$a"; do [ -f "$r" ] && cid=$(head -n1 "$r" | tr -d '\r'); done
    done
    case $cid in ''|*[!A-Za-z0-9._-]*) cid=- ;; esac
  fi
  printf '@@port %s %s %s %s\n' "${d%%[@:]*}" "$mtu" "$ns" "$cid"
done
ip neigh show dev "$DEV" 2>/dev/null | sed 's/^/@@neigh /'
bridge fdb show dev "$DEV" 2>/dev/null | sed 's/^/@@fdb /'
[ -f /run/flannel/subnet.env ] && { printf '@@subnetenv '; base64 -w0 < /run/flannel/subnet.env; echo; }
[ -f "$CONTAINERD" ] && { printf '@@containerd '; base64 -w0 < "$CONTAINERD"; echo; }
cursors "$CURSORS"
[ -f "$STATE" ] && { printf '@@state '; base64 -w0 < "$STATE"; echo
  grep -o '"/[^"]*"' "$STATE" | tr -d '"' | sort -u | while read -r p; do [ -f "$p" ] && sha256sum "$p" | sed 's/^/@@sha /'; done; }
systemd=
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemd=1; echo '@@systemd'; fi
for a in "$@"; do
  v=${a#*:}
  case $a in
    sha:*) [ -f "$v" ] && sha256sum "$v" | sed 's/^/@@sha /' ;;
    unit:*)
      if [ -n "$systemd" ]; then
        printf '@@unit %s %s %s\n' "$v" "$(systemctl is-active "$v" 2>/dev/null)" "$(systemctl is-enabled "$v" 2>/dev/null)"
      fi ;;
  esac
done
true
